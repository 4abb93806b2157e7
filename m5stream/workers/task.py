"""Loading one batch's samples: the work a worker (or the in-process path) does per task.

Shared by both paths so that ``num_workers=0`` and ``num_workers=N`` produce the same batches,
skip the same samples and report the same errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..dataset import Dataset
from ..storage.iostats import io_counters, io_delta
from ..transforms import TransformFn, apply_transform
from .protocol import ErrorInfo

#: turns the list of a batch's samples into the batch dict (e.g. ``PackTokens``)
BatchTransform = Callable[[list[dict[str, Any]]], dict[str, Any]]

__all__ = ["LoadResult", "load_samples", "skip_record"]


def skip_record(index: int, key: str | None, exc: BaseException) -> list[Any]:
    """The ``[index, key, "Type: message"]`` record of a skipped sample."""
    return [index, key, f"{type(exc).__name__}: {exc}"]


@dataclass
class LoadResult:
    samples: list[dict[str, Any]] = field(default_factory=list)
    #: ``[index, key, "Type: message"]`` for every skipped sample
    skipped: list[list[Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: {"read": 0.0, "transform": 0.0})
    error: ErrorInfo | None = None
    #: S3 requests (per operation) and bytes this batch's reads made
    io: dict[str, int] = field(default_factory=dict)
    #: the batch as columns, when it was read columnar (``samples`` is then empty)
    columns: dict[str, Any] | None = None


def load_samples(
    dataset: Dataset,
    transform: TransformFn | None,
    indices: np.ndarray,
    *,
    seed: int,
    epoch: int,
    on_error: str,
    defer: bool = False,
    columnar: bool = False,
    on_read: Callable[[int, str], None] | None = None,
) -> LoadResult:
    """Read and transform ``indices``; with ``on_error="skip"`` failures are recorded, not raised.

    With ``on_error="raise"`` the first failure stops the batch and is returned in ``error``.
    ``defer`` leaves images lazy (the worker makes them straight into the batch slot).
    ``columnar`` (no per-sample transform, no batch transform): formats that can read a run of
    samples at once (Parquet, CSV) fill ``columns`` with the finished batch instead of
    ``samples``; if that fails the batch is read again row by row, so errors and skips are
    exactly those of the row path. ``on_read(index, key)`` is called for each sample read on
    the row path, before it is transformed (a bisection piece names its sample this way).
    """
    res = LoadResult()
    io0 = io_counters()
    try:
        if (
            columnar
            and transform is None
            and dataset.caps.columnar
            and _load_columns(res, dataset, indices)
        ):
            return res
        _load(res, dataset, transform, indices, seed, epoch, on_error, defer, on_read)
    finally:
        res.io = io_delta(io0)
    return res


def _load_columns(res: LoadResult, dataset: Dataset, indices: np.ndarray) -> bool:
    t0 = time.perf_counter()
    try:
        shards, locals_ = dataset.locate_many(indices)
        dataset.prefetch(shards)
        res.columns = dataset.read_columns(indices, shards, locals_)
    except Exception:
        res.columns = None  # the row path finds the failing sample and reports or skips it
    res.seconds["read"] += time.perf_counter() - t0
    return res.columns is not None


def _load(
    res: LoadResult,
    dataset: Dataset,
    transform: TransformFn | None,
    indices: np.ndarray,
    seed: int,
    epoch: int,
    on_error: str,
    defer: bool,
    on_read: Callable[[int, str], None] | None,
) -> None:
    """The row path. Samples are read in storage order (shard, then position in it) and
    handed back in the batch's order: a shuffled batch that touches a Parquet row group
    several times decodes it once (a reader keeps its last decoded unit), and a tar shard is
    read forwards. Failures are those of the batch's order: skips are recorded in it, and
    with ``on_error="raise"`` the error is the first in it (samples after it are not read)."""
    clock = time.perf_counter
    shards, locals_ = dataset.locate_many(indices)
    t0 = clock()
    dataset.prefetch(shards)
    res.seconds["read"] += clock() - t0
    n = len(indices)
    order = np.lexsort((locals_, shards)) if n > 1 else np.arange(n)
    idxs, shs, locs = indices.tolist(), shards.tolist(), locals_.tolist()
    done: list[dict[str, Any] | None] = [None] * n
    skipped: dict[int, list[Any]] = {}
    first_error = n  # position of the first failure in batch order (on_error="raise")
    for pos in order.tolist():
        if pos > first_error:
            continue  # after the batch's first failure: never read in batch order
        idx = idxs[pos]
        key = None
        t0 = clock()
        try:
            sample = dataset.read_at(idx, shs[pos], locs[pos])
            key = sample["__key__"]
            if on_read is not None:
                on_read(idx, key)
            t1 = clock()
            res.seconds["read"] += t1 - t0
            sample = apply_transform(transform, sample, seed=seed, epoch=epoch, defer=defer)
            res.seconds["transform"] += clock() - t1
        except Exception as exc:
            key = key if key is not None else getattr(exc, "key", None)
            if on_error == "skip":
                skipped[pos] = skip_record(idx, key, exc)
                continue
            first_error = pos
            res.error = ErrorInfo.capture(exc, key, idx)
            continue
        done[pos] = sample
    if res.error is not None:
        return
    res.skipped.extend(skipped[p] for p in sorted(skipped))
    res.samples.extend(s for s in done if s is not None)
