"""Raw objects: one file is one sample.

The sample key is the file's path relative to the dataset root; its single field is named by
the file's extension (``photo.JPG`` -> ``{"jpg": bytes}``), or ``"data"`` without one, the
webdataset convention, so the same transforms apply to raw and tar datasets.
"""

from __future__ import annotations

import os
from typing import Any

from ..catalog.manifest import ShardInfo
from ..storage.blobs import is_s3, read_object
from .base import Format, Sample, ShardReader

__all__ = ["RawFormat", "field_name"]


def field_name(path: str) -> str:
    ext = os.path.splitext(path)[1]
    return ext[1:].lower() if ext else "data"


class RawReader(ShardReader):
    def read(self, local: int) -> tuple[str, Sample]:
        if local != 0:
            raise IndexError(local)
        data = read_object(self.shard.uri, self.shard.stamp if is_s3(self.shard.uri) else None)
        return self.shard.key, {field_name(self.shard.key): data}


class RawFormat(Format):
    name = "raw"

    def count(self, uri: str, size: int, stamp: str, options: dict[str, Any]) -> int:
        return 1

    def open(self, shard: ShardInfo, options: dict[str, Any]) -> ShardReader:
        return RawReader(shard, options)
