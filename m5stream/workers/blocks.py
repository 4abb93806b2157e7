"""Decoded column blocks read ahead by threads, for batches sliced out of them in the trainer.

For a column-wise source (Parquet, CSV) read without a per-sample transform, a batch is a few
slices of decoded units (Parquet row groups, CSV files). The sample order is a pure function,
so the units every future batch needs are known: :class:`BlockReadAhead` plans the batches
ahead of the trainer and has a thread pool decode each unit once, in the order it will be
needed, keeping ``depth`` units decoded or in flight beyond those the current batch uses. The
trainer then slices each batch out of the decoded blocks (``Dataset.read_columns``).

Why threads and not the worker processes: decoding is pyarrow's C++ Parquet/CSV reader and
the S3 reads are awscrt's, both without the GIL, so threads keep the cores busy; a process
hop would add a task message, a copy into shared memory and a reply per batch, and a unit
whose batches went to two workers would be decoded twice.

Ownership: each thread opens its own shard readers (a reader caches state and file handles);
a block is dropped once no planned batch needs it. A unit needed again beyond the plan's
horizon (a block shuffle whose window spans far) is decoded again: slower, never wrong.

Errors: a unit whose decode raised is reported to the batch that needs it, as the exception;
the Loader then reads that batch row by row, so errors and skips are those of the row path.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..columns import ColumnBlock
from ..dataset import Dataset
from ..errors import M5Error
from ..formats import ShardReader
from ..storage.iostats import io_counters, io_delta
from .task import compact_indices

__all__ = ["BlockReadAhead", "PlannedBatch"]

Unit = tuple[int, int]  # (shard, unit within the shard)

#: bounds on how far the plan runs ahead of the trainer (memory for the planned indices)
_MAX_PLANNED_STEPS = 4096
_MAX_PLANNED_ROWS = 1 << 21
#: shard readers each decode thread keeps open
_THREAD_READERS = 4


@dataclass
class PlannedBatch:
    step: int
    #: the batch's sample indices, or ``(first, count)`` of a run (made into an array when
    #: asked for: planning runs hundreds of steps ahead of the trainer)
    index_run: np.ndarray | tuple[int, int]
    #: consecutive samples: ``(shard, unit, first local, count)`` runs (``Dataset.segments``)
    segments: list[tuple[int, int, int, int]] | None
    #: otherwise: where each sample is
    shards: np.ndarray | None = None
    locals_: np.ndarray | None = None
    units: np.ndarray | None = None
    #: the distinct units the batch reads, in order of first use
    needs: list[Unit] = field(default_factory=list)

    @property
    def indices(self) -> np.ndarray:
        if isinstance(self.index_run, tuple):
            first, count = self.index_run
            self.index_run = np.arange(first, first + count, dtype=np.int64)
        return self.index_run

    def __len__(self) -> int:
        r = self.index_run
        return r[1] if isinstance(r, tuple) else len(r)


class BlockReadAhead:
    """Plans steps ``start .. n_steps - 1`` and decodes their units ahead (see module doc).

    ``threads=0`` decodes each unit in the caller when a batch first needs it (its fetch still
    starts ``depth`` units ahead).
    ``runs(step)``, when given, is ``(first, count)`` for a step whose indices are that run
    (``sampling.batch_run``), sparing the index arrays' work.
    """

    def __init__(
        self,
        dataset: Dataset,
        indices: Callable[[int], np.ndarray],
        start: int,
        n_steps: int,
        *,
        threads: int,
        depth: int,
        runs: Callable[[int], tuple[int, int] | None] | None = None,
    ) -> None:
        self._ds = dataset
        self._indices = indices
        self._runs = runs
        self._next = start
        self._n_steps = n_steps
        self._depth = max(1, depth)
        self._plans: deque[PlannedBatch] = deque()
        self._planned_rows = 0
        self._blocks: OrderedDict[Unit, Future[ColumnBlock]] = OrderedDict()
        #: without threads: fetches started at planning, decoded when a batch needs them
        self._fetched: dict[Unit, Any] = {}
        #: fetches that wait in a pool until they run: cancelled if the iteration ends first
        self._fetches: dict[Unit, Future[Any]] = {}
        self._first_use: dict[Unit, int] = {}
        self._last_use: dict[Unit, int] = {}
        self._counted: set[Unit] = set()
        self._pool = (
            ThreadPoolExecutor(threads, thread_name_prefix="m5-blocks") if threads > 0 else None
        )
        self._local = threading.local()
        self._lock = threading.Lock()
        self._readers: list[ShardReader] = []

    # ------------------------------------------------------------------ decoding
    def _reader(self, shard: int) -> ShardReader:
        readers: OrderedDict[int, ShardReader] | None = getattr(self._local, "readers", None)
        if readers is None:
            readers = self._local.readers = OrderedDict()
        r = readers.get(shard)
        if r is None:
            m = self._ds.manifest
            r = readers[shard] = self._ds.format.open(m.shard(shard, self._ds.s3), m.options)
            with self._lock:
                self._readers.append(r)
            while len(readers) > _THREAD_READERS:
                _, old = readers.popitem(last=False)
                old.close()
        else:
            readers.move_to_end(shard)
        return r

    def _decode(self, unit: Unit, fetched: Any = None, threaded: bool = False) -> ColumnBlock:
        """Decode ``unit``; in a decode thread, the S3 requests and bytes it makes are kept
        on the block (in the caller's thread its own counters see them)."""
        t0 = time.perf_counter()
        io0 = io_counters() if threaded else None
        try:
            block = self._reader(unit[0]).decode_unit(unit[1], fetched)
        except M5Error as exc:
            exc.add_context(uri=self._ds.manifest.uri(unit[0]))
            raise
        self._ds.prepare_block(unit[0], block)
        block.seconds = time.perf_counter() - t0
        if io0 is not None:  # added to what a fetch made in a thread of its own, if any
            for k, v in io_delta(io0).items():
                block.io[k] = block.io.get(k, 0) + v
        return block

    def _start(self, unit: Unit) -> None:
        """A unit was planned: its fetch starts now, from this thread (the CRT runs it without
        a thread of ours); with threads, its decode is queued, in plan order."""
        try:
            fetched = self._ds.fetch_unit(*unit)
        except Exception:
            fetched = None  # the decode fetches again and reports what fails
        if isinstance(fetched, Future):  # a fetch queued in a pool (tar shards): cancellable
            self._fetches[unit] = fetched
        if self._pool is not None:
            self._blocks[unit] = self._pool.submit(self._decode, unit, fetched, True)
        else:
            self._fetched[unit] = fetched

    def _block(self, unit: Unit) -> ColumnBlock:
        fut = self._blocks.get(unit)
        if fut is None:  # no threads (decode here, now), or released and needed again
            fut = self._blocks[unit] = Future()
            try:
                fut.set_result(self._decode(unit, self._fetched.pop(unit, None)))
            except BaseException as exc:  # delivered to the batch that needs the unit
                fut.set_exception(exc)
        return fut.result()

    # ------------------------------------------------------------------ planning
    def _plan_one(self) -> None:
        step = self._next
        run = self._runs(step) if self._runs is not None else None
        if run is not None:
            plan = (
                self._run_plan(step, run, *run)
                if run[1]
                else PlannedBatch(step, np.zeros(0, np.int64), None)
            )
            self._add(plan)
            return
        idx = self._indices(step)
        n = len(idx)
        if n and (n == 1 or isinstance(compact_indices(idx), tuple)):
            plan = self._run_plan(step, idx, int(idx[0]), n)
        else:
            shards, locals_ = self._ds.locate_many(idx)
            units = self._ds.units_of(shards, locals_)
            plan = PlannedBatch(step, idx, None, shards, locals_, units)
            if n:
                pairs = np.stack([shards, units], axis=1)
                cut = np.flatnonzero((pairs[1:] != pairs[:-1]).any(axis=1)) + 1
                plan.needs = list(dict.fromkeys(map(tuple, pairs[np.r_[0, cut]].tolist())))
        self._add(plan)

    def _run_plan(
        self, step: int, index_run: np.ndarray | tuple[int, int], first: int, count: int
    ) -> PlannedBatch:
        """The plan of a batch of the consecutive samples ``first .. first + count - 1``."""
        segs = self._ds.segments(first, count)
        plan = PlannedBatch(step, index_run, segs)
        plan.needs = list(dict.fromkeys((s, u) for s, u, _, _ in segs))
        return plan

    def _add(self, plan: PlannedBatch) -> None:
        step = plan.step
        for u in plan.needs:
            self._last_use[u] = step
            self._first_use.setdefault(u, step)
            if u not in self._blocks and u not in self._fetched:
                self._start(u)
        self._plans.append(plan)
        self._planned_rows += len(plan)
        self._next += 1

    def _fill(self, step: int) -> None:
        """Plan through ``step`` and on until ``depth`` units beyond the current batch's are
        decoded or in flight (within the planning bounds)."""
        while self._next <= step:
            self._plan_one()
        # units held: the current batch's, then those planned ahead (until released)
        held = self._depth + len(self._plans[0].needs)
        while (
            self._next < self._n_steps
            and len(self._first_use) < held
            and self._next - step < _MAX_PLANNED_STEPS
            and self._planned_rows < _MAX_PLANNED_ROWS
        ):
            self._plan_one()

    # ------------------------------------------------------------------ consuming
    def take(self, step: int) -> tuple[PlannedBatch, dict[Unit, ColumnBlock] | BaseException]:
        """Step ``step``'s plan and its decoded blocks, or the exception a decode raised."""
        while self._plans and self._plans[0].step < step:
            self._planned_rows -= len(self._plans.popleft())
        self._fill(step)
        plan = self._plans[0]
        blocks: dict[Unit, ColumnBlock] = {}
        for u in plan.needs:
            try:
                blocks[u] = self._block(u)
            except BaseException as exc:
                self._blocks.pop(u, None)  # the row path reports it; a later batch retries
                return plan, exc
        return plan, blocks

    def first_reads(self, blocks: dict[Unit, ColumnBlock]) -> tuple[float, dict[str, int]]:
        """Decode seconds and S3 counters of the blocks not reported before."""
        seconds, io = 0.0, dict[str, int]()
        for u, b in blocks.items():
            if u not in self._counted:
                self._counted.add(u)
                seconds += b.seconds
                for k, v in b.io.items():
                    io[k] = io.get(k, 0) + v
        return seconds, io

    def done(self, step: int) -> None:
        """Step ``step`` was delivered: drop the units no planned later batch needs."""
        plan = self._plans.popleft()
        self._planned_rows -= len(plan)
        for u in plan.needs:
            if self._last_use.get(u, -1) <= step:
                self._blocks.pop(u, None)
                self._fetched.pop(u, None)
                self._fetches.pop(u, None)
                self._last_use.pop(u, None)
                self._first_use.pop(u, None)
                self._counted.discard(u)

    def close(self) -> None:
        # first the fetches not begun, so that no decode still queued waits for one
        for f in self._fetches.values():
            f.cancel()
        self._fetches.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._blocks.clear()
        self._fetched.clear()
        with self._lock:
            readers, self._readers = self._readers, []
        for r in readers:
            r.close()

    def __enter__(self) -> BlockReadAhead:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
