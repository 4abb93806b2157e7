"""Raw objects: one file is one sample.

The sample key is the file's path relative to the dataset root; its single field is named by
the file's extension (``photo.JPG`` -> ``{"jpg": bytes}``), or ``"data"`` without one, the
webdataset convention, so the same transforms apply to raw and tar datasets. Over S3 the
objects of a batch are fetched concurrently before the batch is assembled (``prefetch``); with
no transform the Loader's block path starts each object's GET batches ahead
(``fetch_unit``) and reads it as a one-sample block.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ..batches.columns import ColumnBlock
from ..catalog.manifest import ShardInfo
from ..errors import M5Error
from ..storage.blobs import is_s3, read_object
from ..storage.s3 import S3Config, client, parse_s3_uri
from .base import Format, Sample, ShardReader
from .caps import Fetch, FormatCaps

__all__ = ["RawFormat", "field_name"]


def field_name(path: str) -> str:
    ext = os.path.splitext(path)[1]
    return ext[1:].lower() if ext else "data"


class RawReader(ShardReader):
    def read(self, local: int) -> tuple[str, Sample]:
        if local != 0:
            raise IndexError(local)
        stamp = self.shard.stamp if is_s3(self.shard.uri) else None
        try:
            got = read_object(self.shard.uri, stamp, self.shard.s3)
        except M5Error as exc:
            exc.add_context(key=self.shard.key)
            raise
        return self.shard.key, {field_name(self.shard.key): got}

    def read_fetched(self, local: int, fetched: Any) -> tuple[str, Sample]:
        if local != 0:
            raise IndexError(local)
        if isinstance(fetched, BaseException):
            if isinstance(fetched, M5Error):
                fetched.add_context(key=self.shard.key)
            raise fetched
        return self.shard.key, {field_name(self.shard.key): fetched}

    def fetch_unit(self, unit: int) -> Fetch | None:
        """Start the object's GET (S3; conditional on the ETag); local files: nothing."""
        if unit != 0 or not is_s3(self.shard.uri):
            return None
        bucket, key = parse_s3_uri(self.shard.uri)
        return Fetch(client(self.shard.s3).start_many([(bucket, key, self.shard.stamp)]))

    def decode_unit(self, unit: int, fetched: Fetch | None = None) -> ColumnBlock:
        """The object as a one-sample block (the block path)."""
        if fetched is None:
            key, fields = self.read(0)
            return ColumnBlock.single(key, fields)
        got = fetched.wait()[0]
        if isinstance(got, M5Error):
            got.add_context(key=self.shard.key)
            raise got
        return ColumnBlock.single(self.shard.key, {field_name(self.shard.key): bytes(got)})


class RawFormat(Format):
    name = "raw"
    caps = FormatCaps(block_reads=True, batch_fetch=True)

    def count(
        self, uri: str, size: int, stamp: str, options: dict[str, Any], s3: S3Config | None = None
    ) -> int:
        return 1

    def open(self, shard: ShardInfo, options: dict[str, Any]) -> ShardReader:
        return RawReader(shard, options)

    def start_prefetch(self, shards: list[ShardInfo]) -> Callable[[], dict[str, Any]] | None:
        """Start a batch's S3 object GETs, all at once (one each, conditional on the ETag);
        local files are read when needed."""
        remote = [s for s in shards if is_s3(s.uri)]
        if len(remote) < 2:
            return None
        items = [(*parse_s3_uri(s.uri), s.stamp) for s in remote]
        wait = client(remote[0].s3).start_many(items)
        uris = [s.uri for s in remote]
        return lambda: dict(zip(uris, wait()))
