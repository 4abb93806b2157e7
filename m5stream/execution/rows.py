"""One batch read sample by sample in this process: the inline executor's step, the threads
executor's fallback, and the torch sample mode's read.

Reading goes through ``workers.task.load_samples`` (the function the worker processes run
too), so every path reads, transforms, skips and fails the same way; here the result becomes
a batch with the one in-process batch builder.
"""

from __future__ import annotations

import time

import numpy as np

from ..batches import assemble_rows, finish_columns
from ..workers.task import LoadResult, load_samples
from .base import ExecContext, StepOutput

__all__ = ["load_rows", "read_rows"]


def load_rows(
    ctx: ExecContext, indices: np.ndarray, epoch: int, *, transform: bool = True
) -> LoadResult:
    """The samples of ``indices``, transformed unless ``transform=False``; raises the first
    failure with ``on_error="raise"``."""
    res = load_samples(
        ctx.dataset,
        ctx.transform if transform else None,
        indices,
        seed=ctx.config.seed,
        epoch=epoch,
        on_error=ctx.config.on_error,
        columnar=transform and ctx.batch_transform is None,
    )
    if res.error is not None:
        raise res.error.to_exception(None)
    return res


def read_rows(
    ctx: ExecContext, step: int, indices: np.ndarray, epoch: int, *, transform: bool = True
) -> StepOutput:
    """Step ``step``'s batch of ``indices`` read and assembled here."""
    res = load_rows(ctx, indices, epoch, transform=transform)
    t0 = time.perf_counter()
    if res.columns is not None:
        batch = finish_columns(res.columns)
    elif not res.samples:
        batch = None
    elif transform and ctx.batch_transform is not None:
        batch = ctx.batch_transform(res.samples)
    else:
        batch = assemble_rows(res.samples)
    res.seconds["assemble"] = time.perf_counter() - t0
    return StepOutput(step, batch, res.skipped, res.seconds, res.io)
