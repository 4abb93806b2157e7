"""Where m5stream keeps derived files (tar indexes, JSONL line indexes, demo datasets).

``$M5STREAM_CACHE`` wins, then ``$XDG_CACHE_HOME/m5stream``, then ``~/.cache/m5stream``.
Entries are keyed by the content stamp of what they describe, so a stale entry is never used.
Shard indexes are also kept in a per-process LRU, so a shuffle that reopens shards does not
reread them from disk.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["cache_dir", "cached_index", "stamp_key"]

_MEMORY: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()
_MEMORY_ENTRIES = 1024


def cache_dir(sub: str = "") -> Path:
    root = os.environ.get("M5STREAM_CACHE")
    if root:
        base = Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "m5stream"
    path = base / sub if sub else base
    path.mkdir(parents=True, exist_ok=True)
    return path


def stamp_key(*parts: object) -> str:
    """A short stable hex key for a tuple of identifying parts."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode())
    return h.hexdigest()[:32]


def cached_index(
    kind: str, uri: str, size: int, stamp: str, build: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """The arrays ``build()`` makes for one shard, from memory, disk, or built and saved.

    A damaged disk entry is rebuilt, never trusted; writes are atomic (temp file + rename), so
    concurrent workers at worst build the same entry twice.
    """
    key = f"{kind}-{stamp_key(uri, size, stamp)}"
    hit = _MEMORY.get(key)
    if hit is not None:
        _MEMORY.move_to_end(key)
        return hit
    path = str(cache_dir("index") / f"{key}.npz")
    arrays = None
    if os.path.exists(path):
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception:
            arrays = None
    if arrays is None:
        arrays = build()
        tmp = f"{path}.{os.getpid()}.tmp.npz"
        np.savez(tmp, **arrays)  # type: ignore[arg-type]  # numpy stubs reject **kwargs
        os.replace(tmp, path)
    _MEMORY[key] = arrays
    while len(_MEMORY) > _MEMORY_ENTRIES:
        _MEMORY.popitem(last=False)
    return arrays
