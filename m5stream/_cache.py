"""Where m5stream keeps derived files (tar indexes, JSONL line indexes, demo datasets).

``$M5STREAM_CACHE`` wins, then ``$XDG_CACHE_HOME/m5stream``, then ``~/.cache/m5stream``.
Entries are keyed by the content stamp of what they describe, so a stale entry is never used.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["cache_dir", "stamp_key"]


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
