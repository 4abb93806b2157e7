"""Watching a benchmark run: peak memory of the process tree, and the progress line.

Memory is the sum over this process and all its descendants (the workers) of the
proportional set size (shared pages split between the processes that map them, so shared
memory slots count once) and of the resident set size, sampled every 250 ms in a thread and
kept at their peaks. Linux ``/proc`` only; elsewhere the peaks stay 0.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TextIO

__all__ = ["PeakTreeMemory", "Progress", "tree_pids"]


def tree_pids(root: int | None = None) -> list[int]:
    """``root`` (default: this process) and all its descendants."""
    root = root or os.getpid()
    parent: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return [root]
    for e in entries:
        if e.isdigit():
            try:
                with open(f"/proc/{e}/stat") as f:
                    parent[int(e)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
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
    except (OSError, ValueError, IndexError):
        pass
    return 0


def pss_bytes(pid: int) -> int:
    return _kb_field(f"/proc/{pid}/smaps_rollup", "Pss:")


def rss_bytes(pid: int) -> int:
    return _kb_field(f"/proc/{pid}/status", "VmRSS:")


class PeakTreeMemory:
    """Peak PSS and RSS of the process tree while the ``with`` block runs."""

    def __init__(self, interval: float = 0.25) -> None:
        self.peak_pss = 0
        self.peak_rss = 0
        self.interval = interval
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, name="m5stream-memory", daemon=True)

    def sample(self) -> None:
        pids = tree_pids()
        self.peak_pss = max(self.peak_pss, sum(pss_bytes(p) for p in pids))
        self.peak_rss = max(self.peak_rss, sum(rss_bytes(p) for p in pids))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> PeakTreeMemory:
        self.sample()
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


class Progress:
    """A live line on a terminal (rewritten in place every ``interval`` seconds), plain lines
    every ``plain_interval`` seconds otherwise (logs, CI); the first half a second into the
    timed part."""

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        interval: float = 0.5,
        plain_interval: float = 5.0,
    ) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if self.tty else plain_interval
        self._last = float("-inf")  # the first update shows at once
        self._dirty = False

    def update(self, elapsed: float, samples: int, nbytes: int) -> None:
        now = time.perf_counter()
        if elapsed < 0.5 or now - self._last < self.interval:
            return  # (a rate over the first instants says nothing)
        self._last = now
        rate = samples / elapsed if elapsed > 0 else 0.0
        line = (
            f"{self.label}: {rate:,.0f} samples/s, {nbytes / elapsed / 1e6 if elapsed else 0:,.1f}"
            f" MB/s, {samples:,} samples in {elapsed:.1f}s"
        )
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            self._dirty = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self._dirty:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._dirty = False
