"""The processes executor: worker processes load, transform and write batches into
shared-memory slots; the trainer receives a small reply per batch and delivers in order.

Start-up: the workers and their slot ring are started when the Loader is made, by a thread
(:class:`~m5stream.workers.starter.PoolStarter`). Until a worker holds its payload, the
trainer makes the batches itself (``inline_start``), in plan order, with the in-process
builder (:func:`~m5stream.execution.rows.read_rows`: the same fused decode, skips and errors
as a worker), so the first batch costs what ``num_workers=0`` costs; the first of those
batches sizes the ring's slots. Once a worker is ready the steps after the current one go to
the workers, the trainer makes that one while they start on theirs, and from then on it only
delivers. ``inline_start`` is off by default with ``max_worker_restarts``:
a sample that crashes its decoder in the trainer would take the trainer with it.

The trainer keeps ``budget.steps`` batches in flight, each sent to the least loaded worker,
except that batches starting in the same decode unit (a Parquet row group) go to one worker,
so the unit is decoded once. Replies arrive in any order and are delivered in step order.
Shards that workers would read whole from S3 (``Dataset.downloads_ahead``: tar, JSONL, CSV;
for a mixture, those of such sources) are downloaded
ahead into the disk shard cache by the one read-ahead (:mod:`m5stream.execution.readahead`,
fetch-only), in the order the plan needs them; a worker that needs a shard still downloading
waits for that download (the cache entry's lock) rather than starting another.

Healing (``max_worker_restarts > 0``): a dead worker is replaced and the tasks it held are sent
again. The oldest task it held is the one it was running: a whole task that killed its worker
twice is bisected (:mod:`m5stream.workers.bisect`) until the samples that kill it are found;
those are skipped (``on_error="skip"``: recorded like any corrupt sample, and left out of every
later task of this loader without being run) or raised as :class:`CorruptData`. Budget: the
first death of a task is one of the epoch's ``max_worker_restarts``; its second death and
every death while bisecting it are not (``stats["poison_kills"]``; the bisection bounds them),
and when a poison sample is found the first death is given back, since the sample explains it.
The budget counts deaths no sample explains: a machine's faults, not the data's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, wait
from typing import Any, NamedTuple

import numpy as np

from ..batches import FieldKind, read_slot
from ..errors import M5Error, SlotsExhausted, WorkerDied
from ..formats.caps import Fetch
from ..plan import Plan, UnitPlanner
from ..plan.units import Unit, compact_indices
from ..stats import Stats
from ..storage.blobs import start_local_shard
from ..workers.bisect import Hunt, PoisonRecord, join_batches
from ..workers.launch import Payload
from ..workers.pool import WorkerPool, describe_exit
from ..workers.protocol import DoneReply, ErrorReply, KeyReply, Reply, TaskMsg
from ..workers.slots import RingManager
from ..workers.starter import PoolStarter
from .base import ExecContext, Executor, StepOutput
from .readahead import ReadAhead
from .rows import read_rows

__all__ = ["ProcessExecutor"]

log = logging.getLogger("m5stream")

#: decode units whose worker is remembered
_AFFINITY = 64


class _Sent(NamedTuple):
    """A task sent to a worker and not answered yet."""

    worker: int
    task: TaskMsg
    nbytes: int
    #: sending order: a worker runs its tasks in it, so its oldest is the one it was running
    seq: int


class _Made(NamedTuple):
    """A step's outcome made in the trainer: a bisected batch, a step whose samples are all
    known poison, or the error the step raises."""

    batch: dict[str, Any] | None
    skipped: list[list[Any]]
    seconds: dict[str, float]
    io: dict[str, int]
    error: BaseException | None = None


#: what a step is waiting to deliver: a worker's reply, a trainer-made outcome, or nothing
_Ready = tuple[int, Reply] | _Made | None


class ProcessExecutor(Executor):
    kind = "processes"

    def __init__(self, ctx: ExecContext) -> None:
        super().__init__(ctx)
        self.pool: WorkerPool | None = None
        self.rings: RingManager | None = None
        self._gen = 0
        self._dispatch = 0
        self._ready: dict[int, _Ready] = {}
        self._affinity: OrderedDict[tuple[int, int], int] = OrderedDict()
        self._ahead: ReadAhead | None = None
        #: (step, part) -> the task sent: what a dead worker held, to send again
        self._assigned: dict[tuple[int, int], _Sent] = {}
        self._seq = 0
        #: the task whose send found its worker dead (it never ran: not to blame)
        self._unsent: tuple[int, int] | None = None
        #: (gen, step, part) -> (worker, ring, slot) of tasks of abandoned iterations: their
        #: slot comes back with the reply, or when the worker is found dead
        self._abandoned: dict[tuple[int, int, int], tuple[int, int, int]] = {}
        #: (epoch, restarts charged in it): ``max_worker_restarts`` is a budget per epoch
        self._restarts = (-1, 0)
        #: this iteration's deaths of each step's whole task; steps bisected; the bisections
        self._deaths: dict[int, int] = {}
        self._hunted: set[int] = set()
        self._hunts: dict[int, Hunt] = {}
        #: steps to send whole again after their bisection (a batch transform needs all the
        #: good samples together); known poison samples left out of a step's task
        self._redo: list[int] = []
        self._excluded: dict[int, list[PoisonRecord]] = {}
        #: samples known to kill their worker, by index: never sent again by this executor
        self._poison: dict[int, PoisonRecord] = {}
        #: shard downloads of the current iteration not finished yet; finished ones are
        #: counted into _fetched as they end (an epoch may download many thousand shards)
        self._downloads: set[Future[dict[str, int]]] = set()
        self._fetched = Stats()
        self._fetched_lock = threading.Lock()
        self._starter: PoolStarter | None = None
        self._payload: Payload | None = None
        c = ctx.config
        #: make batches in the trainer while no worker is ready (see module docstring)
        self._inline_start = (
            c.inline_start if c.inline_start is not None else c.max_worker_restarts == 0
        )
        #: the workers have taken over from the trainer (once for the executor's life)
        self._handed_over = False

    # ------------------------------------------------------------------ workers
    def warm(self) -> None:
        """Start the workers and their ring now, in a thread (see module docstring). The
        payload is pickled here: one that cannot be is a ConfigError at once."""
        if self.pool is None and self._starter is None:
            c = self.ctx.config
            if self._payload is None:
                self._payload = WorkerPool.payload_of(
                    self.ctx.dataset,
                    self.ctx.transform,
                    self.ctx.batch_transform,
                    seed=c.seed,
                    on_error=c.on_error,
                )
            self._starter = PoolStarter(
                self._make_pool,
                self.ctx.budget.steps + 2,
                c.slot_bytes,
                wait_for_size=self._inline_start,
            )

    def _make_pool(self) -> WorkerPool:
        c = self.ctx.config
        return WorkerPool(
            c.num_workers,
            self.ctx.dataset,
            self.ctx.transform,
            self.ctx.batch_transform,
            seed=c.seed,
            on_error=c.on_error,
            start_method=c.start_method,
            payload=self._payload,
        )

    def _ensure_pool(self) -> tuple[WorkerPool, RingManager]:
        if self.pool is None:
            self.warm()
            assert self._starter is not None
            starter, self._starter = self._starter, None
            try:
                self.pool, self.rings = starter.get()
            except BaseException:
                starter.close()
                raise
        assert self.rings is not None
        return self.pool, self.rings

    def _workers_up(self) -> bool:
        """Whether the workers take this step: handed over already, or a worker is ready
        (without waiting for either)."""
        if self.pool is None:
            self.warm()
            assert self._starter is not None
            if not self._starter.done():
                return False
            self._ensure_pool()
        assert self.pool is not None
        return self._dispatch > self.step or self.pool.poll_ready()

    def _next_inline(self) -> StepOutput:
        """Step :attr:`step` made here, while the workers start (known poison samples are
        left out as they are from a task)."""
        assert self.plan is not None
        step = self.step
        idx = self.plan.indices(step)
        known = [self._poison[i] for i in idx.tolist() if i in self._poison] if self._poison else []
        if known:
            if self.ctx.config.on_error != "skip":
                raise known[0].error()
            idx = idx[~np.isin(idx, [r.sample for r in known])]
        if len(idx):
            out = read_rows(self.ctx, step, idx, self.plan.epoch)
        else:
            out = StepOutput(step, None)
        if known:
            out.skipped = self._in_order(step, out.skipped + [r.skip_record() for r in known])
        self.step = step + 1
        self._dispatch = max(self._dispatch, self.step)
        self.ctx.stats.startup_batches += 1
        if self._starter is not None and out.needed:
            self._starter.size_hint(out.needed)
        return out

    def _hand_over(self) -> StepOutput:
        """The first step after a worker is ready: the workers are sent the steps after it,
        and the trainer makes this one meanwhile. A worker's first batch takes as long as one
        made here, so the trainer would otherwise wait that long with nothing to do."""
        self._handed_over = True
        pool, rings = self._ensure_pool()
        self._dispatch = self.step + 1
        try:
            self._fill(pool, rings)
        except WorkerDied as died:
            self._recover(pool, rings, died)
        return self._next_inline()

    @property
    def pids(self) -> list[int]:
        """The workers' PIDs (waits for a start under way to end)."""
        if self.pool is None and self._starter is not None:
            try:
                self._ensure_pool()
            except WorkerDied:
                return []
        return self.pool.pids if self.pool is not None else []

    def _pick_worker(self, pool: WorkerPool, idx: np.ndarray) -> int:
        ds = self.ctx.dataset
        unit = ds.locality(int(idx[0])) if self.ctx.config.num_workers > 1 else None
        if unit is None:
            return pool.least_loaded()
        w = self._affinity.get(unit)
        if w is None:
            w = self._affinity[unit] = pool.least_loaded()
            if len(self._affinity) > _AFFINITY:
                self._affinity.popitem(last=False)
        return w

    # ------------------------------------------------------------------ iteration
    def start(self, plan: Plan, step: int) -> None:
        self.stop()
        if not self._inline_start:
            self._ensure_pool()
        else:
            self.warm()
        self._gen += 1
        self.plan, self.step, self._dispatch = plan, step, step
        ds = self.ctx.dataset
        if ds.downloads_ahead:
            budget = self.ctx.budget
            self._ahead = ReadAhead(
                ds,
                UnitPlanner(plan, ds, step),
                threads=0,
                depth=budget.shards_ahead,
                fetch=self._download,
                decode=False,
                max_steps=budget.shard_lookahead,
            )

    def _download(self, unit: Unit) -> Fetch:
        info = self.ctx.dataset.shard_download(unit[0])
        if info is None:  # a mixture's source read otherwise: nothing to download
            return Fetch(lambda: None)
        fut = start_local_shard(info.uri, info.size, info.stamp, info.s3)
        with self._fetched_lock:
            self._downloads.add(fut)
        fut.add_done_callback(self._downloaded)
        return Fetch.of_future(fut)

    def _downloaded(self, fut: Future[dict[str, int]]) -> None:
        """A download ended (in its pool thread): count it if it completed; one that failed
        is reported by the worker that needs the shard."""
        with self._fetched_lock:
            self._downloads.discard(fut)
            if not fut.cancelled() and fut.exception() is None:
                self._fetched.prefetched_shards += 1
                self._fetched.add_io(fut.result())

    def _fill(self, pool: WorkerPool, rings: RingManager) -> None:
        """Keep ``budget.steps`` batches in flight, as slots and pipes allow; bisection
        pieces and steps to send again go first."""
        assert self.plan is not None
        self._pump(pool, rings)
        while self._redo and self._send_whole(pool, rings, self._redo[0]):
            self._redo.pop(0)
        plan = self.plan
        while self._dispatch < plan.steps and self._dispatch - self.step < self.ctx.budget.steps:
            if not self._send_whole(pool, rings, self._dispatch):
                break
            self._dispatch += 1

    def _send_whole(self, pool: WorkerPool, rings: RingManager, step: int) -> bool:
        """Send step ``step``'s task (without its known poison samples); ``False``: not now
        (no free slot, or the worker's pipe is full enough: wait for replies first)."""
        assert self.plan is not None
        idx = self.plan.indices(step)
        known = [self._poison[i] for i in idx.tolist() if i in self._poison] if self._poison else []
        if known:
            if self.ctx.config.on_error != "skip":
                self._ready[step] = _Made(None, [], {}, {}, known[0].error())
                return True
            idx = idx[~np.isin(idx, [r.sample for r in known])]
        if len(idx) == 0:
            records = [r.skip_record() for r in known]
            self._ready[step] = _Made(None, records, {}, {}) if known else None
            return True
        w = self._pick_worker(pool, idx)
        sent = compact_indices(idx)
        nbytes = 256 + (sent.nbytes if isinstance(sent, np.ndarray) else 0)
        if not pool.can_take(w, nbytes):
            return False
        got = rings.acquire()
        if got is None:
            return False
        if known:
            self._excluded[step] = known
        self._send(pool, w, TaskMsg(self._gen, step, got[0], got[1], self.plan.epoch, sent), nbytes)
        return True

    def _pump(self, pool: WorkerPool, rings: RingManager) -> None:
        """Send the next piece of every bisection that has none in flight."""
        assert self.plan is not None
        for hunt in self._hunts.values():
            if hunt.part or hunt.finished:
                continue
            if hunt.slot is not None and hunt.slot[0] != rings.ring.ring_id:
                rings.release(*hunt.slot)  # the ring grew: workers map only the new one
                hunt.slot = None
            if hunt.slot is None:
                hunt.slot = rings.acquire()
                if hunt.slot is None:
                    continue
            idx = hunt.piece_indices()
            sent = compact_indices(idx)
            nbytes = 256 + (sent.nbytes if isinstance(sent, np.ndarray) else 0)
            w = pool.least_loaded()
            if not pool.can_take(w, nbytes):
                continue
            ring_id, slot = hunt.slot
            part = hunt.next_part()
            task = TaskMsg(
                self._gen, hunt.step, ring_id, slot, self.plan.epoch, sent, part, len(idx) == 1
            )
            self.ctx.stats.poison_tasks += 1
            self._send(pool, w, task, nbytes)

    def _send(self, pool: WorkerPool, w: int, task: TaskMsg, nbytes: int) -> None:
        # recorded as sent before the send: a send that finds the worker dead is then sent
        # again by _heal, never dispatched twice
        self._seq += 1
        self._assigned[task.step, task.part] = _Sent(w, task, nbytes, self._seq)
        try:
            pool.submit(w, task, nbytes)
        except WorkerDied:
            self._unsent = (task.step, task.part)
            raise

    def next(self) -> StepOutput:
        if self._ahead is not None:
            self._ahead.advance(self.step)
        if self._inline_start and self._dispatch == self.step:
            try:
                up = self._workers_up()
            except WorkerDied as died:  # a worker died starting: heal it, or raise
                if self.pool is None or self.rings is None:
                    raise
                self._recover(self.pool, self.rings, died)
                up = False
            if not up:
                return self._next_inline()
            if not self._handed_over:
                return self._hand_over()
        pool, rings = self._ensure_pool()
        while True:
            try:
                self._fill(pool, rings)
                step = self.step
                if step in self._ready:
                    item = self._ready.pop(step)
                    self.step = step + 1
                    if item is None:
                        return StepOutput(step, None)
                    return self._deliver(step, item)
                self._receive(pool, rings)
            except WorkerDied as died:
                self._recover(pool, rings, died)

    def _recover(self, pool: WorkerPool, rings: RingManager, died: WorkerDied) -> None:
        """Heal ``died`` (and a replacement that dies while its tasks are sent again), or
        close and raise it when the budget is spent."""
        while True:
            try:
                if self._heal(pool, rings, died):
                    return
            except WorkerDied as again:
                died = again
                continue
            self.close(timeout=0.1)  # the survivors' work is lost anyway
            n = self.ctx.config.max_worker_restarts
            died.message += (
                f"; max_worker_restarts={n} were spent this epoch"
                if n
                else "; with max_worker_restarts >= 1 a dead worker is replaced and a sample "
                "that kills workers is found and skipped or raised as on_error says"
            )
            raise died

    def _heal(self, pool: WorkerPool, rings: RingManager, died: WorkerDied) -> bool:
        """Replace the dead worker and send its tasks again; ``False``: no budget left (or
        nothing known to replace). The tasks are the same steps of the same plan, so the
        batches delivered are those an undisturbed run makes, in order. The task it was
        running is blamed: its second death starts a bisection, a bisection piece's death
        goes to its bisection (see module docstring for what is charged to the budget)."""
        assert self.plan is not None
        wid, c, stats = died.worker, self.ctx.config, self.ctx.stats
        if wid is None or c.max_worker_restarts == 0:
            return False
        for msg in pool.drain(wid):  # what it finished before it died counts
            self._take(rings, wid, msg)
        unsent, self._unsent = self._unsent, None
        held = sorted((s for s in self._assigned.values() if s.worker == wid), key=_by_seq)
        ran = next((s for s in held if (s.task.step, s.task.part) != unsent), None)
        hunting = False
        if ran is not None:
            step, part = ran.task.step, ran.task.part
            if part:
                hunting = True
            else:
                self._deaths[step] = self._deaths.get(step, 0) + 1
                hunting = self._deaths[step] >= 2 and step not in self._hunted
        epoch, used = self._restarts
        if epoch != self.plan.epoch:
            used = 0
        if not hunting:
            if used >= c.max_worker_restarts:
                return False
            used += 1
        self._restarts = (self.plan.epoch, used)
        stats.worker_restarts += 1
        if hunting:
            stats.poison_kills += 1
            log.warning("%s; restarting it (bisecting the batch it was making)", died)
        else:
            log.warning(
                "%s; restarting it (%d of %d this epoch)", died, used, c.max_worker_restarts
            )
        pool.restart(wid)
        for key, (w, ring_id, slot) in list(self._abandoned.items()):
            if w == wid:  # an abandoned iteration's task it held: its reply will not come
                del self._abandoned[key]
                rings.release(ring_id, slot)
        if ran is not None and hunting:
            del self._assigned[ran.task.step, ran.task.part]
            self._blame(rings, ran.task, describe_exit(died.exit_code))
        for s in held:
            if s is ran and hunting:
                continue
            if s.task.ring_id != rings.ring.ring_id and not s.task.part:
                # the ring grew since it was sent: the replacement maps only the new ring, so
                # the step goes again whole, into a slot of that ring (_fill sends it first)
                del self._assigned[s.task.step, s.task.part]
                rings.release(s.task.ring_id, s.task.slot)
                self._redo.append(s.task.step)
                continue
            self._send(pool, wid, s.task, s.nbytes)
        self._redo.sort()
        return True

    def _blame(self, rings: RingManager, task: TaskMsg, how: str) -> None:
        """``task`` killed its worker in a way that bisects: start or narrow its step's hunt."""
        if task.part == 0:
            self._hunted.add(task.step)
            self._hunts[task.step] = Hunt(
                task.step,
                task.index_array(),
                self.ctx.config.on_error,
                (task.ring_id, task.slot),
            )
            return
        hunt = self._hunts[task.step]
        where = self._where(int(hunt.piece_indices()[0]))
        if hunt.died(where, how) is not None and len(hunt.poison) == 1:
            # the sample explains the task's first death too: it gives its restart back
            epoch, used = self._restarts
            if epoch == task.epoch and used > 0:
                self._restarts = (epoch, used - 1)
            self.ctx.stats.poison_kills += 1
        if hunt.finished:
            self._end_hunt(rings, hunt)

    def _where(self, index: int) -> str:
        """A sample named by its place (when it killed its worker before its key was read)."""
        shards, locals_ = self.ctx.dataset.locate_many(np.array([index]))
        uri = self.ctx.dataset.manifest.uri(int(shards[0]))
        return f"{int(locals_[0])} of {uri} (index {index})"

    def _end_hunt(self, rings: RingManager, hunt: Hunt) -> None:
        """The bisection of ``hunt.step`` is over: its outcome becomes ready (or, with a
        batch transform, the step is sent again whole without its poison samples)."""
        del self._hunts[hunt.step]
        if hunt.slot is not None:
            rings.release(*hunt.slot)
            hunt.slot = None
        for rec in hunt.poison:
            self._poison[rec.sample] = rec
        excluded = self._excluded.pop(hunt.step, [])
        if hunt.failure is not None:
            self._ready[hunt.step] = _Made(None, [], hunt.seconds, hunt.io, hunt.failure)
        elif self.ctx.batch_transform is not None:
            # the pieces' batches are each transformed apart; the step's batch is the
            # transform of all its good samples together, made by one worker
            self._redo.append(hunt.step)
        else:
            records = hunt.skipped + [r.skip_record() for r in (*excluded, *hunt.poison)]
            batch = join_batches(hunt.batches)
            made = _Made(batch, self._in_order(hunt.step, records), hunt.seconds, hunt.io)
            self._ready[hunt.step] = made

    def _in_order(self, step: int, records: list[list[Any]]) -> list[list[Any]]:
        """Skip records in the order of the step's samples (however they were found)."""
        assert self.plan is not None
        pos = {i: p for p, i in enumerate(self.plan.indices(step).tolist())}
        return sorted(records, key=lambda r: pos.get(int(r[0]), -1))

    def _receive(self, pool: WorkerPool, rings: RingManager) -> None:
        if sum(pool.inflight) == 0:
            raise SlotsExhausted(
                f"all {rings.num_slots} shared-memory slots are held by batches "
                "that are still referenced; drop old batches or use copy=True"
            )
        timeout = self.ctx.config.timeout
        t0 = time.perf_counter()
        replies = pool.wait(timeout)
        self.ctx.stats.seconds["wait"] += time.perf_counter() - t0
        if not replies:
            raise M5Error(f"no batch arrived within timeout={timeout}s", index=None)
        for wid, msg in replies:
            self._take(rings, wid, msg)

    def _take(self, rings: RingManager, wid: int, msg: Reply | KeyReply) -> None:
        """One message from worker ``wid``: a step's reply, a piece's, or a piece's key."""
        if msg.gen != self._gen:
            if not isinstance(msg, KeyReply):  # a reply to an abandoned iteration
                self._abandoned.pop((msg.gen, msg.step, msg.part), None)
                rings.release(msg.ring_id, msg.slot)
            return
        hunt = self._hunts.get(msg.step)
        if isinstance(msg, KeyReply):
            if hunt is not None and hunt.part == msg.part:
                hunt.key = msg.key
            return
        self._assigned.pop((msg.step, msg.part), None)
        if msg.part == 0:
            self._ready[msg.step] = (wid, msg)
            return
        if hunt is None or hunt.part != msg.part:
            return  # cannot happen: a hunt has one piece in flight, in the slot it owns
        if isinstance(msg, ErrorReply):
            hunt.failed(msg.error.to_exception(wid))
        else:
            hunt.done(self._read(msg, copy=True, release=False), msg.meta)
        if hunt.finished:
            self._end_hunt(rings, hunt)

    def _deliver(self, step: int, item: tuple[int, Reply] | _Made) -> StepOutput:
        if isinstance(item, _Made):
            if item.error is not None:
                raise item.error
            return StepOutput(step, item.batch, item.skipped, item.seconds, item.io)
        wid, msg = item
        known = self._excluded.pop(step, None)
        if isinstance(msg, ErrorReply):
            assert self.rings is not None
            self.rings.release(msg.ring_id, msg.slot)
            raise msg.error.to_exception(wid)
        t0 = time.perf_counter()
        batch = self._read(msg, copy=self.ctx.config.copy, release=True)
        self.ctx.stats.seconds["deliver"] += time.perf_counter() - t0
        meta = msg.meta
        skipped = meta.skipped
        if known:
            skipped = self._in_order(step, skipped + [r.skip_record() for r in known])
        return StepOutput(
            step, batch if len(batch["__key__"]) else None, skipped, meta.seconds, meta.io
        )

    def _read(self, msg: DoneReply, *, copy: bool, release: bool) -> dict[str, Any]:
        """The batch of ``msg`` (views of its slot, leased, unless ``copy``); ``release``:
        the slot is free once copied (a bisection keeps its slot for its next piece)."""
        rings = self.rings
        stats = self.ctx.stats
        assert rings is not None
        layout, meta = msg.layout, msg.meta
        in_slot = any(e.in_slot for e in layout)
        if any(e.kind is FieldKind.INLINE for e in layout):
            stats.inline_batches += 1
        if meta.needed > rings.slot_bytes:
            rings.grow(meta.needed)
            stats.ring_grows = rings.grows
        if in_slot and not copy:
            return read_slot(layout, rings.lease(msg.ring_id, msg.slot), copy=False)
        slot = rings.slot(msg.ring_id, msg.slot) if in_slot else None
        batch = read_slot(layout, slot, copy=True)
        if release:
            rings.release(msg.ring_id, msg.slot)
        return batch

    def stop(self) -> None:
        """Drop the iteration: stop shard downloads, give back slots of undelivered batches;
        replies still in flight are recognised by their generation and returned as they come."""
        self._gen += 1
        if self._ahead is not None:
            self._ahead.close()  # downloads not yet begun are dropped
            self._ahead = None
        with self._fetched_lock:
            running = list(self._downloads)
        wait(running)  # those running finish (a worker may be waiting on one)
        with self._fetched_lock:
            fetched, self._fetched = self._fetched, Stats()
        self.ctx.stats.prefetched_shards += fetched.prefetched_shards
        self.ctx.stats.add_io(fetched.s3)
        ready, self._ready = self._ready, {}
        for s in self._assigned.values():
            self._abandoned[s.task.gen, s.task.step, s.task.part] = (
                s.worker,
                s.task.ring_id,
                s.task.slot,
            )
        self._assigned.clear()
        hunts, self._hunts = self._hunts, {}
        self._deaths.clear()
        self._hunted.clear()
        self._redo.clear()
        self._excluded.clear()
        self._unsent = None
        if self.rings is not None:
            for item in ready.values():
                if item is not None and not isinstance(item, _Made):
                    self.rings.release(item[1].ring_id, item[1].slot)
            for hunt in hunts.values():
                if hunt.part == 0 and hunt.slot is not None:  # else its piece's reply frees it
                    self.rings.release(*hunt.slot)

    def close(self, timeout: float = 1.0) -> None:
        self.stop()
        if self._starter is not None:
            self._starter.close()
            self._starter = None
        if self.pool is not None:
            self.pool.shutdown(timeout)
            self.pool = None
        if self.rings is not None:
            self.rings.close()
            self.rings = None
        self._abandoned.clear()

    def remember_skips(self, records: list[list[Any]]) -> None:
        """Poison samples a loader state recorded as skipped: never sent to a worker again."""
        for record in records:
            rec = PoisonRecord.from_skip(record)
            if rec is not None:
                self._poison.setdefault(rec.sample, rec)

    def state(self) -> dict[str, Any]:
        return {**super().state(), "workers": self.ctx.config.num_workers}

    def queue_depth(self) -> int:
        return max(0, self._dispatch - self.step) if self.plan is not None else 0


def _by_seq(s: _Sent) -> int:
    return s.seq
