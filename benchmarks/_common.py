"""Helpers shared by the benchmark scripts: medians, process-tree memory, environment line."""

from __future__ import annotations

import os
import platform
import statistics
import threading
import time
from collections.abc import Callable


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def tree_pids(root: int | None = None) -> list[int]:
    root = root or os.getpid()
    parent: dict[int, int] = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open(f"/proc/{e}/stat") as f:
                    parent[int(e)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    out, frontier = [root], [root]
    while frontier:
        p = frontier.pop()
        for c, pp in parent.items():
            if pp == p:
                out.append(c)
                frontier.append(c)
    return out


def _kb_field(path: str, field: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def pss_bytes(pid: int) -> int:
    """Proportional set size: shared pages are split between the processes that map them."""
    return _kb_field(f"/proc/{pid}/smaps_rollup", "Pss:")


def rss_bytes(pid: int) -> int:
    """Resident set size: shared pages count once in every process that maps them."""
    return _kb_field(f"/proc/{pid}/status", "VmRSS:")


class PeakTreeMemory:
    """Samples the PSS of this process and all its descendants every 250 ms (rarely, so as not
    to steal the CPU it measures) and keeps the peak."""

    def __init__(self) -> None:
        self.peak = 0
        self.peak_rss = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = tree_pids()
            self.peak = max(self.peak, sum(pss_bytes(p) for p in pids))
            self.peak_rss = max(self.peak_rss, sum(rss_bytes(p) for p in pids))
            time.sleep(0.25)

    def __enter__(self) -> PeakTreeMemory:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


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
