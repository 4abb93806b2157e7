"""Receive buffers for ranged reads, reused across decode units (one pool per process).

A Parquet row group's column chunks arrive in one buffer each time a unit is fetched. A fresh
anonymous map per unit costs a page fault (and a zeroed page) for every 4 KiB the body lands
on; a buffer written before costs none.

A buffer is reused only when nothing holds a view of it any more (the map itself says so: it
refuses to resize while a buffer is exported). One still held when it is given back waits,
and is checked again at the next :meth:`take` (pyarrow's threads may drop their last slice a
moment after a decode returned); one held for long is freed with its last view. The pool keeps
at most ``limit`` bytes (64 MiB: every worker process of the worker path has a pool of its
own) of free buffers between units and loaders, as an allocator keeps its arenas;
:meth:`clear` drops them.
"""

from __future__ import annotations

import mmap
import threading

from .._fork import on_fork_in_child

__all__ = ["BufferPool", "range_buffers"]

_GRANULE = 1 << 20
_PENDING = 16


def _unused(buf: mmap.mmap) -> bool:
    """No view of ``buf`` exists (the map's own check: resizing raises while one does)."""
    try:
        buf.resize(len(buf))
    except (BufferError, OSError, ValueError):
        return False
    return True


class BufferPool:
    def __init__(self, limit: int = 64 << 20) -> None:
        self.limit = limit
        self._free: list[mmap.mmap] = []
        self._pending: list[mmap.mmap] = []
        self._lock = threading.Lock()

    def take(self, n: int) -> mmap.mmap:
        """A writable buffer of at least ``n`` bytes (its first ``n`` are the caller's): the
        smallest free one that fits and is not more than twice as large, else a new one
        (whole MiB; its pages are mapped as they are first written)."""
        with self._lock:
            if self._pending:
                for b in [b for b in self._pending if _unused(b)]:
                    self._pending.remove(b)
                    self._keep(b)
            fits = [b for b in self._free if n <= len(b) <= 2 * max(n, _GRANULE)]
            if fits:
                got = min(fits, key=len)
                self._free.remove(got)
                return got
        size = max(_GRANULE, -(-n // _GRANULE) * _GRANULE)
        # private: plain anonymous pages (a shared mapping is backed by shmem, whose faults
        # cost about twice as much)
        return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)

    def give(self, buf: mmap.mmap) -> bool:
        """Return ``buf`` for reuse: ``True`` if no view of it is left. Otherwise it waits
        (at most ``_PENDING`` buffers) and :meth:`take` checks it again: a decoder's own
        threads may drop their last slice of it a moment after the decode returned."""
        with self._lock:
            if _unused(buf):
                self._keep(buf)
                return True
            self._pending.append(buf)
            del self._pending[:-_PENDING]  # a buffer held on to for long is freed with it
            return False

    def _keep(self, buf: mmap.mmap) -> None:
        self._free.append(buf)
        total = sum(len(b) for b in self._free)
        while self._free and total > self.limit:
            total -= len(self._free.pop(0))  # the oldest first

    def clear(self) -> None:
        with self._lock:
            self._free.clear()
            self._pending.clear()

    @property
    def free_bytes(self) -> int:
        with self._lock:
            return sum(len(b) for b in self._free)


_POOL = BufferPool()


def range_buffers() -> BufferPool:
    """This process's pool of receive buffers."""
    return _POOL


@on_fork_in_child
def _reset_after_fork() -> None:
    global _POOL
    _POOL = BufferPool()  # the parent's lock may have been held across the fork
