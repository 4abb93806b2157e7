"""A batch from a list of samples, as fresh numpy arrays and lists (the in-process
executors); the field rules are :mod:`m5stream.batches.fields`."""

from __future__ import annotations

from typing import Any

import numpy as np

from .fields import classify, field_names

__all__ = ["assemble_rows"]


def assemble_rows(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The batch as fresh numpy arrays and lists (the in-process path)."""
    out: dict[str, Any] = {}
    for name in field_names(samples):
        values: list[Any] = [s.get(name) for s in samples]
        kind, info = classify(values)
        if kind == "stack":
            out[name] = np.stack(values)
        elif kind == "array":
            out[name] = info
        else:
            out[name] = values
    out["__index__"] = np.asarray([s["__index__"] for s in samples], dtype=np.int64)
    out["__key__"] = [s["__key__"] for s in samples]
    return out
