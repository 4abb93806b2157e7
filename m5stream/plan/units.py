"""The units a planned batch touches: decode units (row groups, files, shards, objects).

:class:`UnitPlanner` walks a :class:`~m5stream.plan.Plan` forward, step by step, and gives
each step's :class:`PlannedBatch`: its indices (or run), where its samples lie, and the
distinct units it needs in order of first use. The read-ahead fetches exactly those units,
in that order. Where samples lie comes from a :class:`Locator` (the dataset), whose answers
are functions of the manifest; the planner itself holds no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .steps import IndexRun, Plan

__all__ = ["Locator", "PlannedBatch", "Segment", "Unit", "UnitPlanner", "compact_indices"]

Unit = tuple[int, int]  # (shard, unit within the shard)
#: consecutive samples inside one unit: (shard, unit, first local index, count)
Segment = tuple[int, int, int, int]


class Locator(Protocol):
    """Where samples lie (``m5stream.Dataset`` implements it)."""

    def segments(self, start: int, count: int) -> list[Segment]: ...
    def locate_many(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
    def units_of(self, shards: np.ndarray, locals_: np.ndarray) -> np.ndarray: ...


def compact_indices(idx: np.ndarray) -> np.ndarray | IndexRun:
    """A batch's indices as a run when they are consecutive (the natural order and most
    block-shuffle batches), so messages and plans stay a few integers whatever the size."""
    n = len(idx)
    if n > 1 and int(idx[-1]) - int(idx[0]) == n - 1 and bool((np.diff(idx) == 1).all()):
        return IndexRun(int(idx[0]), n)
    return idx


@dataclass
class PlannedBatch:
    step: int
    #: the batch's sample indices, or a run (made into an array only when asked for, since
    #: planning runs far ahead of the trainer)
    index_run: np.ndarray | IndexRun
    #: consecutive samples: one segment per unit they touch
    segments: list[Segment] | None
    #: otherwise: where each sample is
    shards: np.ndarray | None = None
    locals_: np.ndarray | None = None
    units: np.ndarray | None = None
    #: the distinct units the batch reads, in order of first use
    needs: list[Unit] = field(default_factory=list)

    @property
    def indices(self) -> np.ndarray:
        if isinstance(self.index_run, IndexRun):
            self.index_run = self.index_run.array()
        return self.index_run

    def __len__(self) -> int:
        return len(self.index_run)


class UnitPlanner:
    """Plans steps ``start``, ``start + 1``, ... of ``plan`` over ``locator``."""

    def __init__(self, plan: Plan, locator: Locator, start: int) -> None:
        self.plan = plan
        self._loc = locator
        #: the next step to plan
        self.next_step = start

    @property
    def exhausted(self) -> bool:
        return self.next_step >= self.plan.steps

    def plan_next(self) -> PlannedBatch:
        step = self.next_step
        self.next_step += 1
        run = self.plan.run(step)
        if run is not None:
            return self._run_plan(step, run, run) if run.count else self._empty(step)
        idx = self.plan.indices(step)
        n = len(idx)
        if n and (n == 1 or isinstance(compact_indices(idx), IndexRun)):
            return self._run_plan(step, idx, IndexRun(int(idx[0]), n))
        shards, locals_ = self._loc.locate_many(idx)
        units = self._loc.units_of(shards, locals_)
        out = PlannedBatch(step, idx, None, shards, locals_, units)
        if n:
            pairs = np.stack([shards, units], axis=1)
            cut = np.flatnonzero((pairs[1:] != pairs[:-1]).any(axis=1)) + 1
            out.needs = list(dict.fromkeys(map(tuple, pairs[np.r_[0, cut]].tolist())))
        return out

    @staticmethod
    def _empty(step: int) -> PlannedBatch:
        return PlannedBatch(step, np.zeros(0, np.int64), None)

    def _run_plan(self, step: int, index_run: np.ndarray | IndexRun, run: IndexRun) -> PlannedBatch:
        segs = self._loc.segments(run.first, run.count)
        out = PlannedBatch(step, index_run, segs)
        out.needs = list(dict.fromkeys((s, u) for s, u, _, _ in segs))
        return out
