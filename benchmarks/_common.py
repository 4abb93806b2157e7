"""Helpers shared by the benchmark scripts: medians, process-tree memory, environment line."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from m5stream.bench.monitor import PeakTreeMemory as _Peak


def median(xs: list[float]) -> float:
    return statistics.median(xs)


class PeakTreeMemory(_Peak):
    """Peak PSS (``peak``) and RSS (``peak_rss``) of this process and its descendants: the
    package's sampler (``m5stream.bench.monitor``) under the names these scripts use."""

    @property
    def peak(self) -> int:
        return self.peak_pss


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of one call."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def environment() -> str:
    import numpy

    try:
        import torch

        tv = torch.__version__
    except ImportError:
        tv = "-"
    return (
        f"python {platform.python_version()}, numpy {numpy.__version__}, torch {tv}, "
        f"{os.cpu_count()} CPUs"
    )


def seaweed(prefix: str, key: str, secret: str, bucket: str) -> tuple[object, object, Path]:
    """A SeaweedFS (``weed mini``) on free loopback ports with ``bucket`` made, this process's
    environment pointed at it (credentials, endpoint, an empty m5stream cache), and an m5
    S3 client: ``(server, client, tmp dir)``. Stop the server with ``server.stop()``."""
    import tempfile

    from tests.seaweed import SeaweedServer

    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    (tmp / "weed").mkdir()
    server = SeaweedServer(tmp / "weed", key, secret)
    os.environ.update(
        AWS_ACCESS_KEY_ID=key,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_ENDPOINT_URL_S3=server.endpoint,
        AWS_REGION="us-east-1",
        M5STREAM_CACHE=str(tmp / "cache"),
    )
    from m5stream.storage import s3

    c = s3.client()
    try:
        server.wait_ready(lambda: c.create_bucket(bucket))
    except BaseException:
        server.stop()
        raise
    return server, c, tmp
