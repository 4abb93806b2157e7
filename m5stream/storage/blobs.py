"""Bytes of one shard or object, wherever it lives: local paths and ``s3://`` URIs.

Shard formats (tar, JSONL, Parquet) read a *local file*: an S3 shard is downloaded whole into
the shard cache (``<cache>/shards``, keyed by URI, size and ETag, so a stale copy is never
used) by the CRT - no Python copy of the body - and evicted least-recently-used beyond
``$M5STREAM_SHARD_CACHE_BYTES`` (default 20 GiB). A shard is downloaded once however many
processes and threads want it at the same time: the downloader holds an exclusive ``flock`` on
``<entry>.lock`` and the others wait on it, then find the finished copy (the kernel drops the
lock of a process that dies, so a crash never blocks the rest).

A reader that stays in one process (the Loader's block path) can skip the disk instead:
:func:`shard_map` maps a cached copy when there is one and otherwise downloads the shard into
an anonymous memory file: where disk writes are slower than the network, the disk cache is
what limits the read. Raw objects are read with one GET each, conditional on
the manifest's ETag.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import re
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from .._cache import cache_dir, stamp_key
from .._pools import process_pool
from ..errors import StateMismatch
from .iostats import io_counters, io_delta
from .local import LocalFile
from .s3 import S3Config, client, parse_s3_uri

__all__ = ["ShardMap", "is_s3", "local_shard", "read_object", "shard_map", "start_shard_map"]

DEFAULT_CACHE_BYTES = 20 << 30
#: whole-shard downloads :func:`start_shard_map` runs at once (each is many CRT requests)
FETCH_THREADS = 4


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
    path = _cache_path(uri, size, stamp)
    root = path.parent
    if _cached(path, size):
        return str(path)
    with _exclusive(f"{path}.lock"):
        if _cached(path, size):  # downloaded by whoever held the lock while we waited
            return str(path)
        bucket, key = parse_s3_uri(uri)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            client(s3).download(bucket, key, tmp, etag=stamp)
            _check_size(os.path.getsize(tmp), size, uri)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    _evict(root, int(os.environ.get("M5STREAM_SHARD_CACHE_BYTES", DEFAULT_CACHE_BYTES)), path)
    return str(path)


def _check_size(got: int, size: int, uri: str) -> None:
    if got != size:
        raise StateMismatch(
            f"object is {got} bytes, the manifest says {size}: it changed since the manifest "
            "was made",
            uri=uri,
        )


_SAFE_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,16}")


def _cache_path(uri: str, size: int, stamp: str) -> Path:
    """The entry of ``uri`` in the shard cache: a hash of (URI, size, ETag) in the cache
    directory itself. The key only lends its suffix (for a reader of the cache), and only a
    plain one: an S3 key is untrusted text (``..``, ``/``, NUL, newlines, 1 KiB and more)
    and never becomes part of a path."""
    suffix = Path(uri.rsplit("/", 1)[-1]).suffix
    if not _SAFE_SUFFIX.fullmatch(suffix):
        suffix = ""
    return cache_dir("shards") / f"{stamp_key(uri, size, stamp)}{suffix}"


def shard_map(uri: str, size: int, stamp: str, s3: S3Config | None = None) -> ShardMap:
    """The shard's bytes as a read-only map, for a reader in this process only: a local file
    or a copy already in the disk shard cache is mapped; otherwise the CRT downloads the
    object into an anonymous memory file (``memfd``: no disk write, freed with the last
    reference, nothing left behind if the process dies). The download is conditional on
    the manifest's ETag and its size is checked, as in :func:`local_shard`."""
    if not is_s3(uri):
        return ShardMap(LocalFile(uri).map(), {})
    path = _cache_path(uri, size, stamp)
    if _cached(path, size):
        return ShardMap(LocalFile(str(path)).map(), {})
    io0 = io_counters()
    bucket, key = parse_s3_uri(uri)
    fd = os.memfd_create(f"m5stream-shard-{os.getpid()}", os.MFD_CLOEXEC)
    try:
        # the CRT opens the path itself: /proc/self/fd/N is this memory file
        client(s3).download(bucket, key, f"/proc/self/fd/{fd}", etag=stamp)
        _check_size(os.fstat(fd).st_size, size, uri)
        # populated: one call maps every page, rather than a fault per 4 KiB page as batches
        # are sliced out of it
        flags = mmap.MAP_SHARED | mmap.MAP_POPULATE
        buf: mmap.mmap | bytes = (
            mmap.mmap(fd, size, flags=flags, prot=mmap.PROT_READ) if size else b""
        )
    finally:
        os.close(fd)  # the map keeps the memory
    return ShardMap(buf, io_delta(io0))


class ShardMap(NamedTuple):
    #: the shard's bytes (``mmap``, or ``b""`` when empty)
    buf: mmap.mmap | bytes
    #: the S3 requests and bytes it took (the fetching thread's counters)
    io: dict[str, int]


def start_shard_map(
    uri: str, size: int, stamp: str, s3: S3Config | None = None
) -> Future[ShardMap]:
    """:func:`shard_map` started in a small per-process thread pool (for callers that plan
    ahead: the Loader's block path). Its threads only wait on the CRT, which moves the bytes
    without the GIL."""
    pool = process_pool("m5-shard-fetch", FETCH_THREADS)
    return pool.submit(shard_map, uri, size, stamp, s3)


def start_local_shard(
    uri: str, size: int, stamp: str, s3: S3Config | None = None
) -> Future[dict[str, int]]:
    """:func:`local_shard` started in the same pool, for read-ahead into the disk cache; the
    result is the S3 requests and bytes the download made (counted in its thread)."""

    def run() -> dict[str, int]:
        io0 = io_counters()
        local_shard(uri, size, stamp, s3)
        return io_delta(io0)

    return process_pool("m5-shard-fetch", FETCH_THREADS).submit(run)
