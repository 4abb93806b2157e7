"""CSV shards: one record is one sample.

A shard is parsed whole by pyarrow's multithreaded CSV reader the first time a reader needs it
(quoted fields may span lines, so a record cannot be found by scanning for newlines) and kept
as columns while the reader is open; the record count is cached with the shard indexes so a
manifest is built once per file. The sample key is ``<shard key>#<record>`` (0-based, after the
header). Options (all stored in the manifest, so they are part of its fingerprint):

- ``delimiter`` (default ``,``; pass ``"\t"`` for TSV), ``quote_char`` (``"``, or
  ``None`` for none), ``escape_char`` (``None``);
- ``header``: header lines before the records; without ``column_names`` (default ``1``) the
  names are read from the last of them, with ``column_names`` (default ``0``) they are skipped;
- ``column_names``: the names when the file has no header line (Glue tables give them);
- ``column_types``: ``{name: type}`` with Hive/Glue type names (``int``, ``bigint``,
  ``double``, ``boolean``, ``date``, ``timestamp``, ``decimal(p,s)``, ``string`` ...);
- ``columns``: keep only these fields.

A file pyarrow cannot parse, or whose header names a column twice, is
:class:`~m5stream.errors.CorruptData` naming the file (and pyarrow's row or column).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from .._cache import cached_index
from ..batches.columns import ColumnBlock
from ..catalog.manifest import ShardInfo
from ..errors import ConfigError, CorruptData, NotFound
from ..storage.blobs import local_shard
from ..storage.s3 import S3Config
from .base import (
    Format,
    Sample,
    ShardReader,
    check_unique_columns,
    expression_columns,
    matching_rows,
)
from .caps import Fetch, FormatCaps

__all__ = ["CsvFormat", "arrow_type"]

_OPTIONS = {
    "columns",
    "delimiter",
    "quote_char",
    "escape_char",
    "header",
    "column_names",
    "column_types",
}


def arrow_type(hive: str) -> Any:
    """The Arrow type of a Hive/Glue column type name (``ConfigError`` for unknown ones)."""
    import pyarrow as pa  # pyarrow (heavy) only when this format is read

    t = hive.strip().lower()
    simple = {
        "tinyint": pa.int8(),
        "smallint": pa.int16(),
        "int": pa.int32(),
        "integer": pa.int32(),
        "bigint": pa.int64(),
        "float": pa.float32(),
        "double": pa.float64(),
        "boolean": pa.bool_(),
        "string": pa.string(),
        "binary": pa.binary(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("ms"),
    }
    if t in simple:
        return simple[t]
    if re.fullmatch(r"(varchar|char)\(\d+\)", t):
        return pa.string()
    m = re.fullmatch(r"decimal\((\d+)\s*,\s*(\d+)\)", t)
    if m:
        return pa.decimal128(int(m.group(1)), int(m.group(2)))
    raise ConfigError(f"column type {hive!r} is not supported for CSV")


def _csv_options(options: dict[str, Any], columns: list[str] | None) -> dict[str, Any]:
    """pyarrow's read, parse and convert options for a shard read with ``options``."""
    from pyarrow import csv

    names = options.get("column_names")
    types = {k: arrow_type(v) for k, v in (options.get("column_types") or {}).items()}
    if names:  # header lines are skipped; the names are given
        read = csv.ReadOptions(column_names=names, skip_rows=int(options.get("header", 0)))
    else:  # the last header line holds the names
        read = csv.ReadOptions(skip_rows=max(0, int(options.get("header", 1)) - 1))
    parse = csv.ParseOptions(
        delimiter=options.get("delimiter", ","),
        quote_char=options.get("quote_char", '"') or False,
        escape_char=options.get("escape_char") or False,
        newlines_in_values=options.get("quote_char", '"') is not None,
    )
    convert = csv.ConvertOptions(column_types=types, include_columns=columns)
    return {"read_options": read, "parse_options": parse, "convert_options": convert}


def _parse(path: str, uri: str, options: dict[str, Any], columns: list[str] | None) -> Any:
    import pyarrow as pa  # pyarrow (heavy) only when this format is read
    from pyarrow import csv

    try:
        table = csv.read_csv(path, **_csv_options(options, columns))
        names = table.column_names  # header names that are not UTF-8 fail here
    except FileNotFoundError:
        raise NotFound("no such file", uri=uri) from None
    # every Arrow error (invalid, key, type, not implemented...) and header names that are not
    # UTF-8 (pyarrow raises UnicodeDecodeError for those) are the file's fault
    except (pa.ArrowException, UnicodeDecodeError) as exc:
        raise CorruptData(f"malformed CSV: {exc}", uri=uri) from None
    check_unique_columns(names, "malformed CSV: the header", uri)
    return table


def _count(uri: str, size: int, stamp: str, options: dict[str, Any], s3: S3Config | None) -> int:
    def build() -> dict[str, np.ndarray]:
        path = local_shard(uri, size, stamp, s3)
        table = _parse(path, uri, options, options.get("columns"))
        return {"rows": np.array([table.num_rows], dtype=np.int64)}

    # the count depends on how the file is parsed: key the cache entry on the options too
    fmt_key = repr(sorted((k, repr(v)) for k, v in options.items() if k in _OPTIONS))
    return int(cached_index("csv", f"{uri}\x1f{fmt_key}", size, stamp, build)["rows"][0])


class CsvReader(ShardReader):
    def __init__(self, shard: ShardInfo, options: dict[str, Any]) -> None:
        super().__init__(shard, options)
        path = local_shard(shard.uri, shard.size, shard.stamp, shard.s3)
        self.block = ColumnBlock(
            _parse(path, shard.uri, options, options.get("columns")), shard.key, 0
        )
        self.num_rows = self.block.num_rows

    def read(self, local: int) -> tuple[str, Sample]:
        if not 0 <= local < self.num_rows:
            raise CorruptData(
                f"record {local} is beyond the file's {self.num_rows} records: it changed "
                "since the manifest was made",
                uri=self.shard.uri,
            )
        return self.block.row(local)

    def block_at(self, local: int) -> ColumnBlock:
        if not 0 <= local < self.num_rows:
            self.read(local)  # raises, naming the record
        return self.block

    def decode_unit(self, unit: int, fetched: Fetch | None = None) -> ColumnBlock:
        return self.block  # one unit: the file, parsed when the reader opened


def _select(shard: ShardInfo, options: dict[str, Any], expr: Any) -> np.ndarray:
    # pyarrow parses the whole file (records may span lines) but converts only the columns
    # the filter needs
    path = local_shard(shard.uri, shard.size, shard.stamp, shard.s3)
    head = _parse_schema(path, shard.uri, options)
    cols = expression_columns(expr, head, shard.uri)
    return matching_rows(_parse(path, shard.uri, options, cols), expr, shard.uri)


def _parse_schema(path: str, uri: str, options: dict[str, Any]) -> Any:
    """The schema the file parses to (pyarrow reads its first block only)."""
    import pyarrow as pa
    from pyarrow import csv

    try:
        with csv.open_csv(path, **_csv_options(options, None)) as r:
            schema = r.schema
            names = schema.names  # header names that are not UTF-8 fail here
    except (pa.ArrowException, UnicodeDecodeError) as exc:  # as in _parse
        raise CorruptData(f"malformed CSV: {exc}", uri=uri) from None
    check_unique_columns(names, "malformed CSV: the header", uri)
    return schema


class CsvFormat(Format):
    name = "csv"
    suffixes = (".csv",)
    caps = FormatCaps(columnar=True, block_reads=True, whole_shard_fetch=True)
    modules = ("pyarrow", "pyarrow.csv")

    def validate_options(self, options: dict[str, Any]) -> dict[str, Any]:
        unknown = set(options) - _OPTIONS
        if unknown:
            raise ConfigError(f"unknown CSV option(s) {sorted(unknown)}; known: {sorted(_OPTIONS)}")
        cols = options.get("columns")
        if cols is not None and (
            isinstance(cols, str) or not all(isinstance(c, str) for c in cols)
        ):
            raise ConfigError("columns must be a list of column names")
        for k in ("delimiter", "quote_char", "escape_char"):
            v = options.get(k)
            if v is not None and (not isinstance(v, str) or len(v) != 1):
                raise ConfigError(f"CSV {k} must be one character, not {v!r}")
        names = options.get("column_names")
        if cols and names:
            missing = [c for c in cols if c not in names]
            if missing:
                raise ConfigError(f"column(s) {missing} not in the table (has {names})")
        for t in (options.get("column_types") or {}).values():
            arrow_type(t)  # unknown type names fail here, at manifest time
        return options

    def count(
        self, uri: str, size: int, stamp: str, options: dict[str, Any], s3: S3Config | None = None
    ) -> int:
        return _count(uri, size, stamp, options, s3)

    def select_rows(self, shard: ShardInfo, options: dict[str, Any], expr: Any) -> np.ndarray:
        return _select(shard, options, expr)

    def open(self, shard: ShardInfo, options: dict[str, Any]) -> ShardReader:
        return CsvReader(shard, options)
