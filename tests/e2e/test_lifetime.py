"""No worker process and no shared memory outlives the trainer: after close(), after an
uncaught exception, and after the trainer itself is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import m5stream as m5
from m5stream.plan import IndexRun
from m5stream.workers.pool import WorkerPool
from m5stream.workers.protocol import TaskMsg
from m5stream.workers.slots import SlotRing
from tests.helpers import alive, make_tar_dataset, shm_entries, wait_gone

ROOT = Path(__file__).resolve().parents[2]


def _any_process_maps_our_memory(trainer: int) -> list[int]:
    """Processes, anywhere on the machine, that still map a ring the trainer created (ring
    names carry the creating pid, so other jobs running at the same time do not count)."""
    tag = f"memfd:m5stream-ring-{trainer}-"
    hits = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/maps") as f:
                    if tag in f.read():
                        hits.append(int(entry))
            except OSError:
                pass
    return hits


@pytest.fixture(scope="module")
def pattern(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_tar_dataset(tmp_path_factory.mktemp("life"), shards=2, per_shard=20)


def _start(mode: str, pattern: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.trainer_script", mode, pattern],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _pids(proc: subprocess.Popen[str]) -> list[int]:
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line and line[0] == "pids", line
    pids = [int(p) for p in line[1:]]
    assert len(pids) == 2 and all(alive(p) for p in pids)
    return pids


def test_after_close(pattern: str) -> None:
    shm = shm_entries()
    proc = _start("close", pattern)
    try:
        pids = _pids(proc)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("close\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "closed"
        assert wait_gone(pids, 5.0) == set()
        assert proc.poll() is None  # the trainer still runs, and holds nothing of ours
        with open(f"/proc/{proc.pid}/maps") as f:
            assert "memfd:m5stream" not in f.read()
        fd_dir = f"/proc/{proc.pid}/fd"
        fds = [os.readlink(f"{fd_dir}/{fd}") for fd in os.listdir(fd_dir)]
        assert not [f for f in fds if "m5stream" in f]
    finally:
        proc.communicate("", timeout=30)
    assert proc.returncode == 0
    assert shm_entries() - shm == set()


def test_after_uncaught_exception(pattern: str) -> None:
    shm = shm_entries()
    proc = _start("exception", pattern)
    pids = _pids(proc)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "m5stream.errors.WorkerError: KeyError" in err and "s000006" in err
    assert wait_gone(pids, 5.0) == set()
    assert _any_process_maps_our_memory(proc.pid) == []
    assert shm_entries() - shm == set()


def test_after_trainer_sigkill(pattern: str) -> None:
    shm = shm_entries()
    proc = _start("forever", pattern)
    pids = _pids(proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert wait_gone(pids, 5.0) == set(), "workers outlived their trainer"
    assert wait_gone(_any_process_maps_our_memory(proc.pid), 5.0) == set()
    assert shm_entries() - shm == set()


def _killed(pid: int) -> None:
    """SIGKILL ``pid`` and wait until it has exited: its end of the pipe is then closed, so
    the next send to it fails on the pipe, before any sentinel is looked at."""
    os.kill(pid, signal.SIGKILL)
    assert wait_gone([pid], 10.0) == set()


@pytest.mark.parametrize("send", ["submit", "send_ring"])
def test_send_to_a_killed_worker_is_worker_died(pattern: str, send: str) -> None:
    pool = WorkerPool(2, m5.dataset(pattern), None, seed=0, on_error="raise")
    ring = SlotRing(0, 2, 1 << 16)
    try:
        pid = pool.pids[1]
        _killed(pid)
        with pytest.raises(m5.WorkerDied, match=rf"worker 1 \(pid {pid}\) .*SIGKILL"):
            # a dead peer's socket buffers nothing: the first send or the next one fails
            for _ in range(2):
                if send == "submit":
                    pool.submit(1, TaskMsg(0, 0, 0, 0, 0, IndexRun(0, 1)))
                else:
                    pool.send_ring(ring)
    finally:
        ring.close()
        pool.shutdown()


def test_loader_reports_killed_workers_as_worker_died(pattern: str) -> None:
    """After the first batch both workers are SIGKILLed; the loader's next step sends them
    tasks (prefetch) before it waits on them: WorkerDied, never a raw OSError."""
    # a global shuffle keeps tar shards off the block path (threads): batches come from workers
    with m5.Loader(m5.dataset(pattern), 2, shuffle=True, num_workers=2, prefetch=4) as lo:
        it = iter(lo)
        next(it)
        pids = lo.worker_pids
        assert len(pids) == 2
        for pid in pids:
            _killed(pid)
        with pytest.raises(m5.WorkerDied) as err:
            for _ in it:
                pass
        assert "SIGKILL" in str(err.value)
        assert any(f"(pid {pid})" in str(err.value) for pid in pids)
