"""Turn a list of samples into a batch: in a slot (workers) or in fresh arrays (in-process).

Field rules, applied per field name over the batch's samples:

* ``array``: every value a numpy array (or number) of one shape and a numeric/bool dtype ->
  stacked into ``[B, *shape]``. Python ints become int64, floats float64.
* ``bytes``: every value ``bytes`` -> a ``list[bytes]`` (stored in the slot back to back).
* ``object``: anything else (``str``, mixed shapes, ``None``, lists) -> a Python ``list``,
  carried in the pipe message.

``__index__`` is always an int64 array and ``__key__`` a list of ``str``. When a batch does
not fit in its slot, its arrays travel in the message instead (``inline``) and the reply says
how many bytes the slot would have needed, so the trainer can grow the ring.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

__all__ = ["assemble_numpy", "classify", "read_batch", "write_batch"]

_FIELD_ALIGN = 64
Layout = list[tuple[Any, ...]]


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


def _field_names(samples: list[dict[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for s in samples:
        for k in s:
            if k not in ("__index__", "__key__"):
                names.setdefault(k, None)
    return list(names)


def assemble_numpy(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The batch as fresh numpy arrays and lists (the in-process path)."""
    out: dict[str, Any] = {}
    for name in _field_names(samples):
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


def _deferred(v: Any) -> bool:
    """A lazily made value (``LazyImage``) that can write itself into a destination row."""
    return hasattr(v, "write_into") and hasattr(v, "shape") and hasattr(v, "dtype")


Failure = tuple[dict[str, Any], BaseException]


def _fill_rows(
    samples: list[dict[str, Any]], fields: dict[str, np.ndarray], failures: list[Failure]
) -> list[dict[str, Any]]:
    """Write each sample's deferred ``fields`` into consecutive rows; a sample whose write
    fails is dropped (recorded in ``failures``) and its row reused by the next one."""
    ok: list[dict[str, Any]] = []
    for s in samples:
        j = len(ok)
        try:
            for name, dst in fields.items():
                s[name].write_into(dst[j])
        except Exception as exc:
            failures.append((s, exc))
            continue
        ok.append(s)
    return ok


def write_batch(
    samples: list[dict[str, Any]], slot: np.ndarray, timings: dict[str, float] | None = None
) -> tuple[Layout, int, list[Failure]]:
    """Write ``samples`` into ``slot``; returns ``(layout, bytes needed, failures)``.

    Deferred values (lazy images) of one shape are made straight into their rows of the slot
    (the fused decode writes the final tensor in place); a sample whose deferred value fails is
    left out of the batch and returned in ``failures`` with its exception. If the batch needs
    more than ``len(slot)`` bytes nothing is written to the slot and every field is carried
    inline in the layout. ``timings["decode"]`` receives the seconds spent making deferred
    values (decoding and resampling images), the rest being collation.
    """
    t_decode = 0.0
    failures: list[Failure] = []
    names = _field_names(samples)
    # deferred fields that do not share one shape are made one by one, like any value
    uniform: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    for name in names:
        vals: list[Any] = [s.get(name) for s in samples]
        lazy = [_deferred(v) for v in vals]
        if not any(lazy):
            continue
        specs = {(tuple(v.shape), np.dtype(v.dtype)) for v in vals if _deferred(v)}
        if all(lazy) and len(specs) == 1:
            uniform[name] = specs.pop()
            continue
        kept = []
        t0 = time.perf_counter()
        for s in samples:
            v: Any = s.get(name)
            try:
                if _deferred(v):
                    s[name] = v.materialize()
            except Exception as exc:
                failures.append((s, exc))
                continue
            kept.append(s)
        samples = kept
        t_decode += time.perf_counter() - t0
    n = len(samples)
    deferred_bytes = {
        name: n * int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        for name, (shape, dtype) in uniform.items()
    }
    needed = sum(_aligned(b) for b in deferred_bytes.values())
    # lay deferred fields out first, at capacity n, and make them
    dsts: dict[str, np.ndarray] = {}
    offsets: dict[str, int] = {}
    fits_deferred = needed <= len(slot)
    off = 0
    for name, (shape, dtype) in uniform.items():
        if fits_deferred:
            nb = deferred_bytes[name]
            dsts[name] = slot[off : off + nb].view(dtype).reshape((n, *shape))
            offsets[name] = off
            off += _aligned(nb)
        else:
            dsts[name] = np.empty((n, *shape), dtype=dtype)
    t0 = time.perf_counter()
    samples = _fill_rows(samples, dsts, failures)
    t_decode += time.perf_counter() - t0
    if timings is not None:
        timings["decode"] = timings.get("decode", 0.0) + t_decode
    n_ok = len(samples)
    layout: Layout = []
    for name, (shape, dtype) in uniform.items():
        if fits_deferred:
            layout.append(("array", name, offsets[name], dtype.str, (n_ok, *shape)))
        else:
            layout.append(("inline", name, dsts[name][:n_ok]))
    # then the other fields of the samples that made it
    plan: list[tuple[str, str, Any, list[Any]]] = []
    rest = 0
    for name in names:
        if name in uniform:
            continue
        values: list[Any] = [s.get(name) for s in samples]
        kind, info = classify(values)
        if kind == "stack":
            shape, dtype = info
            nbytes = len(values) * int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        elif kind == "array":
            nbytes = info.nbytes
        elif kind == "bytes":
            nbytes = sum(len(v) for v in values)
        else:
            nbytes = 0
        plan.append((name, kind, info, values))
        rest += _aligned(nbytes)
    needed += rest
    fits = fits_deferred and off + rest <= len(slot)
    for name, kind, info, values in plan:
        if kind == "object":
            layout.append(("object", name, values))
            continue
        if not fits:
            if kind == "stack":
                layout.append(("inline", name, np.stack(values)))
            elif kind == "array":
                layout.append(("inline", name, info))
            else:
                layout.append(("object", name, values))
            continue
        if kind == "stack":
            shape, dtype = info
            n = len(values) * int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            dst = slot[off : off + n].view(dtype).reshape((len(values), *shape))
            np.stack(values, out=dst)
            layout.append(("array", name, off, dtype.str, (len(values), *shape)))
        elif kind == "array":
            n = info.nbytes
            slot[off : off + n].view(info.dtype)[:] = info
            layout.append(("array", name, off, info.dtype.str, info.shape))
        else:  # bytes
            lengths = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
            n = int(lengths.sum())
            pos = off
            for v in values:
                slot[pos : pos + len(v)] = np.frombuffer(v, dtype=np.uint8)
                pos += len(v)
            layout.append(("bytes", name, off, lengths))
        off += _aligned(n)
    layout.append(
        ("index", "__index__", np.asarray([s["__index__"] for s in samples], dtype=np.int64))
    )
    layout.append(("object", "__key__", [s["__key__"] for s in samples]))
    return layout, needed, failures


def write_arrays(batch: dict[str, Any], slot: np.ndarray) -> tuple[Layout, int]:
    """Write an already batched dict (a batch transform's output, or a batch read column-wise)
    into ``slot``: numpy arrays and Arrow text columns (offsets + bytes, see
    ``m5stream.columns``) go to the slot (inline when it is too small), anything else travels
    as an object."""
    from ..columns import TextColumn

    texts = {k: v.parts() for k, v in batch.items() if isinstance(v, TextColumn)}
    arrays = {k: v for k, v in batch.items() if isinstance(v, np.ndarray) and k != "__index__"}
    needed = sum(_aligned(v.nbytes) for v in arrays.values())
    needed += sum(_aligned(o.nbytes) + _aligned(d.nbytes) for o, d in texts.values())
    fits = needed <= len(slot)
    layout: Layout = []
    off = 0
    for k, v in batch.items():
        if k in texts:
            if not fits:
                layout.append(("object", k, v.values()))
                continue
            offsets, data = texts[k]
            slot[off : off + offsets.nbytes].view(np.int32)[:] = offsets
            off_data = off + _aligned(offsets.nbytes)
            slot[off_data : off_data + data.nbytes] = data
            kind = "str" if v.text else "bin"
            layout.append(("text", k, off, off_data, len(v), int(data.nbytes), kind))
            off = off_data + _aligned(data.nbytes)
        elif k == "__index__":
            layout.append(("index", k, np.asarray(v, dtype=np.int64)))
        elif k in arrays and fits:
            v = np.ascontiguousarray(v)
            slot[off : off + v.nbytes].view(v.dtype).reshape(v.shape)[...] = v
            layout.append(("array", k, off, v.dtype.str, v.shape))
            off += _aligned(v.nbytes)
        elif k in arrays:
            layout.append(("inline", k, v))
        else:
            layout.append(("object", k, v))
    return layout, needed


def _read_text(slot: np.ndarray, entry: tuple[Any, ...]) -> list[Any]:
    from .._native.textcol import values_from_offsets

    _, _, off, off_data, n, nbytes, kind = entry
    offsets = slot[off : off + 4 * (n + 1)].view(np.int32)
    data = slot[off_data : off_data + nbytes]
    # Python objects: nothing refers to the slot afterwards
    return values_from_offsets(offsets, data, text=kind == "str")


def _aligned(n: int) -> int:
    return (n + _FIELD_ALIGN - 1) // _FIELD_ALIGN * _FIELD_ALIGN


def read_batch(layout: Layout, slot: np.ndarray | None, copy: bool) -> dict[str, Any]:
    """The batch described by ``layout`` over ``slot`` (views, or copies when ``copy``)."""
    out: dict[str, Any] = {}
    for entry in layout:
        kind, name = entry[0], entry[1]
        if kind == "array":
            assert slot is not None
            _, _, off, dtype_s, shape = entry
            dtype = np.dtype(dtype_s)
            n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            view = slot[off : off + n].view(dtype).reshape(shape).view(np.ndarray)
            out[name] = view.copy() if copy else view
        elif kind == "text":
            assert slot is not None
            out[name] = _read_text(slot, entry)
        elif kind == "bytes":
            assert slot is not None
            _, _, off, lengths = entry
            items, pos = [], off
            for ln in lengths.tolist():
                items.append(slot[pos : pos + ln].tobytes())
                pos += ln
            out[name] = items
        else:  # object, inline, index
            out[name] = entry[2]
    return out
