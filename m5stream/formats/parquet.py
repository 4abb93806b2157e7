"""Parquet shards: one row is one sample; random access by row group.

``count`` reads only the footer. A reader decodes one row group at a time (the projected
``columns`` only) and keeps it while consecutive reads stay inside it, which is the common case
with the block shuffle and the natural order. Primitive non-null columns are kept as numpy
arrays (samples get numpy scalars); others as Python lists (``bytes``, ``str``, lists, ``None``).
The sample key is ``<shard key>#<row>``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..catalog.manifest import ShardInfo
from ..errors import ConfigError, CorruptData, NotFound
from ..storage.blobs import local_shard
from ..storage.s3 import S3Config
from .base import Format, Sample, ShardReader

__all__ = ["ParquetFormat"]


def _open_file(uri: str, size: int, stamp: str, s3: S3Config | None = None) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(local_shard(uri, size, stamp, s3))
    except FileNotFoundError:
        raise NotFound("no such file", uri=uri) from None
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise CorruptData(f"corrupt Parquet file: {exc}", uri=uri) from None


def _column_values(col: Any) -> Any:
    import pyarrow as pa

    t = col.type
    if col.null_count == 0 and (
        pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
    ):
        return col.to_numpy()
    return col.to_pylist()


class ParquetReader(ShardReader):
    def __init__(self, shard: ShardInfo, options: dict[str, Any]) -> None:
        super().__init__(shard, options)
        self.file = _open_file(shard.uri, shard.size, shard.stamp, shard.s3)
        md = self.file.metadata
        rows = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
        self.group_starts = np.concatenate(([0], np.cumsum(rows))).astype(np.int64)
        self.columns: list[str] | None = options.get("columns")
        self._group = -1
        self._data: dict[str, Any] = {}

    def _load_group(self, g: int) -> None:
        import pyarrow as pa

        try:
            table = self.file.read_row_group(g, columns=self.columns)
        except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
            raise CorruptData(f"corrupt Parquet row group {g}: {exc}", uri=self.shard.uri) from None
        self._data = {
            name: _column_values(table.column(name).combine_chunks()) for name in table.column_names
        }
        self._group = g

    def read(self, local: int) -> tuple[str, Sample]:
        g = int(np.searchsorted(self.group_starts, local, side="right")) - 1
        if g != self._group:
            self._load_group(g)
        row = local - int(self.group_starts[g])
        return f"{self.shard.key}#{local}", {k: v[row] for k, v in self._data.items()}

    def close(self) -> None:
        self._data = {}
        self._group = -1


class ParquetFormat(Format):
    name = "parquet"
    suffixes = (".parquet", ".pq")

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
        f = _open_file(uri, size, stamp, s3)
        cols = options.get("columns")
        if cols:
            names = set(f.schema_arrow.names)
            missing = [c for c in cols if c not in names]
            if missing:
                raise ConfigError(
                    f"column(s) {missing} not in the Parquet schema (has {sorted(names)})",
                    uri=uri,
                )
        return int(f.metadata.num_rows)

    def open(self, shard: ShardInfo, options: dict[str, Any]) -> ShardReader:
        return ParquetReader(shard, options)
