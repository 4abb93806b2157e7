"""Webdataset-layout tar shards.

Members that share a key form one sample: for ``dir/abc.seg.png`` the key is ``dir/abc`` (the
path up to the first dot of the file name) and the field is ``seg.png``. As in webdataset, a
sample is a run of *consecutive* members with the same key.

The index (sample keys, and each member's field, data offset and size) is built by the Cython
header scanner over an ``mmap`` of the shard, so only header pages are read, and cached in
``<cache>/index/`` under a key made of the shard's URI, size and stamp: a changed shard never
reuses a stale index.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._cache import cached_index
from .._native import tarscan
from ..catalog.manifest import ShardInfo
from ..errors import CorruptData
from ..storage.blobs import local_shard
from ..storage.local import LocalFile
from ..storage.s3 import S3Config
from .base import Format, Sample, ShardReader

__all__ = ["TarFormat", "TarIndex", "group_members"]


class TarIndex:
    """Samples of one tar shard: ``keys[i]`` owns members ``starts[i]:starts[i+1]``."""

    FIELDS = ("keys", "starts", "fields", "offsets", "sizes")

    def __init__(
        self,
        keys: np.ndarray,
        starts: np.ndarray,
        fields: np.ndarray,
        offsets: np.ndarray,
        sizes: np.ndarray,
    ) -> None:
        self.keys = keys
        self.starts = starts
        self.fields = fields
        self.offsets = offsets
        self.sizes = sizes

    def __len__(self) -> int:
        return len(self.keys)

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.FIELDS}


def _split_name(name: str) -> tuple[str, str]:
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    if dot < 0:
        return name, "data"
    return name[:dot], name[dot + 1 :]


def group_members(names: list[bytes], offsets: np.ndarray, sizes: np.ndarray) -> TarIndex:
    """Group scanned members into webdataset samples (consecutive runs of one key)."""
    keys: list[str] = []
    starts: list[int] = []
    fields: list[str] = []
    prev = None
    for i, raw in enumerate(names):
        name = raw.decode("utf-8", "surrogateescape")
        if name.startswith("./"):
            name = name[2:]
        key, field = _split_name(name)
        if key != prev:
            keys.append(key)
            starts.append(i)
            prev = key
        fields.append(field)
    starts.append(len(names))
    return TarIndex(
        np.asarray(keys, dtype=np.str_),
        np.asarray(starts, dtype=np.int64),
        np.asarray(fields, dtype=np.str_),
        np.asarray(offsets, dtype=np.int64),
        np.asarray(sizes, dtype=np.int64),
    )


def build_index(path: str, uri: str) -> TarIndex:
    """Scan the shard at local ``path`` (``uri`` names it in errors)."""
    f = LocalFile(path)
    try:
        buf = f.map()
        try:
            names, offsets, sizes = tarscan.scan(memoryview(buf) if buf else b"")
        except ValueError as exc:
            raise CorruptData(f"corrupt tar shard: {exc}", uri=uri) from None
        finally:
            if hasattr(buf, "close"):
                buf.close()
    finally:
        f.close()
    return group_members(names, offsets, sizes)


def load_index(uri: str, size: int, stamp: str, s3: S3Config | None = None) -> TarIndex:
    arrays = cached_index(
        "tar",
        uri,
        size,
        stamp,
        lambda: build_index(local_shard(uri, size, stamp, s3), uri).arrays(),
    )
    return TarIndex(*(arrays[name] for name in TarIndex.FIELDS))


class TarReader(ShardReader):
    def __init__(self, shard: ShardInfo, options: dict[str, Any]) -> None:
        super().__init__(shard, options)
        self.index = load_index(shard.uri, shard.size, shard.stamp, shard.s3)
        self.file = LocalFile(local_shard(shard.uri, shard.size, shard.stamp, shard.s3))

    def read(self, local: int) -> tuple[str, Sample]:
        ix = self.index
        key = str(ix.keys[local])
        lo, hi = int(ix.starts[local]), int(ix.starts[local + 1])
        sample: Sample = {}
        for m in range(lo, hi):
            off, size = int(ix.offsets[m]), int(ix.sizes[m])
            try:
                sample[str(ix.fields[m])] = self.file.read(off, size)
            except CorruptData as exc:
                exc.add_context(key=key)
                exc.context["uri"] = exc.uri = self.shard.uri  # the shard, not its cached copy
                raise
        return key, sample

    def close(self) -> None:
        self.file.close()


class TarFormat(Format):
    name = "tar"
    suffixes = (".tar",)

    def count(
        self, uri: str, size: int, stamp: str, options: dict[str, Any], s3: S3Config | None = None
    ) -> int:
        return len(load_index(uri, size, stamp, s3))

    def open(self, shard: ShardInfo, options: dict[str, Any]) -> ShardReader:
        return TarReader(shard, options)
