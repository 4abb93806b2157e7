"""Start and stop a Glue endpoint on loopback: ``moto_server`` (PyPI ``moto[server]``).

Used by the integration tests' session fixture and by ``benchmarks/glue_parquet.py``. The server
runs as its own process on a free port of 127.0.0.1 and is stopped with it.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.seaweed import find_program, stop_process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def moto_binary() -> str:
    return find_program("moto_server", "'moto[server]'")


class MotoServer:
    def __init__(self, log_dir: Path, timeout: float = 60) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._log = open(log_dir / "moto.log", "w")  # noqa: SIM115 - closed in stop()
        self.log_path = log_dir / "moto.log"
        self.proc = subprocess.Popen(
            [moto_binary(), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2):
                    return
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"moto_server did not come up: {self.log_path.read_text()[-2000:]}"
                    ) from None
                time.sleep(0.2)

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()
