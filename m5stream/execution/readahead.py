"""The one read-ahead: the units the plan says are needed next, fetched (and decoded) ahead.

The sample order is a pure function, so the units every future batch needs are known.
:class:`ReadAhead` walks the plan ahead of the trainer (:class:`~m5stream.plan.UnitPlanner`),
starts each new unit's fetch in the order it will be needed, and keeps ``depth`` units
fetched, decoded or in flight beyond those the current batch uses. Byte and count budgets
come from :class:`~m5stream.config.ReadAheadBudget`. Two users:

* the threads executor: a thread pool decodes each unit once (row groups, CSV files, tar
  shards in memory, raw objects), and the trainer slices batches out of the blocks;
* the processes executor, fetch-only: whole shards downloaded into the disk shard cache for
  the worker processes to read.

Why threads and not processes for decoding: pyarrow's readers and the CRT run without the
GIL, so threads keep the cores busy; a process hop would add a message, a copy into shared
memory and a reply per batch, and a unit whose batches went to two workers would be decoded
twice.

Ownership: each thread opens its own shard readers (a reader caches state and file handles);
a block is dropped once no planned batch needs it. A unit needed again beyond the planning
horizon (a block shuffle whose window spans far) is fetched again: slower, never wrong.

Errors: a unit whose fetch or decode raised is reported to the batch that needs it, as the
exception; the executor then reads that batch row by row, so errors and skips are those of
the row path.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..batches.columns import ColumnBlock
from ..dataset import Dataset
from ..errors import M5Error
from ..formats import ShardReader
from ..formats.caps import Fetch
from ..plan import PlannedBatch, UnitPlanner
from ..plan.units import Unit
from ..storage.iostats import io_counters, io_delta

__all__ = ["ReadAhead"]

#: bounds on how far the plan runs ahead of the trainer (memory for the planned indices)
_MAX_PLANNED_STEPS = 4096
_MAX_PLANNED_ROWS = 1 << 21
#: shard readers each decode thread keeps open
_THREAD_READERS = 4


class ReadAhead:
    """Plans the steps of ``planner`` and fetches (and decodes) their units ahead.

    ``threads=0`` decodes each unit in the caller when a batch first needs it (its fetch still
    starts ``depth`` units ahead). ``fetch(unit)`` replaces the format's ``fetch_unit``;
    with ``decode=False`` units are only fetched (the processes executor's shard downloads:
    its workers read what was fetched) and the trainer calls :meth:`advance` instead of
    :meth:`take`. ``max_steps``: how many steps ahead of the trainer planning may run.
    """

    def __init__(
        self,
        dataset: Dataset,
        planner: UnitPlanner,
        *,
        threads: int,
        depth: int,
        fetch: Callable[[Unit], Fetch | None] | None = None,
        decode: bool = True,
        max_steps: int = _MAX_PLANNED_STEPS,
    ) -> None:
        self._ds = dataset
        self._planner = planner
        self._fetch = fetch if fetch is not None else (lambda u: dataset.fetch_unit(*u))
        self._decoding = decode
        self._max_steps = max(1, min(max_steps, _MAX_PLANNED_STEPS))
        self._depth = max(1, depth)
        self._plans: deque[PlannedBatch] = deque()
        self._planned_rows = 0
        self._blocks: OrderedDict[Unit, Future[ColumnBlock]] = OrderedDict()
        #: without threads: fetches started at planning, decoded when a batch needs them
        self._fetched: dict[Unit, Fetch | None] = {}
        #: fetches not yet waited for: cancelled if the iteration ends first
        self._fetches: dict[Unit, Fetch] = {}
        self._first_use: dict[Unit, int] = {}
        self._last_use: dict[Unit, int] = {}
        self._counted: set[Unit] = set()
        self._pool = (
            ThreadPoolExecutor(threads, thread_name_prefix="m5-blocks") if threads > 0 else None
        )
        self._local = threading.local()
        self._lock = threading.Lock()
        self._readers: list[ShardReader] = []

    @property
    def planned_steps(self) -> int:
        """Steps planned (their units fetching or decoded) and not yet taken."""
        return len(self._plans)

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

    def _decode(
        self, unit: Unit, fetched: Fetch | None = None, threaded: bool = False
    ) -> ColumnBlock:
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
        fetched: Fetch | None
        try:
            fetched = self._fetch(unit)
        except Exception:
            fetched = None  # the decode (or the worker) fetches again and reports what fails
        if fetched is not None:
            self._fetches[unit] = fetched
        if not self._decoding:
            self._fetched[unit] = None  # planned: fetched or fetching
        elif self._pool is not None:
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
        self._add(self._planner.plan_next())

    def _add(self, plan: PlannedBatch) -> None:
        step = plan.step
        for u in plan.needs:
            self._last_use[u] = step
            self._first_use.setdefault(u, step)
            if u not in self._blocks and u not in self._fetched:
                self._start(u)
        self._plans.append(plan)
        self._planned_rows += len(plan)

    def _fill(self, step: int) -> None:
        """Plan through ``step`` and on until ``depth`` units beyond the current batch's are
        decoded or in flight (within the planning bounds)."""
        planner = self._planner
        while planner.next_step <= step:
            self._plan_one()
        # units held: the current batch's, then those planned ahead (until released)
        held = self._depth + len(self._plans[0].needs)
        while (
            not planner.exhausted
            and len(self._first_use) < held
            and planner.next_step - step < self._max_steps
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

    def advance(self, step: int) -> None:
        """Fetch-only: the trainer is at ``step``: release the units of the steps before it
        and plan on."""
        while self._plans and self._plans[0].step < step:
            self.done(self._plans[0].step)
        if step < self._planner.plan.steps:
            self._fill(step)

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

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
