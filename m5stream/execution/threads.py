"""The threads executor: units decoded ahead by read-ahead threads, batches sliced here.

For formats with decode units and no transform (see :mod:`m5stream.execution.choose`), the
read-ahead (:class:`~m5stream.execution.readahead.ReadAhead`) fetches and decodes each
unit the plan says is needed, once, in that order; a batch is then a few slices of decoded
blocks (``Dataset.read_segments`` / ``read_columns``). A unit that failed to decode, or a
batch that cannot be sliced, is read again row by row (:mod:`m5stream.execution.rows`), so
errors and skips are exactly those of the other executors.
"""

from __future__ import annotations

import time
from typing import Any

from ..batches import finish_columns
from ..plan import IndexRun, Plan, PlannedBatch, UnitPlanner
from ..plan.units import Unit
from ..storage.iostats import io_changes, io_counters, io_delta
from .base import Executor, StepOutput
from .readahead import ReadAhead
from .rows import read_rows

__all__ = ["ThreadExecutor"]


def _getter(blocks: dict[Unit, Any]) -> Any:
    """``Dataset.read_columns``'s block source over already decoded ``blocks``."""
    return lambda shard, unit, _local: blocks[(shard, unit)]


class ThreadExecutor(Executor):
    kind = "threads"
    _ahead: ReadAhead | None = None

    def start(self, plan: Plan, step: int) -> None:
        self.stop()  # an abandoned iteration's threads
        self.plan, self.step = plan, step
        budget = self.ctx.budget
        self._ahead = ReadAhead(
            self.ctx.dataset,
            UnitPlanner(plan, self.ctx.dataset, step),
            threads=budget.threads,
            depth=budget.depth,
        )
        # S3 requests start in this thread as units are planned: counted per step
        self._io0, self._io_mark = io_counters(), io_changes()

    def next(self) -> StepOutput:
        ahead, plan = self._ahead, self.plan
        assert ahead is not None and plan is not None, "start() first"
        clock = time.perf_counter
        step = self.step
        t0 = clock()
        n0 = io_changes()
        if n0 != self._io_mark:
            self._io0, self._io_mark = io_counters(), n0
        planned, blocks = ahead.take(step)
        t1 = clock()
        seconds = {"wait": t1 - t0}
        io = io_delta(self._io0) if io_changes() != self._io_mark else None
        batch: dict[str, Any] | None = None
        if not isinstance(blocks, BaseException) and len(planned):
            seconds["read"], block_io = ahead.first_reads(blocks)
            self.ctx.stats.add_io(block_io)
            batch = self._slice(planned, blocks)
            seconds["assemble"] = clock() - t1
        if batch is None and len(planned):
            # a unit failed to decode (or the batch to slice): the row path raises or skips
            # exactly as the other executors do
            out = read_rows(self.ctx, step, planned.indices, plan.epoch, transform=False)
            out.seconds.update(seconds)
            if io:
                out.io = {k: out.io.get(k, 0) + v for k, v in io.items()} if out.io else io
        else:
            out = StepOutput(step, batch, [], seconds, io)
        ahead.done(step)
        self.step = step + 1
        return out

    def _slice(self, planned: PlannedBatch, blocks: dict[Unit, Any]) -> dict[str, Any] | None:
        ds = self.ctx.dataset
        try:
            if planned.segments is not None:
                run = planned.index_run
                first = (run.first, run.count) if isinstance(run, IndexRun) else run
                cols = ds.read_segments(first, planned.segments, _getter(blocks))
            else:
                assert planned.shards is not None and planned.locals_ is not None
                cols = ds.read_columns(
                    planned.indices,
                    planned.shards,
                    planned.locals_,
                    blocks=_getter(blocks),
                    units=planned.units,
                )
            return finish_columns(cols) if cols is not None else None
        except Exception:
            return None  # the row path finds the failing sample

    def stop(self) -> None:
        if self._ahead is not None:
            self._ahead.close()
            self._ahead = None

    def queue_depth(self) -> int:
        ahead = self._ahead
        return ahead.planned_steps if ahead is not None else 0
