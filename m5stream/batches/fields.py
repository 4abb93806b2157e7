"""How a field of a batch is batched, from its values (the rules every batch builder uses).

* ``stack``: every value a numpy array of one shape and a numeric/bool dtype -> stacked into
  ``[B, *shape]``;
* ``array``: numbers (or bools) of one kind -> a 1-d array (Python ints become int64, floats
  float64);
* ``bytes``: every value ``bytes`` -> a ``list[bytes]``;
* ``object``: anything else (``str``, mixed shapes, ``None``, lists) -> a Python ``list``.

``__index__`` is always an int64 array and ``__key__`` a list of ``str``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["FIELD_ALIGN", "aligned", "classify", "field_names"]

#: byte alignment of each field in a shared-memory slot
FIELD_ALIGN = 64


def aligned(n: int) -> int:
    return (n + FIELD_ALIGN - 1) // FIELD_ALIGN * FIELD_ALIGN


def _scalars(values: list[Any]) -> np.ndarray | None:
    """Numbers (or bools) of one kind as a 1-d array; ``None`` if they are not that."""
    bools = all(isinstance(v, (bool, np.bool_)) for v in values)
    numbers = all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
        for v in values
    )
    if not (bools or numbers):
        return None
    arr = np.asarray(values)
    return arr if arr.dtype.kind in "biuf" and arr.ndim == 1 else None


def classify(values: list[Any]) -> tuple[str, Any]:
    """How a field is batched: ``("stack", (shape, dtype))``, ``("array", arr)``,
    ``("bytes", None)`` or ``("object", None)``."""
    if not values:
        return "object", None
    first = values[0]
    if isinstance(first, np.ndarray):
        shape, dtype = first.shape, first.dtype
        if dtype.kind in "biufc" and all(
            isinstance(v, np.ndarray) and v.shape == shape and v.dtype == dtype for v in values
        ):
            return "stack", (shape, dtype)
        return "object", None
    if isinstance(first, bytes) and all(isinstance(v, bytes) for v in values):
        return "bytes", None
    arr = _scalars(values)
    if arr is not None:
        return "array", arr
    return "object", None


def field_names(samples: list[dict[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for s in samples:
        for k in s:
            if k not in ("__index__", "__key__"):
                names.setdefault(k, None)
    return list(names)
