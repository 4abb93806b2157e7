"""Webdataset-layout tar shards.

Members that share a key form one sample: for ``dir/abc.seg.png`` the key is ``dir/abc`` (the
path up to the first dot of the file name) and the field is ``seg.png``. As in webdataset, a
sample is a run of *consecutive* members with the same key.

The index (sample keys, and each member's field, data offset and size) is built by the Cython
header scanner over an ``mmap`` of the shard, so only header pages are read, and cached in
``<cache>/index/`` under a key made of the shard's URI, size and stamp: a changed shard never
reuses a stale index.

With no transform the Loader's block path reads a whole shard as one unit: ``fetch_unit``
starts its download (into memory, ``storage.blobs.shard_map``, unless the disk cache holds it)
when its batches are planned, and a :class:`TarBlock` copies each batch's members straight out
of the map, with no worker process and no shared-memory copy. It needs every sample of the
shard to have the same fields in the same member order (what shard writers produce); a shard
that does not is read row by row instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._cache import cached_index
from .._native import tarscan
from ..batches.columns import ColumnBlock, Keys
from ..catalog.manifest import ShardInfo
from ..errors import CorruptData
from ..storage.blobs import ShardMap, local_shard, shard_map, start_shard_map
from ..storage.local import LocalFile
from ..storage.s3 import S3Config
from .base import Format, Sample, ShardReader
from .caps import Fetch, FormatCaps

__all__ = ["TarBlock", "TarFormat", "TarIndex", "group_members"]


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


def index_buffer(buf: Any, uri: str) -> TarIndex:
    """Scan the shard's bytes ``buf`` (``uri`` names it in errors)."""
    try:
        names, offsets, sizes = tarscan.scan(memoryview(buf) if buf else b"")
    except ValueError as exc:
        raise CorruptData(f"corrupt tar shard: {exc}", uri=uri) from None
    return group_members(names, offsets, sizes)


def build_index(path: str, uri: str) -> TarIndex:
    """Scan the shard at local ``path`` (``uri`` names it in errors)."""
    f = LocalFile(path)
    try:
        buf = f.map()
        try:
            return index_buffer(buf, uri)
        finally:
            if hasattr(buf, "close"):
                buf.close()
    finally:
        f.close()


def load_index(
    uri: str, size: int, stamp: str, s3: S3Config | None = None, buf: Any = None
) -> TarIndex:
    """The shard's index from the cache, or built from ``buf`` (its bytes) when given, else
    from its local copy."""
    arrays = cached_index(
        "tar",
        uri,
        size,
        stamp,
        lambda: (
            index_buffer(buf, uri)
            if buf is not None
            else build_index(local_shard(uri, size, stamp, s3), uri)
        ).arrays(),
    )
    return TarIndex(*(arrays[name] for name in TarIndex.FIELDS))


class TarBlock(ColumnBlock):
    """All samples of one tar shard, read out of a map of its local copy (see module doc).

    A take copies the members it returns into ``bytes``; the block holds only the map (of a
    local file, a disk-cached copy, or the memory file a download went into) and the index,
    and its map is released with it."""

    def __init__(self, buf: Any, index: TarIndex, uri: str) -> None:
        n = len(index)
        starts = index.starts
        width = int(starts[1] - starts[0]) if n else 0
        if n and (np.diff(starts) != width).any():
            raise ValueError(f"{uri}: samples have different numbers of members")
        fields = index.fields.reshape(n, width)
        if n and (fields != fields[0]).any():
            raise ValueError(f"{uri}: samples have different fields")
        #: each member's first byte and end, by sample and field
        self.starts = index.offsets.reshape(n, width)
        self.ends = self.starts + index.sizes.reshape(n, width)
        if n and int(self.ends.max()) > len(buf):
            raise CorruptData("tar index points past the end of the file", uri=uri)
        self.names = [str(f) for f in fields[0]] if n else []
        self.keys = index.keys
        self.buf = buf
        self._setup({}, n, uri, 0)

    def _rows(self, rows: slice | np.ndarray) -> tuple[Keys, dict[str, Any]]:
        buf = self.buf
        cols: dict[str, Any] = {}
        for j, name in enumerate(self.names):
            starts, ends = self.starts[rows, j].tolist(), self.ends[rows, j].tolist()
            cols[name] = [buf[a:b] for a, b in zip(starts, ends)]
        return Keys(self.keys[rows].tolist()), cols

    def row(self, i: int) -> tuple[str, dict[str, Any]]:
        keys, cols = self._rows(slice(i, i + 1))
        return keys[0], {k: v[0] for k, v in cols.items()}

    def take_range(self, a: int, n: int) -> tuple[Keys, dict[str, Any]]:
        return self._rows(slice(a, a + n))

    def take(self, rows: np.ndarray) -> tuple[Keys, dict[str, Any]]:
        return self._rows(np.asarray(rows, dtype=np.int64))


class TarReader(ShardReader):
    """Reads samples from the shard's local copy; the index and the download (S3) happen on
    first use, so opening a reader to start a fetch does not wait for one."""

    def __init__(self, shard: ShardInfo, options: dict[str, Any]) -> None:
        super().__init__(shard, options)
        self._index: TarIndex | None = None
        self._file: LocalFile | None = None

    @property
    def index(self) -> TarIndex:
        if self._index is None:
            s = self.shard
            self._index = load_index(s.uri, s.size, s.stamp, s.s3)
        return self._index

    @property
    def file(self) -> LocalFile:
        if self._file is None:
            s = self.shard
            self._file = LocalFile(local_shard(s.uri, s.size, s.stamp, s.s3))
        return self._file

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

    def fetch_unit(self, unit: int) -> Fetch:
        """Start mapping the shard (downloading it first, from S3) in the background."""
        s = self.shard
        return Fetch.of_future(start_shard_map(s.uri, s.size, s.stamp, s.s3))

    def decode_unit(self, unit: int, fetched: Fetch | None = None) -> ColumnBlock:
        """The whole shard as a :class:`TarBlock` over its map; the download's error, if it
        failed."""
        s = self.shard
        got: ShardMap = (
            fetched.wait() if fetched is not None else shard_map(s.uri, s.size, s.stamp, s.s3)
        )
        if self._index is None:
            self._index = load_index(s.uri, s.size, s.stamp, s.s3, got.buf)
        block = TarBlock(got.buf, self._index, s.uri)
        block.io = got.io
        return block

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class TarFormat(Format):
    name = "tar"
    suffixes = (".tar",)
    caps = FormatCaps(block_reads=True, shard_units=True, whole_shard_fetch=True)

    def count(
        self, uri: str, size: int, stamp: str, options: dict[str, Any], s3: S3Config | None = None
    ) -> int:
        return len(load_index(uri, size, stamp, s3))

    def open(self, shard: ShardInfo, options: dict[str, Any]) -> ShardReader:
        return TarReader(shard, options)
