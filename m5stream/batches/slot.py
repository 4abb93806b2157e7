"""Batches written into, and read from, a shared-memory slot (the worker processes' path).

A worker writes a batch into its slot and describes where each field lies with a
:class:`SlotLayout` (a list of typed :class:`FieldSlot` entries): the trainer turns the
layout over the same slot into the batch, as views or copies. Rows go in with
:func:`write_rows` (lazy images are made straight into their rows), already batched columns
with :func:`write_columns`. When a batch does not fit in its slot its arrays travel in the
layout instead (``FieldKind.INLINE``) and the reply says how many bytes the slot would have
needed, so the trainer can grow the ring.
"""

from __future__ import annotations

import time
from enum import Enum
from typing import Any, NamedTuple

import numpy as np

from .._native import textcol
from .columns import TextColumn
from .fields import aligned, classify, field_names

__all__ = ["FieldKind", "FieldSlot", "SlotLayout", "read_slot", "write_columns", "write_rows"]


class FieldKind(Enum):
    #: a numpy array in the slot at ``offset`` (``dtype``, ``shape``)
    ARRAY = "array"
    #: an Arrow-style text/binary column in the slot: int32 offsets at ``offset``, the bytes
    #: at ``data_offset`` (``n_values`` values, ``nbytes`` bytes, ``text``: str or bytes)
    TEXT = "text"
    #: byte strings back to back in the slot at ``offset``, ``lengths`` of each
    BYTES = "bytes"
    #: a value carried in the message: an array that did not fit, or Python objects
    INLINE = "inline"
    OBJECT = "object"
    INDEX = "index"


class FieldSlot(NamedTuple):
    """Where one field of a batch lies (see :class:`FieldKind`). A named tuple: it crosses
    the pipe in every reply, and a tuple pickles without a Python-level ``__setstate__``."""

    kind: FieldKind
    name: str
    offset: int = 0
    dtype: str = ""
    shape: tuple[int, ...] = ()
    #: the value itself, for INLINE, OBJECT and INDEX
    value: Any = None
    lengths: np.ndarray | None = None
    data_offset: int = 0
    n_values: int = 0
    nbytes: int = 0
    text: bool = True

    @property
    def in_slot(self) -> bool:
        return self.kind in (FieldKind.ARRAY, FieldKind.TEXT, FieldKind.BYTES)


SlotLayout = list[FieldSlot]


def _carried(kind: FieldKind, name: str, value: Any) -> FieldSlot:
    return FieldSlot(kind, name, value=value)


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


def _materialize_mixed(
    samples: list[dict[str, Any]], names: list[str], failures: list[Failure]
) -> tuple[list[dict[str, Any]], dict[str, tuple[tuple[int, ...], np.dtype]]]:
    """Deferred fields that do not share one shape are made now, one by one, like any value
    (a sample whose value fails is dropped into ``failures``); returns the samples kept and
    the fields that stay deferred, with their one ``(shape, dtype)``."""
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
    return samples, uniform


def _nbytes(kind: str, info: Any, values: list[Any]) -> int:
    if kind == "stack":
        shape, dtype = info
        return len(values) * int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if kind == "array":
        return int(info.nbytes)
    if kind == "bytes":
        return sum(len(v) for v in values)
    return 0


def _write_field(
    slot: np.ndarray, off: int, name: str, kind: str, info: Any, values: list[Any]
) -> tuple[FieldSlot, int]:
    """Write one classified field at ``off``; returns its entry and its bytes."""
    if kind == "stack":
        shape, dtype = info
        n = len(values) * int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        dst = slot[off : off + n].view(dtype).reshape((len(values), *shape))
        np.stack(values, out=dst)
        return FieldSlot(FieldKind.ARRAY, name, off, dtype.str, (len(values), *shape)), n
    if kind == "array":
        n = info.nbytes
        slot[off : off + n].view(info.dtype)[:] = info
        return FieldSlot(FieldKind.ARRAY, name, off, info.dtype.str, info.shape), n
    lengths = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
    pos = off
    for v in values:
        slot[pos : pos + len(v)] = np.frombuffer(v, dtype=np.uint8)
        pos += len(v)
    return FieldSlot(FieldKind.BYTES, name, off, lengths=lengths), int(lengths.sum())


def _carry_field(name: str, kind: str, info: Any, values: list[Any]) -> FieldSlot:
    """A classified field carried in the message (the batch does not fit in its slot)."""
    if kind == "stack":
        return _carried(FieldKind.INLINE, name, np.stack(values))
    if kind == "array":
        return _carried(FieldKind.INLINE, name, info)
    return _carried(FieldKind.OBJECT, name, values)


def write_rows(
    samples: list[dict[str, Any]], slot: np.ndarray, timings: dict[str, float] | None = None
) -> tuple[SlotLayout, int, list[Failure]]:
    """Write ``samples`` into ``slot``; returns ``(layout, bytes needed, failures)``.

    Deferred values (lazy images) of one shape are made straight into their rows of the slot
    (the fused decode writes the final tensor in place); a sample whose deferred value fails is
    left out of the batch and returned in ``failures`` with its exception. If the batch needs
    more than ``len(slot)`` bytes nothing is written to the slot and every field is carried
    inline in the layout. ``timings["decode"]`` receives the seconds spent making deferred
    values (decoding and resampling images), the rest being collation.
    """
    failures: list[Failure] = []
    names = field_names(samples)
    t0 = time.perf_counter()
    samples, uniform = _materialize_mixed(samples, names, failures)
    n = len(samples)
    deferred_bytes = {
        name: n * int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        for name, (shape, dtype) in uniform.items()
    }
    needed = sum(aligned(b) for b in deferred_bytes.values())
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
            off += aligned(nb)
        else:
            dsts[name] = np.empty((n, *shape), dtype=dtype)
    samples = _fill_rows(samples, dsts, failures)
    if timings is not None:
        timings["decode"] = timings.get("decode", 0.0) + time.perf_counter() - t0
    n_ok = len(samples)
    layout: SlotLayout = []
    for name, (shape, dtype) in uniform.items():
        if fits_deferred:
            layout.append(
                FieldSlot(FieldKind.ARRAY, name, offsets[name], dtype.str, (n_ok, *shape))
            )
        else:
            layout.append(_carried(FieldKind.INLINE, name, dsts[name][:n_ok]))
    # then the other fields of the samples that made it
    plan: list[tuple[str, str, Any, list[Any]]] = []
    for name in names:
        if name not in uniform:
            values: list[Any] = [s.get(name) for s in samples]
            kind, info = classify(values)
            plan.append((name, kind, info, values))
    rest = sum(aligned(_nbytes(kind, info, values)) for _, kind, info, values in plan)
    needed += rest
    fits = fits_deferred and off + rest <= len(slot)
    for name, kind, info, values in plan:
        if kind == "object":
            layout.append(_carried(FieldKind.OBJECT, name, values))
        elif not fits:
            layout.append(_carry_field(name, kind, info, values))
        else:
            entry, nb = _write_field(slot, off, name, kind, info, values)
            layout.append(entry)
            off += aligned(nb)
    index = np.asarray([s["__index__"] for s in samples], dtype=np.int64)
    layout.append(_carried(FieldKind.INDEX, "__index__", index))
    layout.append(_carried(FieldKind.OBJECT, "__key__", [s["__key__"] for s in samples]))
    return layout, needed, failures


def write_columns(batch: dict[str, Any], slot: np.ndarray) -> tuple[SlotLayout, int]:
    """Write an already batched dict (a batch transform's output, or a batch read column-wise)
    into ``slot``: numpy arrays and Arrow text columns (offsets + bytes, see
    :mod:`m5stream.batches.columns`) go to the slot (inline when it is too small), anything
    else travels as an object."""
    texts = {k: v.parts() for k, v in batch.items() if isinstance(v, TextColumn)}
    arrays = {k: v for k, v in batch.items() if isinstance(v, np.ndarray) and k != "__index__"}
    needed = sum(aligned(v.nbytes) for v in arrays.values())
    needed += sum(aligned(o.nbytes) + aligned(d.nbytes) for o, d in texts.values())
    fits = needed <= len(slot)
    layout: SlotLayout = []
    off = 0
    for k, v in batch.items():
        if k in texts:
            if not fits:
                layout.append(_carried(FieldKind.OBJECT, k, v.values()))
                continue
            offsets, data = texts[k]
            slot[off : off + offsets.nbytes].view(np.int32)[:] = offsets
            off_data = off + aligned(offsets.nbytes)
            slot[off_data : off_data + data.nbytes] = data
            layout.append(
                FieldSlot(
                    FieldKind.TEXT,
                    k,
                    off,
                    data_offset=off_data,
                    n_values=len(v),
                    nbytes=int(data.nbytes),
                    text=bool(v.text),
                )
            )
            off = off_data + aligned(data.nbytes)
        elif k == "__index__":
            layout.append(_carried(FieldKind.INDEX, k, np.asarray(v, dtype=np.int64)))
        elif k in arrays and fits:
            v = np.ascontiguousarray(v)
            slot[off : off + v.nbytes].view(v.dtype).reshape(v.shape)[...] = v
            layout.append(FieldSlot(FieldKind.ARRAY, k, off, v.dtype.str, v.shape))
            off += aligned(v.nbytes)
        elif k in arrays:
            layout.append(_carried(FieldKind.INLINE, k, v))
        else:
            layout.append(_carried(FieldKind.OBJECT, k, v))
    return layout, needed


def _read_text(slot: np.ndarray, entry: FieldSlot) -> list[Any]:
    offsets = slot[entry.offset : entry.offset + 4 * (entry.n_values + 1)].view(np.int32)
    data = slot[entry.data_offset : entry.data_offset + entry.nbytes]
    # Python objects: nothing refers to the slot afterwards
    return textcol.values_from_offsets(offsets, data, text=entry.text)


def read_slot(layout: SlotLayout, slot: np.ndarray | None, copy: bool) -> dict[str, Any]:
    """The batch described by ``layout`` over ``slot`` (views, or copies when ``copy``)."""
    out: dict[str, Any] = {}
    for entry in layout:
        kind, name = entry.kind, entry.name
        if kind is FieldKind.ARRAY:
            assert slot is not None
            dtype = np.dtype(entry.dtype)
            n = int(np.prod(entry.shape, dtype=np.int64)) * dtype.itemsize
            off = entry.offset
            view = slot[off : off + n].view(dtype).reshape(entry.shape).view(np.ndarray)
            out[name] = view.copy() if copy else view
        elif kind is FieldKind.TEXT:
            assert slot is not None
            out[name] = _read_text(slot, entry)
        elif kind is FieldKind.BYTES:
            assert slot is not None and entry.lengths is not None
            items, pos = [], entry.offset
            for ln in entry.lengths.tolist():
                items.append(slot[pos : pos + ln].tobytes())
                pos += ln
            out[name] = items
        else:  # carried in the message
            out[name] = entry.value
    return out
