"""Columns of a batch read column-wise (Parquet, CSV): concatenation and finishing.

A column is a 1-d numpy array, a Python list, or - for text and binary columns without nulls -
a ``pyarrow`` string/binary array. The Arrow form is kept as long as possible: a worker copies
its offsets and bytes into the batch's shared-memory slot (no Python object per value, nothing
pickled), and the trainer makes the Python ``str``/``bytes`` list once, when the batch is
delivered. :func:`finish` turns every column into what the row path would have batched
(``workers.assemble`` rules), so both paths deliver identical batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["arrow_text", "concat", "finish", "settle"]


def arrow_text(column: Any) -> bool:
    """A pyarrow string/binary array without nulls (shipped as offsets + bytes)."""
    t = getattr(column, "type", None)
    if t is None or getattr(column, "null_count", 1) != 0:
        return False
    import pyarrow as pa

    return bool(pa.types.is_string(t) or pa.types.is_binary(t))


def _as_list(column: Any) -> list[Any]:
    if isinstance(column, list):
        return column
    if isinstance(column, np.ndarray):
        return column.tolist()
    return list(column.to_pylist())


def concat(columns: list[Any]) -> Any:
    """One column from the pieces of several shards (types as uniform as they allow)."""
    if len(columns) == 1:
        return columns[0]
    if all(isinstance(c, np.ndarray) for c in columns):
        return np.concatenate(columns)
    if all(arrow_text(c) for c in columns) and len({c.type for c in columns}) == 1:
        import pyarrow as pa

        return pa.concat_arrays(columns)
    return [v for c in columns for v in _as_list(c)]


def settle(column: Any) -> Any:
    """Arrow text stays; other Arrow arrays and lists follow the row path's batching rules."""
    if isinstance(column, np.ndarray) or arrow_text(column):
        return column
    from .workers.assemble import classify

    values = _as_list(column)
    kind, info = classify(values)
    if kind == "array":
        return info
    if kind == "stack":
        return np.stack(values)
    return values


def finish(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch with Arrow text columns made into Python lists (the in-process path)."""
    return {k: _as_list(v) if arrow_text(v) else v for k, v in batch.items()}


def _column_values(col: Any) -> Any:
    """Primitive non-null columns as numpy; others stay Arrow arrays (made into Python values
    per batch or per row, never a whole block at a time)."""
    import pyarrow as pa

    t = col.type
    if col.null_count == 0 and (
        pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
    ):
        return col.to_numpy()
    return col


def _take(values: Any, sel: slice | np.ndarray) -> Any:
    """``values[sel]``: rows of a numpy column, or of an Arrow column (still Arrow)."""
    if isinstance(values, np.ndarray):
        return values[sel]
    if isinstance(sel, slice):
        return values.slice(sel.start, sel.stop - sel.start)
    return values.take(sel)


class ColumnBlock:
    """The decoded columns of one block of a column-wise shard (a Parquet row group, a CSV
    file), whose rows are the shard's samples ``first .. first + num_rows - 1``; the sample key
    of row ``i`` is ``<shard key>#<first + i>``."""

    def __init__(self, table: Any, shard_key: str, first: int) -> None:
        self.data = {
            name: _column_values(table.column(name).combine_chunks()) for name in table.column_names
        }
        self.num_rows = int(table.num_rows)
        self.shard_key = shard_key
        self.first = first
        self._lists: dict[str, list[Any]] = {}
        self._keys: Any = None

    def _values(self, name: str) -> Any:
        """Column ``name`` indexable by row (numpy, or the Arrow column as a Python list)."""
        v = self.data[name]
        if isinstance(v, np.ndarray):
            return v
        got = self._lists.get(name)
        if got is None:
            got = self._lists[name] = v.to_pylist()
        return got

    def row(self, i: int) -> tuple[str, dict[str, Any]]:
        """Row ``i``'s key and fields (the row path)."""
        return f"{self.shard_key}#{self.first + i}", {k: self._values(k)[i] for k in self.data}

    def _all_keys(self) -> Any:
        # made once per block as Arrow: a Python string per key costs ~5x more than Arrow
        # making the list from these
        if self._keys is None:
            import pyarrow as pa
            import pyarrow.compute as pc

            rows = np.arange(self.first, self.first + self.num_rows, dtype=np.int64)
            self._keys = pc.binary_join_element_wise(
                pa.scalar(self.shard_key + "#"), pa.array(rows).cast(pa.string()), ""
            )
        return self._keys

    def take(self, rows: np.ndarray) -> tuple[Any, dict[str, Any]]:
        """Keys and columns of ``rows`` (block-relative): slices when they are consecutive
        (the natural and block orders), a gather otherwise."""
        n, a = len(rows), int(rows[0])
        sel: slice | np.ndarray = rows
        if int(rows[-1]) - a + 1 == n and (n == 1 or bool((np.diff(rows) == 1).all())):
            sel = slice(a, a + n)
        return _take(self._all_keys(), sel), {k: _take(v, sel) for k, v in self.data.items()}
