"""Parquet shards: one row is one sample; random access by row group.

``count`` reads only the footer. A reader decodes one row group at a time (the projected
``columns`` only) and keeps it while consecutive reads stay inside it, which is the common case
with the block shuffle and the natural order. Primitive non-null columns are kept as numpy
arrays (samples get numpy scalars); others as Python lists (``bytes``, ``str``, lists, ``None``).
The sample key is ``<shard key>#<row>``.

Over S3 nothing is downloaded whole: the footer is one ranged GET of the file's tail (two when
the metadata is larger than the guess), cached on disk with the shard indexes so that workers
do not fetch it again; a row group is read by fetching the byte ranges of the *projected*
column chunks only, all in flight at once (neighbouring chunks closer than ``_MERGE_GAP`` are
merged into one request), and pyarrow decodes them from memory.
"""

from __future__ import annotations

import bisect
import io
import mmap
import os
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from .._cache import cached_index
from .._fork import on_fork_in_child
from ..batches.columns import ColumnBlock
from ..catalog.manifest import ShardInfo
from ..errors import ConfigError, CorruptData, M5Error, NotFound
from ..storage.blobs import is_s3
from ..storage.buffers import range_buffers
from ..storage.s3 import S3Config, client, parse_s3_uri
from .base import (
    Format,
    Sample,
    ShardReader,
    check_unique_columns,
    expression_columns,
    matching_rows,
)
from .caps import Fetch, FormatCaps

__all__ = ["ParquetFormat", "footer_metadata"]

_FOOTER_GUESS = 64 << 10
_MERGE_GAP = 64 << 10


class _BlockCache:
    """Row groups decoded for random access (``block_at``), kept by the process up to
    ``limit`` bytes, least recently used first out: a shuffled order over a source whose
    projected columns fit decodes each row group once per process, not once per batch. Keyed
    by the file's URI and stamp, the projection and the row group."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[tuple[Any, ...], tuple[ColumnBlock, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> ColumnBlock | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            self._items.move_to_end(key)
            return hit[0]

    def put(self, key: tuple[Any, ...], block: ColumnBlock, nbytes: int) -> None:
        if nbytes > self.limit // 4:
            return  # a row group this large would push out everything else
        with self._lock:
            if key in self._items:
                return
            self._items[key] = (block, nbytes)
            self._bytes += nbytes
            while self._bytes > self.limit:
                _, (_, n) = self._items.popitem(last=False)
                self._bytes -= n


def _block_bytes(block: ColumnBlock) -> int:
    """About what a decoded block holds: numpy arrays, text columns (offsets and bytes),
    Arrow arrays."""
    n = 0
    for v in block.data.values():
        got = getattr(v, "nbytes", None)
        if got is None:  # a TextColumn
            got = sum(getattr(getattr(v, a, None), "nbytes", 0) for a in ("offsets", "data"))
        n += int(got)
    return max(n, 1)


_BLOCKS = _BlockCache(int(os.environ.get("M5STREAM_BLOCK_CACHE_BYTES", 64 << 20)))


@on_fork_in_child
def _reset_blocks_after_fork() -> None:
    global _BLOCKS
    _BLOCKS = _BlockCache(_BLOCKS.limit)  # the parent's lock may have been held


_MAGIC = b"PAR1"


def _arrow_errors() -> tuple[type[BaseException], ...]:
    """What pyarrow raises for a damaged file: any Arrow error (invalid, not implemented,
    index, type, capacity, and memory for a declared size it cannot allocate) or an I/O one."""
    import pyarrow as pa  # pyarrow (heavy) only when this format is read

    return (pa.ArrowException, OSError)


def _open_local(uri: str) -> Any:
    import pyarrow.parquet as pq  # pyarrow (heavy) only when this format is read

    try:
        return pq.ParquetFile(uri)
    except FileNotFoundError:
        raise NotFound("no such file", uri=uri) from None
    except _arrow_errors() as exc:  # opening reads and parses only the footer
        raise CorruptData(f"corrupt Parquet file (footer): {exc}", uri=uri) from None


def _footer_length(tail: bytes, size: int, uri: str) -> int:
    """Bytes of metadata + length + magic at the end of the file, checked."""
    if size < 12 or tail[-4:] != _MAGIC:
        raise CorruptData("not a Parquet file (no PAR1 magic at its end)", uri=uri)
    need = int.from_bytes(tail[-8:-4], "little") + 8
    if need > size - 4:
        raise CorruptData(f"corrupt Parquet footer (metadata length {need - 8})", uri=uri)
    return need


def _tail_range(size: int) -> tuple[int, int]:
    n = min(size, _FOOTER_GUESS)
    return size - n, n


def _footer_from_tail(tail: bytes, uri: str, size: int, stamp: str, s3: S3Config | None) -> bytes:
    need = _footer_length(tail, size, uri)
    if need > len(tail):  # metadata larger than the guess: one more GET for exactly it
        bucket, key = parse_s3_uri(uri)
        tail = client(s3).get(bucket, key, size - need, need, etag=stamp)
    return tail[-need:]


def _metadata(footer: bytes, uri: str) -> Any:
    import pyarrow as pa  # pyarrow (heavy) only when this format is read
    import pyarrow.parquet as pq

    try:  # magic + metadata + length + magic is a valid (row-less) file to the footer parser
        return pq.read_metadata(pa.BufferReader(_MAGIC + footer))
    except _arrow_errors() as exc:
        raise CorruptData(f"corrupt Parquet footer: {exc}", uri=uri) from None


def _cached_footer(
    uri: str, size: int, stamp: str, s3: S3Config | None, tail: bytes | None = None
) -> bytes:
    def build() -> dict[str, np.ndarray]:
        got = tail
        if got is None:
            bucket, key = parse_s3_uri(uri)
            start, n = _tail_range(size)
            got = client(s3).get(bucket, key, start, n, etag=stamp)
        footer = _footer_from_tail(got, uri, size, stamp, s3)
        return {"footer": np.frombuffer(footer, dtype=np.uint8)}

    return cached_index("parquet-footer", uri, size, stamp, build)["footer"].tobytes()


def footer_metadata(uri: str, size: int, stamp: str, s3: S3Config | None = None) -> Any:
    """The file's ``pyarrow.parquet.FileMetaData`` (S3: from the cached footer)."""
    if not is_s3(uri):
        return _open_local(uri).metadata
    return _metadata(_cached_footer(uri, size, stamp, s3), uri)


class _SparseFile(io.RawIOBase):
    """A read-only file of ``size`` bytes of which only some ranges are held; a read outside
    them is one ranged GET (correct, just slower; counted like any other)."""

    def __init__(self, size: int, fetch: Any) -> None:
        super().__init__()
        self._size = size
        self._fetch = fetch
        self._pos = 0
        self._starts: list[int] = []
        self._parts: list[bytes | memoryview] = []

    def add(self, start: int, data: bytes | memoryview) -> None:
        i = bisect.bisect_left(self._starts, start)
        self._starts.insert(i, start)
        self._parts.insert(i, data)

    def drop(self) -> None:
        """Forget the parts (memoryviews are released: the buffer under them can be reused
        once every slice handed out is gone too)."""
        for p in self._parts:
            if isinstance(p, memoryview):
                p.release()
        self._starts, self._parts = [], []

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, n: int = -1) -> bytes | memoryview:
        a = self._pos
        b = self._size if n is None or n < 0 else min(self._size, a + n)
        if b <= a:
            return b""
        self._pos = b
        i = bisect.bisect_right(self._starts, a) - 1
        if i >= 0 and self._starts[i] + len(self._parts[i]) >= b:
            s = self._starts[i]
            return self._parts[i][a - s : b - s]
        data = self._fetch(a, b - a)
        self.add(a, data)
        return data

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)


def _chunk_ranges(rg: Any, columns: list[str] | None) -> list[tuple[int, int]]:
    """Merged ``(offset, length)`` byte ranges of the row group's chunks for ``columns``."""
    want = None if columns is None else set(columns)
    spans = []
    for i in range(rg.num_columns):
        cc = rg.column(i)
        if want is not None and cc.path_in_schema.split(".")[0] not in want:
            continue
        start = cc.data_page_offset
        if cc.has_dictionary_page and cc.dictionary_page_offset:
            start = min(start, cc.dictionary_page_offset)
        spans.append((start, start + cc.total_compressed_size))
    spans.sort()
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a - merged[-1][1] <= _MERGE_GAP:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b - a) for a, b in merged]


class ParquetReader(ShardReader):
    def __init__(self, shard: ShardInfo, options: dict[str, Any]) -> None:
        super().__init__(shard, options)
        self.remote = is_s3(shard.uri)
        if self.remote:
            self.file: Any = None
            md = footer_metadata(shard.uri, shard.size, shard.stamp, shard.s3)
        else:
            self.file = _open_local(shard.uri)
            md = self.file.metadata
        self.metadata = md
        rows = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
        self.group_starts = np.concatenate(([0], np.cumsum(rows))).astype(np.int64)
        self.columns: list[str] | None = options.get("columns")
        self._group = -1
        self._block: ColumnBlock | None = None

    def fetch_unit(self, unit: int) -> Fetch | None:
        """Start the ranged GETs of row group ``unit``'s projected column chunks (S3; local
        files: nothing to do); :meth:`decode_unit` waits for them.

        The bodies land in one receive buffer from the process's pool (``storage.buffers``:
        its pages were mapped by an earlier unit), each range at its distance from the first,
        and pyarrow reads the chunks through a file object that maps file offsets into it:
        one Python call per chunk read, no copy."""
        if not self.remote or not 0 <= unit < self.metadata.num_row_groups:
            return None
        s = self.shard
        bucket, key = parse_s3_uri(s.uri)
        ranges = _chunk_ranges(self.metadata.row_group(unit), self.columns)
        lo = ranges[0][0]
        try:
            buf: mmap.mmap | None = range_buffers().take(max(o + n for o, n in ranges) - lo)
        except (OSError, ValueError, OverflowError):
            buf = None  # no room for the buffer: each range arrives as bytes instead
        whole = memoryview(buf) if buf is not None else None
        items = [
            (bucket, key, s.stamp, o, n)
            if whole is None
            else (bucket, key, s.stamp, o, n, whole[o - lo : o - lo + n])
            for o, n in ranges
        ]
        return Fetch(client(s.s3).start_many(items), context=(ranges, whole))

    def _remote_group(self, g: int, fetched: Fetch | None = None) -> Any:
        import pyarrow as pa  # pyarrow (heavy) only when this format is read
        import pyarrow.parquet as pq

        s = self.shard
        fetch = fetched if fetched is not None else self.fetch_unit(g)
        assert fetch is not None  # a remote file's row group always has ranges to fetch
        ranges, whole = fetch.context
        got = fetch.wait()
        for part in got:
            if isinstance(part, M5Error):
                part.add_context(key=f"{s.key} row group {g}")
                raise part
        bucket, key = parse_s3_uri(s.uri)
        c = client(s.s3)
        # a read outside the fetched ranges (none is expected) is one more ranged GET
        sparse = _SparseFile(s.size, lambda off, n: c.get(bucket, key, off, n, etag=s.stamp))
        for (off, _), part in zip(ranges, got):
            sparse.add(off, part)
        f = pq.ParquetFile(pa.PythonFile(sparse, mode="r"), metadata=self.metadata)
        table = f.read_row_group(g, columns=self.columns)
        del f, got
        if whole is not None:  # the ranges landed in a pooled buffer: give it back
            buf = whole.obj
            sparse.drop()
            whole.release()
            range_buffers().give(buf)  # kept out of the pool while anything holds a view
        return table

    def decode_table(self, unit: int, fetched: Fetch | None = None) -> Any:
        """Row group ``unit``'s projected columns as a pyarrow table."""
        g = int(unit)
        if not 0 <= g < len(self.group_starts) - 1:
            raise CorruptData(
                f"row group {g} is not in the file ({len(self.group_starts) - 1} row groups): "
                "it changed since the manifest was made",
                uri=self.shard.uri,
            )
        try:
            if self.remote:
                table = self._remote_group(g, fetched)
            else:
                table = self.file.read_row_group(g, columns=self.columns)
            # the Parquet reader does not check that strings are UTF-8: a damaged or foreign
            # file would fail later, converting a value, with a bare UnicodeDecodeError
            table.validate(full=True)
        except _arrow_errors() as exc:
            raise CorruptData(f"corrupt Parquet row group {g}: {exc}", uri=self.shard.uri) from None
        check_unique_columns(table.column_names, f"Parquet row group {g}", self.shard.uri)
        return table

    def decode_unit(self, unit: int, fetched: Fetch | None = None) -> ColumnBlock:
        g = int(unit)
        table = self.decode_table(g, fetched)
        want = int(self.group_starts[g + 1] - self.group_starts[g])
        if table.num_rows != want:  # a footer that lies, or one of another version of the file
            raise CorruptData(
                f"row group {g} decoded to {table.num_rows} rows, the footer says {want}",
                uri=self.shard.uri,
            )
        return ColumnBlock(table, self.shard.key, int(self.group_starts[g]))

    def block_at(self, local: int) -> ColumnBlock:
        g = int(np.searchsorted(self.group_starts, local, side="right")) - 1
        if g != self._group or self._block is None:
            self._block = None
            key = (self.shard.uri, self.shard.stamp, tuple(self.columns or ()), g)
            block = _BLOCKS.get(key)
            if block is None:
                block = self.decode_unit(g)
                _BLOCKS.put(key, block, _block_bytes(block))
            self._block = block
            self._group = g
        return self._block

    def read(self, local: int) -> tuple[str, Sample]:
        block = self.block_at(local)
        return block.row(local - block.first)

    def close(self) -> None:
        self._block = None
        self._group = -1


def _check_columns(md: Any, cols: list[str] | None, uri: str) -> None:
    if cols:
        names = set(md.schema.to_arrow_schema().names)
        missing = [c for c in cols if c not in names]
        if missing:
            raise ConfigError(
                f"column(s) {missing} not in the Parquet schema (has {sorted(names)})", uri=uri
            )


class ParquetFormat(Format):
    name = "parquet"
    suffixes = (".parquet", ".pq")
    caps = FormatCaps(columnar=True, block_reads=True, decode_units=True)
    modules = ("pyarrow", "pyarrow.parquet")

    def validate_options(self, options: dict[str, Any]) -> dict[str, Any]:
        cols = options.get("columns")
        if cols is not None and (
            isinstance(cols, str) or not all(isinstance(c, str) for c in cols)
        ):
            raise ConfigError("columns must be a list of column names")
        return options

    def count(
        self, uri: str, size: int, stamp: str, options: dict[str, Any], s3: S3Config | None = None
    ) -> int:
        md = footer_metadata(uri, size, stamp, s3)
        _check_columns(md, options.get("columns"), uri)
        return int(md.num_rows)

    def count_many(
        self,
        objects: list[tuple[str, int, str]],
        options: dict[str, Any],
        s3: S3Config | None = None,
    ) -> list[int]:
        """Footers of many S3 files fetched concurrently (one tail GET each), then counted."""
        remote = [o for o in objects if is_s3(o[0]) and o[1] >= 12]  # smaller: corrupt
        if len(remote) > 1:
            c = client(s3)
            items = [(*parse_s3_uri(u), st, *_tail_range(sz)) for u, sz, st in remote]
            for (u, sz, st), got in zip(remote, c.get_many(items)):
                if isinstance(got, M5Error):
                    raise got
                _cached_footer(u, sz, st, s3, tail=got)
        return [self.count(u, sz, st, options, s3) for u, sz, st in objects]

    def open(self, shard: ShardInfo, options: dict[str, Any]) -> ShardReader:
        return ParquetReader(shard, options)

    def select_rows(self, shard: ShardInfo, options: dict[str, Any], expr: Any) -> np.ndarray:
        """Row group by row group, reading only the column chunks ``expr`` references."""
        md = footer_metadata(shard.uri, shard.size, shard.stamp, shard.s3)
        cols = expression_columns(expr, md.schema.to_arrow_schema(), shard.uri)
        reader = ParquetReader(shard, {**options, "columns": cols})
        try:
            parts = [
                matching_rows(reader.decode_table(g), expr, shard.uri) + reader.group_starts[g]
                for g in range(md.num_row_groups)
            ]
        finally:
            reader.close()
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def unit_starts(self, shard: ShardInfo, options: dict[str, Any]) -> np.ndarray:
        md = footer_metadata(shard.uri, shard.size, shard.stamp, shard.s3)
        rows = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
        return np.concatenate(([0], np.cumsum(rows)[:-1])).astype(np.int64)
