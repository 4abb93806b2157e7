"""A throwaway PostgreSQL cluster on loopback for the run-record tests (Debian's server
binaries: ``/usr/lib/postgresql/<v>/bin/initdb`` and ``pg_ctl``; no system service).

``initdb`` refuses to run as root, so as root (CI) the cluster belongs to a system user
``m5pgtest``, created once if missing, and every server command runs through ``runuser``. The
cluster lives in a fresh temp dir, listens on a free port of 127.0.0.1 only (no Unix socket
outside the temp dir), trusts local connections, runs without fsync, and is stopped
(``-m immediate``) and deleted with :meth:`PostgresServer.stop`.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_USER = "m5pgtest"


def pg_bindir() -> str | None:
    """The newest installed server's bin directory, or ``None``."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major)
    return os.path.dirname(found[-1]) if found else None


def _major(path: str) -> int:
    try:
        return int(path.split("/")[4])
    except (IndexError, ValueError):
        return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ensure_user() -> None:
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            check=True,
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )


class PostgresServer:
    """Start a cluster (see module docstring); ``url`` is its SQLAlchemy/libpq URL."""

    def __init__(self, timeout: float = 60.0) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries are missing: apt-get install postgresql")
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="m5pg-"))
        self.as_root = os.geteuid() == 0
        if self.as_root:
            _ensure_user()
            pw = pwd.getpwnam(PG_USER)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._started = False
        try:
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            )
            self._run(
                "pg_ctl",
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                str(int(timeout)),
                "-o",
                f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50",
                "start",
            )
            self._started = True
        except BaseException:
            self.stop()
            raise
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"PostgreSQL did not come up: {self.tail()}") from None
                time.sleep(0.1)

    def _run(self, program: str, *args: str) -> None:
        cmd = [os.path.join(self.bindir, program), *args]
        if self.as_root:
            cmd = ["runuser", "-u", PG_USER, "--", *cmd]
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(
                f"{program} failed ({res.returncode}): {res.stderr[-2000:]} {self.tail()}"
            )

    def tail(self) -> str:
        try:
            return self.log.read_text()[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self._started:
            self._started = False
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except RuntimeError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)
