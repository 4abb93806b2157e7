"""Helpers shared by the benchmark scripts: medians, process-tree memory, environment line."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

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
