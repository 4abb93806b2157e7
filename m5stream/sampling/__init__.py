"""Sampling layer: pure functions from (manifest, seed, epoch, step) to sample indices."""

from .order import (
    Order,
    SampleOrder,
    ShuffleMode,
    batch_indices,
    batch_run,
    epoch_key,
    global_batch_bounds,
    rank_bounds,
    steps_per_epoch,
)

__all__ = [
    "Order",
    "SampleOrder",
    "ShuffleMode",
    "batch_indices",
    "batch_run",
    "epoch_key",
    "global_batch_bounds",
    "rank_bounds",
    "steps_per_epoch",
]
