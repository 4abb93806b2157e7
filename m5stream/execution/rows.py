"""One batch read sample by sample in this process: the inline executor's step, the threads
executor's fallback, and the torch sample mode's read.

Reading goes through ``workers.task.load_samples`` (the function the worker processes run
too), so every path reads, transforms, skips and fails the same way. With a per-sample
transform and no batch transform the batch is built as a worker builds it: images stay lazy
and :func:`~m5stream.batches.write_rows` decodes them straight into their rows (here into fresh
arrays rather than a slot), which is the fast fused decode, and fails or skips the samples
whose lazy image fails exactly as a worker does.
"""

from __future__ import annotations

import time

import numpy as np

from ..batches import assemble_rows, finish_columns, read_slot, write_rows
from ..batches.fields import aligned
from ..workers.protocol import ErrorInfo
from ..workers.task import LoadResult, load_samples, skip_record
from .base import ExecContext, StepOutput

__all__ = ["load_rows", "read_rows"]


#: no slot: write_rows makes every field a fresh array of its own
_NO_SLOT = np.empty(0, np.uint8)


def load_rows(
    ctx: ExecContext,
    indices: np.ndarray,
    epoch: int,
    *,
    transform: bool = True,
    defer: bool = False,
) -> LoadResult:
    """The samples of ``indices``, transformed unless ``transform=False`` (``defer``: images
    left lazy); raises the first failure with ``on_error="raise"``."""
    res = load_samples(
        ctx.dataset,
        ctx.transform if transform else None,
        indices,
        seed=ctx.config.seed,
        epoch=epoch,
        on_error=ctx.config.on_error,
        defer=defer,
        columnar=transform and ctx.batch_transform is None,
    )
    if res.error is not None:
        raise res.error.to_exception(None)
    return res


def read_rows(
    ctx: ExecContext, step: int, indices: np.ndarray, epoch: int, *, transform: bool = True
) -> StepOutput:
    """Step ``step``'s batch of ``indices`` read and assembled here."""
    fused = transform and ctx.transform is not None and ctx.batch_transform is None
    res = load_rows(ctx, indices, epoch, transform=transform, defer=fused)
    t0 = time.perf_counter()
    needed = 0
    if res.columns is not None:
        batch = finish_columns(res.columns)
    elif not res.samples:
        batch = None
    elif transform and ctx.batch_transform is not None:
        batch = ctx.batch_transform(res.samples)
    elif fused:
        batch, needed = _fused(ctx, res)
    else:
        batch = assemble_rows(res.samples)
    res.seconds["assemble"] = time.perf_counter() - t0 - res.seconds.get("decode", 0.0)
    if batch is not None and not needed:
        needed = sum(aligned(v.nbytes) for v in batch.values() if isinstance(v, np.ndarray))
    return StepOutput(step, batch, res.skipped, res.seconds, res.io, needed)


def _fused(ctx: ExecContext, res: LoadResult) -> tuple[dict[str, object] | None, int]:
    """The batch of ``res.samples`` (lazy images made into their rows) and the slot bytes
    it takes; a sample whose image fails is raised or skipped as ``on_error`` says."""
    timings: dict[str, float] = {}
    layout, needed, failures = write_rows(res.samples, _NO_SLOT, timings)
    res.seconds["decode"] = res.seconds.get("decode", 0.0) + timings.get("decode", 0.0)
    for s, exc in failures:
        if ctx.config.on_error != "skip":
            raise ErrorInfo.capture(exc, s.get("__key__"), s.get("__index__")).to_exception(None)
        res.skipped.append(skip_record(s["__index__"], s.get("__key__"), exc))
    batch = read_slot(layout, None, copy=False)
    return (batch if len(batch["__key__"]) else None), needed
