"""Thread pools kept for the life of a process, by name: created on first use, and forgotten
in a forked child (its copy of a pool has no threads, and the lock may have been held across
the fork). For work that is started often and briefly - a table resolution, a shard download -
where a pool per call would start its threads every time."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from ._fork import on_fork_in_child

__all__ = ["process_pool"]

_POOLS: dict[str, ThreadPoolExecutor] = {}
_LOCK = threading.Lock()


def process_pool(name: str, threads: int) -> ThreadPoolExecutor:
    """This process's pool ``name`` (its threads are named after it), made with ``threads``
    threads the first time it is asked for."""
    with _LOCK:
        pool = _POOLS.get(name)
        if pool is None:
            pool = _POOLS[name] = ThreadPoolExecutor(threads, thread_name_prefix=name)
        return pool


@on_fork_in_child
def _forget() -> None:
    global _LOCK
    _POOLS.clear()
    _LOCK = threading.Lock()
