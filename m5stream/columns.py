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
