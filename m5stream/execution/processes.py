"""The processes executor: worker processes load, transform and write batches into
shared-memory slots; the trainer receives a small reply per batch and delivers in order.

The trainer keeps ``budget.steps`` batches in flight, each sent to the least loaded worker,
except that batches starting in the same decode unit (a Parquet row group) go to one worker,
so the unit is decoded once. Replies arrive in any order and are delivered in step order.
Shards that workers would read whole from S3 (``caps.whole_shard_fetch``) are downloaded
ahead into the disk shard cache by the one read-ahead (:mod:`m5stream.execution.readahead`,
fetch-only), in the order the plan needs them; a worker that needs a shard still downloading
waits for that download (the cache entry's lock) rather than starting another.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, wait
from typing import Any

import numpy as np

from ..batches import FieldKind, read_slot
from ..errors import M5Error, SlotsExhausted, WorkerDied
from ..formats.caps import Fetch
from ..plan import Plan, UnitPlanner
from ..plan.units import Unit, compact_indices
from ..stats import Stats
from ..storage.blobs import is_s3, start_local_shard
from ..workers.pool import WorkerPool
from ..workers.protocol import DoneReply, ErrorReply, TaskMsg
from ..workers.slots import RingManager
from .base import ExecContext, Executor, StepOutput
from .readahead import ReadAhead

__all__ = ["ProcessExecutor"]

log = logging.getLogger("m5stream")

#: decode units whose worker is remembered
_AFFINITY = 64


class ProcessExecutor(Executor):
    kind = "processes"

    def __init__(self, ctx: ExecContext) -> None:
        super().__init__(ctx)
        self.pool: WorkerPool | None = None
        self.rings: RingManager | None = None
        self._gen = 0
        self._dispatch = 0
        self._ready: dict[int, tuple[int, DoneReply | ErrorReply] | None] = {}
        self._affinity: OrderedDict[tuple[int, int], int] = OrderedDict()
        self._ahead: ReadAhead | None = None
        #: step -> (worker, the task sent): what a dead worker held, to send again
        self._assigned: dict[int, tuple[int, TaskMsg, int]] = {}
        #: (epoch, restarts made in it): ``max_worker_restarts`` is a budget per epoch
        self._restarts = (-1, 0)
        #: shard downloads of the current iteration not finished yet; finished ones are
        #: counted into _fetched as they end (an epoch may download many thousand shards)
        self._downloads: set[Future[dict[str, int]]] = set()
        self._fetched = Stats()
        self._fetched_lock = threading.Lock()

    # ------------------------------------------------------------------ workers
    def _ensure_pool(self) -> tuple[WorkerPool, RingManager]:
        if self.pool is None:
            c = self.ctx.config
            self.pool = WorkerPool(
                c.num_workers,
                self.ctx.dataset,
                self.ctx.transform,
                self.ctx.batch_transform,
                seed=c.seed,
                on_error=c.on_error,
                start_method=c.start_method,
            )
            self.rings = RingManager(self.ctx.budget.steps + 2, c.slot_bytes, self.pool.send_ring)
        assert self.rings is not None
        return self.pool, self.rings

    @property
    def pids(self) -> list[int]:
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
        self._ensure_pool()
        self._gen += 1
        self.plan, self.step, self._dispatch = plan, step, step
        ds = self.ctx.dataset
        if ds.format.caps.whole_shard_fetch and is_s3(ds.manifest.root):
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
        m = self.ctx.dataset.manifest
        shard = unit[0]
        fut = start_local_shard(
            m.uri(shard), int(m.sizes[shard]), m.stamps[shard], self.ctx.dataset.s3
        )
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
        """Keep ``budget.steps`` batches in flight, as slots and pipes allow."""
        assert self.plan is not None
        plan, epoch = self.plan, self.plan.epoch
        while self._dispatch < plan.steps and self._dispatch - self.step < self.ctx.budget.steps:
            idx = plan.indices(self._dispatch)
            if len(idx) == 0:
                self._ready[self._dispatch] = None
                self._dispatch += 1
                continue
            w = self._pick_worker(pool, idx)
            sent = compact_indices(idx)
            nbytes = 256 + (sent.nbytes if isinstance(sent, np.ndarray) else 0)
            if not pool.can_take(w, nbytes):
                break  # its pipe is full enough: wait for its replies first
            got = rings.acquire()
            if got is None:
                break
            task = TaskMsg(self._gen, self._dispatch, got[0], got[1], epoch, sent)
            # recorded as sent before the send: a send that finds the worker dead is then
            # sent again by _heal, never dispatched twice
            self._assigned[self._dispatch] = (w, task, nbytes)
            self._dispatch += 1
            pool.submit(w, task, nbytes)

    def next(self) -> StepOutput:
        pool, rings = self._ensure_pool()
        if self._ahead is not None:
            self._ahead.advance(self.step)
        while True:
            try:
                self._fill(pool, rings)
                step = self.step
                if step in self._ready:
                    item = self._ready.pop(step)
                    self.step = step + 1
                    if item is None:
                        return StepOutput(step, None)
                    return self._deliver(step, *item)
                self._receive(pool, rings)
            except WorkerDied as died:
                if not self._heal(pool, died):
                    self.close(timeout=0.1)  # the survivors' work is lost anyway
                    raise

    def _heal(self, pool: WorkerPool, died: WorkerDied) -> bool:
        """Replace the dead worker and send its tasks again, within the epoch's budget of
        ``max_worker_restarts``; ``False``: no budget left (or nothing known to replace).
        The tasks are the same steps of the same plan, so the batches delivered are those an
        undisturbed run makes, in order."""
        assert self.plan is not None
        wid = died.worker
        epoch, used = self._restarts
        if epoch != self.plan.epoch:
            used = 0
        if wid is None or used >= self.ctx.config.max_worker_restarts:
            return False
        self._restarts = (self.plan.epoch, used + 1)
        self.ctx.stats.worker_restarts += 1
        log.warning(
            "%s; restarting it (%d of %d this epoch)",
            died,
            used + 1,
            self.ctx.config.max_worker_restarts,
        )
        pool.restart(wid)
        for _step, (w, task, nbytes) in sorted(self._assigned.items()):
            if w == wid:
                pool.submit(wid, task, nbytes)
        return True

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
            if msg.gen != self._gen:
                rings.release(msg.ring_id, msg.slot)  # a reply to an abandoned iteration
            else:
                self._assigned.pop(msg.step, None)
                self._ready[msg.step] = (wid, msg)

    def _deliver(self, step: int, wid: int, msg: DoneReply | ErrorReply) -> StepOutput:
        t0 = time.perf_counter()
        rings = self.rings
        stats = self.ctx.stats
        assert rings is not None
        if isinstance(msg, ErrorReply):
            rings.release(msg.ring_id, msg.slot)
            raise msg.error.to_exception(wid)
        layout, meta = msg.layout, msg.meta
        in_slot = any(e.in_slot for e in layout)
        if any(e.kind is FieldKind.INLINE for e in layout):
            stats.inline_batches += 1
        if meta.needed > rings.slot_bytes:
            rings.grow(meta.needed)
            stats.ring_grows = rings.grows
        if in_slot and not self.ctx.config.copy:
            batch = read_slot(layout, rings.lease(msg.ring_id, msg.slot), copy=False)
        else:
            slot = rings.slot(msg.ring_id, msg.slot) if in_slot else None
            batch = read_slot(layout, slot, copy=True)
            rings.release(msg.ring_id, msg.slot)
        stats.seconds["deliver"] += time.perf_counter() - t0
        return StepOutput(
            step, batch if len(batch["__key__"]) else None, meta.skipped, meta.seconds, meta.io
        )

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
        self._assigned.clear()
        if self.rings is not None:
            for item in ready.values():
                if item is not None:
                    self.rings.release(item[1].ring_id, item[1].slot)

    def close(self, timeout: float = 1.0) -> None:
        self.stop()
        if self.pool is not None:
            self.pool.shutdown(timeout)
            self.pool = None
        if self.rings is not None:
            self.rings.close()
            self.rings = None

    def state(self) -> dict[str, Any]:
        return {**super().state(), "workers": self.ctx.config.num_workers}

    def queue_depth(self) -> int:
        return max(0, self._dispatch - self.step) if self.plan is not None else 0
