"""``Plan``: one epoch of one rank, step by step, as a pure function of the config.

A plan is made from a :class:`~m5stream.config.LoaderConfig`, the dataset's
:class:`~m5stream.sampling.Order` (or a mixture's
:class:`~m5stream.plan.mixture.MixtureOrder`: the same cut of steps over its positions) and
an epoch. ``batch(step)`` is this rank's part of global
step ``step`` (see :mod:`m5stream.sampling.order` for the definitions), as an index array or,
in the natural order, a contiguous run that costs no array work. Every executor and the torch
sample mode take their indices from here; none re-derives the order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import numpy as np

from ..config import LoaderConfig
from ..sampling import Order, SampleOrder, batch_indices, batch_run, rank_bounds, steps_per_epoch
from .mixture import MixtureOrder, MixtureSources, mixture_order

__all__ = ["IndexRun", "Plan", "make_order"]


def make_order(config: LoaderConfig, data: np.ndarray | MixtureSources) -> Order | MixtureOrder:
    """The order the config defines over shards of ``data`` samples (an array of counts), or
    over a mixture's sources (:func:`~m5stream.plan.mixture.mixture_order`)."""
    if not isinstance(data, np.ndarray):
        return mixture_order(config, data)
    return Order(data, shuffle=config.shuffle, seed=config.seed, block_size=config.block_size)


class _Cut(TypedDict):
    """How global steps are cut into this rank's batches (``sampling`` keywords)."""

    batch_size: int
    world_size: int
    rank: int
    even: bool


@dataclass(frozen=True)
class IndexRun:
    """The consecutive global sample indices ``first .. first + count - 1``."""

    first: int
    count: int

    def array(self) -> np.ndarray:
        return np.arange(self.first, self.first + self.count, dtype=np.int64)

    def __len__(self) -> int:
        return self.count


class Plan:
    """This rank's batches of one epoch (see module docstring)."""

    __slots__ = ("_cut", "config", "epoch", "order", "steps")

    def __init__(self, config: LoaderConfig, order: SampleOrder, epoch: int) -> None:
        self.config = config
        self.order = order
        self.epoch = int(epoch)
        #: global steps in the epoch (the same on every rank)
        self.steps = steps_per_epoch(order.num_samples, config.global_batch_size, config.drop_last)
        self._cut = _Cut(
            batch_size=config.batch_size,
            world_size=config.world_size,
            rank=config.rank,
            even=config.pad_last,
        )

    @classmethod
    def for_epoch(cls, config: LoaderConfig, data: np.ndarray | MixtureSources, epoch: int) -> Plan:
        """The plan of ``epoch`` over ``data`` (see :func:`make_order`; a new order)."""
        return cls(config, make_order(config, data), epoch)

    def indices(self, step: int) -> np.ndarray:
        """Global sample indices of this rank's batch at ``step`` (int64)."""
        return batch_indices(self.order, self.epoch, step, **self._cut)

    def run(self, step: int) -> IndexRun | None:
        """The batch at ``step`` as a run when it is one by construction (the natural order,
        except a padded last step); scalar arithmetic only."""
        got = batch_run(self.order, step, **self._cut)
        return IndexRun(*got) if got is not None else None

    def batch(self, step: int) -> IndexRun | np.ndarray:
        """:meth:`run` where it applies, else :meth:`indices`."""
        got = self.run(step)
        return got if got is not None else self.indices(step)

    def rank_batches(self) -> int:
        """Batches this rank yields in the epoch (``len(loader)``): without padding, a rank
        whose part of a short last step is empty has one fewer."""
        n = self.steps
        g = self.config.global_batch_size
        rest = self.order.num_samples - (n - 1) * g if n else 0
        if n and rest < g and not self.config.pad_last:
            lo, hi = rank_bounds(rest, self.config.world_size, self.config.rank)
            return n if hi > lo else n - 1
        return n

    def worker_steps(self, worker: int, num_workers: int, start: int) -> range:
        """The steps from ``start`` on that torch worker ``worker`` of ``num_workers`` makes
        in sample mode: ``worker, worker + num_workers, ...`` (torch's in-order round robin
        over its workers then rebuilds the global step order)."""
        first = start + (worker - start) % num_workers
        return range(first, self.steps, num_workers)
