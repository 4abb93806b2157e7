"""Bytes of one shard or object, wherever it lives: local paths and ``s3://`` URIs.

Shard formats (tar, JSONL, Parquet) read a *local file*: an S3 shard is downloaded whole into
the shard cache (``<cache>/shards``, keyed by URI, size and ETag, so a stale copy is never
used) by the CRT - no Python copy of the body - and evicted least-recently-used beyond
``$M5STREAM_SHARD_CACHE_BYTES`` (default 20 GiB). A shard is downloaded once however many
processes and threads want it at the same time: the downloader holds an exclusive ``flock`` on
``<entry>.lock`` and the others wait on it, then find the finished copy (the kernel drops the
lock of a process that dies, so a crash never blocks the rest). Raw objects are read with one
GET each, conditional on the manifest's ETag.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
        if p.suffix in (".tmp", ".lock"):
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
            # at worst a process already waiting on the old lock downloads the shard again
            Path(f"{p}.lock").unlink(missing_ok=True)
            total -= size


def _cached(path: Path, size: int) -> bool:
    try:
        if path.stat().st_size != size:
            return False
    except FileNotFoundError:
        return False
    os.utime(path)  # recently used
    return True


@contextmanager
def _exclusive(lock_path: str) -> Iterator[None]:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def local_shard(uri: str, size: int, stamp: str, s3: S3Config | None = None) -> str:
    """A local path holding the shard's bytes (the file itself, or the cached S3 copy)."""
    if not is_s3(uri):
        return uri
    root = cache_dir("shards")
    path = root / f"{stamp_key(uri, size, stamp)}{Path(uri).suffix}"
    if _cached(path, size):
        return str(path)
    with _exclusive(f"{path}.lock"):
        if _cached(path, size):  # downloaded by whoever held the lock while we waited
            return str(path)
        bucket, key = parse_s3_uri(uri)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
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
