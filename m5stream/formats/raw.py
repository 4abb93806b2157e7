"""Raw objects: one file is one sample.

The sample key is the file's path relative to the dataset root; its single field is named by
the file's extension (``photo.JPG`` -> ``{"jpg": bytes}``), or ``"data"`` without one, the
webdataset convention, so the same transforms apply to raw and tar datasets. Over S3 the
objects of a batch are fetched concurrently before the batch is assembled (``prefetch``).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..catalog.manifest import ShardInfo
from ..errors import M5Error
from ..storage.blobs import is_s3, read_object
from .base import Format, Sample, ShardReader

__all__ = ["RawFormat", "field_name"]


def field_name(path: str) -> str:
    ext = os.path.splitext(path)[1]
    return ext[1:].lower() if ext else "data"


# Objects fetched ahead for the current batch (per process): uri -> bytes or the error.
_PREFETCHED: dict[str, bytes | BaseException] = {}
_PARALLEL = 32


def _fetch(uri: str, stamp: str) -> bytes | BaseException:
    try:
        return read_object(uri, stamp)
    except Exception as exc:  # re-raised when that sample is read, with its key
        return exc


class RawReader(ShardReader):
    def read(self, local: int) -> tuple[str, Sample]:
        if local != 0:
            raise IndexError(local)
        try:
            got = _PREFETCHED.pop(self.shard.uri, None)
            if isinstance(got, BaseException):
                raise got
            if got is None:
                stamp = self.shard.stamp if is_s3(self.shard.uri) else None
                got = read_object(self.shard.uri, stamp)
        except M5Error as exc:
            exc.add_context(key=self.shard.key)
            raise
        return self.shard.key, {field_name(self.shard.key): got}


class RawFormat(Format):
    name = "raw"

    def count(self, uri: str, size: int, stamp: str, options: dict[str, Any]) -> int:
        return 1

    def open(self, shard: ShardInfo, options: dict[str, Any]) -> ShardReader:
        return RawReader(shard, options)

    def prefetch(self, shards: list[ShardInfo]) -> None:
        """Fetch a batch's S3 objects concurrently (one GET each, conditional on the ETag);
        local files are read when needed."""
        _PREFETCHED.clear()
        remote = [s for s in shards if is_s3(s.uri)]
        if len(remote) < 2:
            return
        with ThreadPoolExecutor(min(_PARALLEL, len(remote))) as pool:
            for s, got in zip(remote, pool.map(lambda s: _fetch(s.uri, s.stamp), remote)):
                _PREFETCHED[s.uri] = got
