"""Bytes of one shard or object, wherever it lives: local paths and ``s3://`` URIs.

Shard formats (tar, JSONL, Parquet) read a *local file*: an S3 shard is downloaded whole into
the shard cache (``<cache>/shards``, keyed by URI, size and ETag, so a stale copy is never
used) by the CRT - no Python copy of the body - and evicted least-recently-used beyond
``$M5STREAM_SHARD_CACHE_BYTES`` (default 20 GiB). Raw objects are read with one GET each,
conditional on the manifest's ETag.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._cache import cache_dir, stamp_key
from .local import LocalFile
from .s3 import S3Config, client, parse_s3_uri

__all__ = ["is_s3", "local_shard", "read_object"]

DEFAULT_CACHE_BYTES = 20 << 30


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def read_object(uri: str, stamp: str | None = None, s3: S3Config | None = None) -> bytes:
    """The whole object (raw samples)."""
    if is_s3(uri):
        bucket, key = parse_s3_uri(uri)
        return client(s3).get(bucket, key, etag=stamp)
    f = LocalFile(uri)
    try:
        return f.read_all()
    finally:
        f.close()


def _evict(root: Path, limit: int, keep: Path) -> None:
    entries = []
    total = 0
    for p in root.iterdir():
        if p.suffix == ".tmp":
            continue
        try:
            st = p.stat()
        except OSError:
            continue
        entries.append((st.st_atime, st.st_size, p))
        total += st.st_size
    for _, size, p in sorted(entries):
        if total <= limit:
            break
        if p != keep:
            p.unlink(missing_ok=True)
            total -= size


def local_shard(uri: str, size: int, stamp: str, s3: S3Config | None = None) -> str:
    """A local path holding the shard's bytes (the file itself, or the cached S3 copy)."""
    if not is_s3(uri):
        return uri
    root = cache_dir("shards")
    path = root / f"{stamp_key(uri, size, stamp)}{Path(uri).suffix}"
    if path.exists() and path.stat().st_size == size:
        os.utime(path)  # recently used
        return str(path)
    bucket, key = parse_s3_uri(uri)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        client(s3).download(bucket, key, tmp, etag=stamp)
        got = os.path.getsize(tmp)
        if got != size:
            from ..errors import StateMismatch

            raise StateMismatch(
                f"object is {got} bytes, the manifest says {size}: it changed since the "
                "manifest was made",
                uri=uri,
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _evict(root, int(os.environ.get("M5STREAM_SHARD_CACHE_BYTES", DEFAULT_CACHE_BYTES)), path)
    return str(path)
