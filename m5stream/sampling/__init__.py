"""Sampling layer: pure functions from (manifest, seed, epoch, step) to sample indices."""

from .order import (
    Order,
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
    "ShuffleMode",
    "batch_indices",
    "batch_run",
    "epoch_key",
    "global_batch_bounds",
    "rank_bounds",
    "steps_per_epoch",
]
