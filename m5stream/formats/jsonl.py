"""JSON Lines shards: one JSON object per non-empty line is one sample.

The line index (start and end byte of every non-empty line) is computed with numpy over an
``mmap`` and cached like the tar index. The sample key is ``<shard key>:<line number>``
(1-based, counting every line, so it matches an editor). ``columns=`` keeps only those fields.
A line that is not a JSON object (malformed, not UTF-8, nested past the recursion limit) is
:class:`~m5stream.errors.CorruptData` naming the shard, the line's key and its byte range.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .._cache import cached_index
from ..catalog.manifest import ShardInfo
from ..errors import ConfigError, CorruptData
from ..storage.blobs import local_shard
from ..storage.local import LocalFile
from ..storage.s3 import S3Config
from .base import Format, Sample, ShardReader, matching_rows
from .caps import FormatCaps

__all__ = ["JsonlFormat", "line_index"]


def line_index(buf: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(starts, ends, line_numbers)`` of the non-empty lines of ``buf``."""
    arr = np.frombuffer(buf, dtype=np.uint8) if len(buf) else np.zeros(0, np.uint8)
    nl = np.flatnonzero(arr == 10)
    starts = np.concatenate(([0], nl + 1)).astype(np.int64)
    ends = np.concatenate((nl, [len(arr)])).astype(np.int64)
    # strip a '\r' before '\n' (CRLF files)
    has_cr = (ends > starts) & (arr[np.maximum(ends - 1, 0)] == 13) if len(arr) else ends > starts
    ends = ends - has_cr.astype(np.int64)
    keep = ends > starts
    numbers = np.arange(1, len(starts) + 1, dtype=np.int64)
    return starts[keep], ends[keep], numbers[keep]


def _build_line_index(path: str) -> dict[str, np.ndarray]:
    f = LocalFile(path)
    try:
        buf = f.map()
        try:
            starts, ends, numbers = line_index(buf)
        finally:
            if hasattr(buf, "close"):
                buf.close()
    finally:
        f.close()
    return {"starts": starts, "ends": ends, "numbers": numbers}


def load_line_index(
    uri: str, size: int, stamp: str, s3: S3Config | None = None
) -> tuple[np.ndarray, ...]:
    arrays = cached_index(
        "jsonl", uri, size, stamp, lambda: _build_line_index(local_shard(uri, size, stamp, s3))
    )
    return arrays["starts"], arrays["ends"], arrays["numbers"]


class JsonlReader(ShardReader):
    def __init__(self, shard: ShardInfo, options: dict[str, Any]) -> None:
        super().__init__(shard, options)
        self.starts, self.ends, self.numbers = load_line_index(
            shard.uri, shard.size, shard.stamp, shard.s3
        )
        self.file = LocalFile(local_shard(shard.uri, shard.size, shard.stamp, shard.s3))
        self.columns: list[str] | None = options.get("columns")

    def read(self, local: int) -> tuple[str, Sample]:
        start, end = int(self.starts[local]), int(self.ends[local])
        key = f"{self.shard.key}:{int(self.numbers[local])}"
        raw = self.file.read(start, end - start)
        try:
            obj = json.loads(raw)
        except ValueError as exc:  # includes UnicodeDecodeError (bytes that are not UTF-8)
            raise CorruptData(
                f"invalid JSON: {exc}", uri=self.shard.uri, key=key, byte_range=f"{start}-{end - 1}"
            ) from None
        except RecursionError:  # nesting deeper than the interpreter's recursion limit
            raise CorruptData(
                "invalid JSON: nested too deeply to parse",
                uri=self.shard.uri,
                key=key,
                byte_range=f"{start}-{end - 1}",
            ) from None
        if not isinstance(obj, dict):
            raise CorruptData(
                f"JSON line is a {type(obj).__name__}, not an object",
                uri=self.shard.uri,
                key=key,
                byte_range=f"{start}-{end - 1}",
            )
        if self.columns is not None:
            missing = [c for c in self.columns if c not in obj]
            if missing:
                raise CorruptData(
                    f"JSON object lacks field(s) {missing}", uri=self.shard.uri, key=key
                )
            obj = {c: obj[c] for c in self.columns}
        return key, obj

    def close(self) -> None:
        self.file.close()


class JsonlFormat(Format):
    name = "jsonl"
    caps = FormatCaps(whole_shard_fetch=True)
    suffixes = (".jsonl", ".ndjson", ".json")

    def validate_options(self, options: dict[str, Any]) -> dict[str, Any]:
        cols = options.get("columns")
        if cols is not None and (
            isinstance(cols, str) or not all(isinstance(c, str) for c in cols)
        ):
            raise ConfigError("columns must be a list of field names")
        return options

    def count(
        self, uri: str, size: int, stamp: str, options: dict[str, Any], s3: S3Config | None = None
    ) -> int:
        return len(load_line_index(uri, size, stamp, s3)[0])

    def select_rows(self, shard: ShardInfo, options: dict[str, Any], expr: Any) -> np.ndarray:
        """Every line is parsed (JSON has no columns to skip); the filter runs on a pyarrow
        table of the objects, numbered as the reader numbers them (non-empty lines)."""
        import pyarrow as pa  # pyarrow (heavy) only when a filter is evaluated

        reader = JsonlReader(shard, {})
        try:
            objs = [reader.read(i)[1] for i in range(len(reader.starts))]
        finally:
            reader.close()
        try:
            table = pa.Table.from_pylist(objs)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise CorruptData(
                f"JSON objects do not make one table for the filter: {exc}", uri=shard.uri
            ) from None
        return matching_rows(table, expr, shard.uri)

    def open(self, shard: ShardInfo, options: dict[str, Any]) -> ShardReader:
        return JsonlReader(shard, options)
