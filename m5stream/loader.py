"""``m5stream.Loader``: the deterministic, seekable, multiprocess batch iterator.

Position is ``(epoch, step)`` where ``step`` counts delivered *global* batches; every batch's
sample indices come from the pure functions in :mod:`m5stream.sampling`, so the sequence of
batches depends only on the dataset fingerprint, ``seed``, ``shuffle``, ``block_size``, the
global batch size and ``drop_last`` (see README "Determinism contract").

Epochs: ``set_epoch(e)`` selects epoch ``e`` (keeping the position if ``e`` is the current epoch,
so a resumed loop that calls ``set_epoch`` again continues). Iterating runs the rest of the
current epoch. Iterating again after an epoch completed moves to the next epoch, unless
``set_epoch`` was called since, in which case that completed epoch yields nothing.

Batches: a dict of fixed-shape fields stacked into arrays, variable-length fields as lists,
``__index__`` (int64 global sample ids) and ``__key__`` (list of str; for batches read
column-wise an equal :class:`m5stream.Keys` sequence that makes the strings on first use).

Paths: a column-wise source (Parquet, CSV), tar shards or raw objects with no transform, in
the natural or block order, are read by the block path (``m5stream.workers.blocks``:
``num_workers`` threads decode each unit - row group, file, shard, object - once, ahead, and
batches are sliced in this process); everything else goes through worker processes
(``num_workers > 0``) or runs inline. With ``copy=False`` (the
default) arrays are zero-copy views of a shared-memory slot, and the slot is reused only once
every view (and tensor made from one) of that batch is gone; keep a batch beyond the next few
iterations only with ``copy=True``, which copies each batch out once. ``output="torch"``
returns tensors made with ``torch.from_numpy`` (zero-copy over the same memory).
"""

from __future__ import annotations

import logging
import os
import sys
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np

from .columns import finish as finish_columns
from .dataset import Dataset, dataset
from .errors import ConfigError, M5Error, SlotsExhausted, WorkerDied
from .sampling import Order, batch_indices, batch_run, rank_bounds, steps_per_epoch
from .state import STATE_VERSION, check_state
from .stats import Stats
from .storage.s3 import io_changes, io_counters, io_delta
from .transforms import TransformFn
from .workers.assemble import assemble_numpy, read_batch
from .workers.blocks import BlockReadAhead
from .workers.pool import WorkerPool
from .workers.prefetch import ShardPrefetcher
from .workers.protocol import Cmd, Reply
from .workers.slots import RingManager
from .workers.task import BatchTransform, compact_indices, load_samples

__all__ = ["Loader"]

log = logging.getLogger("m5stream")
_MAX_SKIP_RECORDS = 1000
#: bound on the look-ahead chosen for formats with decode units (slots are 1 MiB by default)
_MAX_UNIT_PREFETCH = 64
#: one-sample units (raw objects) the block path keeps in flight at most, and their bytes
_MAX_OBJECTS_AHEAD = 512
_OBJECT_BYTES_AHEAD = 64 << 20
#: whole shards (tar) the block path keeps downloaded or downloading beyond the current one's:
#: at most this many, and no more than fit in the byte budget (at least one)
_SHARDS_AHEAD = 4
_SHARD_BYTES_AHEAD = 512 << 20


def _resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Explicit values, else ``torch.distributed`` when initialised, else ``RANK`` /
    ``WORLD_SIZE`` as ``torchrun`` sets them, else a single process."""
    if world_size is None:
        world_size = _torch_dist("get_world_size")
        if world_size is None:
            world_size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if rank is None:
        rank = _torch_dist("get_rank")
        if rank is None:
            rank = int(os.environ.get("RANK", "0") or 0)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return rank, world_size


def _torch_dist(fn: str) -> int | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return int(getattr(dist, fn)())
    return None


def _getter(blocks: dict[tuple[int, int], Any]) -> Any:
    """``Dataset.read_columns``'s block source over already decoded ``blocks``."""
    return lambda shard, unit, _local: blocks[(shard, unit)]


class _Resources:
    """What must be released even if the Loader is never closed (finaliser target)."""

    def __init__(self) -> None:
        self.pool: WorkerPool | None = None
        self.rings: RingManager | None = None
        #: the block path's read-ahead threads of an iteration in progress
        self.blocks: BlockReadAhead | None = None

    def close(self, timeout: float = 1.0) -> None:
        if self.blocks is not None:
            self.blocks.close()
            self.blocks = None
        if self.pool is not None:
            self.pool.shutdown(timeout)
            self.pool = None
        if self.rings is not None:
            self.rings.close()
            self.rings = None


class Loader:
    """Deterministic batches of a dataset (see module docstring and DESIGN.md)."""

    def __init__(
        self,
        ds: Dataset | str | list[str] | tuple[str, ...],
        batch_size: int,
        *,
        transform: TransformFn | None = None,
        batch_transform: BatchTransform | None = None,
        shuffle: bool | str = False,
        seed: int = 0,
        num_workers: int = 0,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        on_error: str = "raise",
        even_batches: bool = True,
        prefetch: int | None = None,
        block_size: int = 16384,
        output: str = "auto",
        copy: bool = False,
        slot_bytes: int = 1 << 20,
        timeout: float | None = None,
        start_method: str | None = None,
        columnar_reads: str = "threads",
    ) -> None:
        if isinstance(ds, (str, list, tuple)):
            ds = dataset(ds)
        if not isinstance(ds, Dataset):
            raise ConfigError("Loader needs an m5stream Dataset, a source string or a list")
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ConfigError(f"batch_size must be a positive int, not {batch_size!r}")
        if num_workers < 0:
            raise ConfigError("num_workers must be >= 0")
        if on_error not in ("raise", "skip"):
            raise ConfigError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
        if columnar_reads not in ("threads", "workers"):
            raise ConfigError(
                f"columnar_reads must be 'threads' or 'workers', not {columnar_reads!r}"
            )
        if output not in ("auto", "numpy", "torch"):
            raise ConfigError(f"output must be 'auto', 'numpy' or 'torch', not {output!r}")
        self.dataset = ds
        self.batch_size = batch_size
        self.transform = transform
        self.batch_transform = batch_transform
        self.seed = int(seed)
        self.num_workers = num_workers
        self.drop_last = bool(drop_last)
        self.rank, self.world_size = _resolve_rank(rank, world_size)
        # equal batch counts on every rank (DDP would hang at the end of the epoch otherwise)
        self.even_batches = bool(even_batches) and self.world_size > 1 and not drop_last
        self.on_error = on_error
        if prefetch is None:
            prefetch = 2 * max(1, num_workers)
            # Batches of one decode unit (Parquet row group) go to one worker (see
            # _iter_workers); to keep every worker busy, look ahead far enough to reach the
            # next units: a unit's worth of steps per worker, within a bound on slots.
            unit = ds.unit_rows() if num_workers > 1 else None
            if unit is not None:
                steps = -(-unit // (batch_size * _resolve_rank(rank, world_size)[1]))
                prefetch = min(_MAX_UNIT_PREFETCH, max(prefetch, num_workers * steps + 1))
        self.prefetch = max(1, prefetch)
        self.copy = bool(copy)
        self.slot_bytes = slot_bytes
        self.timeout = timeout
        self.start_method = start_method
        self.order = Order(
            ds.manifest.counts, shuffle=shuffle, seed=self.seed, block_size=block_size
        )
        self.columnar_reads = columnar_reads
        self.global_batch_size = batch_size * self.world_size
        self._torch = self._want_torch(output)
        self._epoch = 0
        self._step = 0
        self._hold = False
        self._gen = 0
        self._skipped: list[list[Any]] = []
        self._skipped_count = 0
        self._stats = Stats()
        self._res = _Resources()
        self._finalizer = weakref.finalize(self, self._res.close)

    # ----------------------------------------------------------------- configuration
    @staticmethod
    def _want_torch(output: str) -> bool:
        if output == "numpy":
            return False
        try:
            import torch  # noqa: F401
        except ImportError:
            if output == "torch":
                raise ConfigError("output='torch' needs torch installed") from None
            return False
        return True

    @property
    def steps_per_epoch(self) -> int:
        """Global steps in one epoch (the same on every rank)."""
        return steps_per_epoch(self.order.num_samples, self.global_batch_size, self.drop_last)

    def __len__(self) -> int:
        """Batches this rank yields in a full epoch."""
        n = self.steps_per_epoch
        rest = self.order.num_samples - (n - 1) * self.global_batch_size if n else 0
        if n and rest < self.global_batch_size and not self.even_batches:
            lo, hi = rank_bounds(rest, self.world_size, self.rank)
            return n if hi > lo else n - 1
        return n

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def step(self) -> int:
        """Global batches of the current epoch delivered so far."""
        return self._step

    def set_epoch(self, epoch: int) -> None:
        if epoch != self._epoch:
            self._epoch = int(epoch)
            self._step = 0
            self._gen += 1
        self._hold = True

    def to(self, device: Any, **kwargs: Any) -> Any:
        """This loader's batches on ``device``: :class:`m5stream.torch.DeviceLoader`."""
        from .device import DeviceLoader

        return DeviceLoader(self, device, **kwargs)

    # ----------------------------------------------------------------- state
    def _expected(self) -> dict[str, Any]:
        m = self.dataset.manifest
        return {
            "fingerprint": m.fingerprint,
            "num_samples": m.num_samples,
            "num_shards": m.num_shards,
            "seed": self.seed,
            "shuffle": self.order.mode,
            "block_size": self.order.block_size,
            "global_batch_size": self.global_batch_size,
            "drop_last": self.drop_last,
            "steps_per_epoch": self.steps_per_epoch,
            "snapshot": m.snapshot(),
        }

    def state_dict(self) -> dict[str, Any]:
        """Small JSON-serialisable position: resume continues after the last delivered batch."""
        exp = self._expected()
        del exp["steps_per_epoch"]
        return {
            "version": STATE_VERSION,
            **exp,
            "epoch": self._epoch,
            "step": self._step,
            "skipped": [list(r) for r in self._skipped],
            "skipped_count": self._skipped_count,
        }

    def load_state_dict(self, state: dict[str, Any], *, on_change: str = "error") -> None:
        """Continue after the position ``state`` records.

        The dataset must be the one the state was saved on (same fingerprint), else
        :class:`StateMismatch` says what changed. ``on_change="new_epoch"`` accepts changed
        data on purpose (e.g. a Glue table that gained partitions, re-resolved): the order on
        the new data starts at step 0 of the epoch after the saved one (or of the saved epoch
        when no batch of it had been delivered).
        """
        if on_change not in ("error", "new_epoch"):
            raise ConfigError(f'on_change must be "error" or "new_epoch", not {on_change!r}')
        changed = check_state(state, self._expected(), allow_changed_data=on_change == "new_epoch")
        self._gen += 1  # abandon any iteration in progress
        self._epoch = int(state["epoch"])
        self._step = int(state["step"])
        if changed:
            if self._step > 0:
                self._epoch += 1
            self._step = 0
            log.warning(
                "resuming on changed data (%s -> %s): starting epoch %d at step 0",
                state["fingerprint"][:12],
                self.dataset.fingerprint[:12],
                self._epoch,
            )
        self._hold = False
        self._skipped = [list(r) for r in state.get("skipped", [])]
        self._skipped_count = int(state.get("skipped_count", len(self._skipped)))

    @property
    def stats(self) -> dict[str, Any]:
        snap = self._stats.snapshot()
        snap["skipped_samples"] = [list(r) for r in self._skipped[-20:]]
        return snap

    # ----------------------------------------------------------------- iteration
    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._step >= self.steps_per_epoch:
            if self._hold:
                self._hold = False
                return iter(())
            self._epoch += 1
            self._step = 0
        self._hold = False
        self._gen += 1
        if self.blockwise:
            return self._iter_blocks(self._gen)
        if self.num_workers == 0:
            return self._iter_inline(self._gen)
        return self._iter_workers(self._gen)

    @property
    def blockwise(self) -> bool:
        """Batches are sliced in this process out of units that ``num_workers`` threads
        decode ahead (``m5stream.workers.blocks``): a column-wise source, tar shards or raw
        objects, no per-sample or batch transform, an order whose batches read few units
        (natural or block shuffle), and ``columnar_reads="threads"``."""
        return (
            self.columnar_reads == "threads"
            and self.transform is None
            and self.batch_transform is None
            and self.dataset.format.block_reads
            and self.order.mode in ("none", "block")
        )

    def _batching(self) -> dict[str, Any]:
        """How global steps are cut into this rank's batches (``sampling`` keywords)."""
        return {
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "rank": self.rank,
            "even": self.even_batches,
        }

    def _indices(self, step: int) -> np.ndarray:
        return batch_indices(self.order, self._epoch, step, **self._batching())

    def _block_threads(self) -> int:
        """Decode threads of the block path: ``num_workers`` for row groups and whole shards.
        A raw object's unit is the body its GET delivered, wrapped as a one-sample block: it
        is made in the trainer's thread when a batch needs it, since a hand-off to a decode
        thread (a queued call, a future, a wake-up) cost more than the wrapping itself -
        measured over 64 KiB and 100 KB objects, 12-14% of the Loader's CPU."""
        fmt = self.dataset.format
        return self.num_workers if fmt.columnar or fmt.shard_units else 0

    def _block_depth(self) -> int:
        """Units the block path keeps fetched or decoded ahead. Fetches start when a unit is
        planned: with twice as many row groups ahead as threads, a thread that finishes a
        decode finds the next one's bytes arrived. A one-sample unit (a raw object) is
        latency-bound: keep many in flight - as many as fit in a byte budget by the mean
        object size, at least a batch, at most ``_MAX_OBJECTS_AHEAD``. Whole-shard units (tar
        shards, downloaded into memory) keep as many downloads running as ``storage.blobs``
        runs at once, fewer when that many shards would pass ``_SHARD_BYTES_AHEAD``."""
        if self.dataset.format.columnar:
            return 2 * self.num_workers + 2
        sizes = self.dataset.manifest.sizes
        mean = max(1, int(sizes.mean())) if len(sizes) else 1
        if self.dataset.format.shard_units:
            return max(1, min(_SHARDS_AHEAD, _SHARD_BYTES_AHEAD // mean))
        return min(_MAX_OBJECTS_AHEAD, max(self.batch_size, _OBJECT_BYTES_AHEAD // mean))

    def _run(self, step: int) -> tuple[int, int] | None:
        return batch_run(self.order, step, **self._batching())

    def _record(
        self,
        epoch: int,
        skipped: list[list[Any]],
        seconds: dict[str, float],
        n: int,
        io: dict[str, int] | None = None,
    ) -> None:
        self._stats.add_seconds(seconds)
        if io:
            self._stats.add_io(io)
        self._stats.batches += 1
        self._stats.samples += n
        for idx, key, err in skipped:
            log.warning("skipped sample %r (index %d, epoch %d): %s", key, idx, epoch, err)
            self._skipped.append([epoch, idx, key, err])
            self._skipped_count += 1
            self._stats.skipped += 1
        if len(self._skipped) > _MAX_SKIP_RECORDS:
            del self._skipped[: len(self._skipped) - _MAX_SKIP_RECORDS]

    def _finish(self, batch: dict[str, Any]) -> dict[str, Any]:
        if self._torch:
            import torch

            return {
                k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()
            }
        return batch

    def _iter_inline(self, gen: int) -> Iterator[dict[str, Any]]:
        epoch = self._epoch
        while self._gen == gen and self._step < self.steps_per_epoch:
            step = self._step
            idx = self._indices(step)
            res = load_samples(
                self.dataset,
                self.transform,
                idx,
                seed=self.seed,
                epoch=epoch,
                on_error=self.on_error,
                columnar=self.batch_transform is None,
            )
            if res.error is not None:
                raise res.error.to_exception(None)
            t0 = time.perf_counter()
            n = len(res.samples)
            if res.columns is not None:
                batch = finish_columns(res.columns)
                n = len(batch["__key__"])
            elif not res.samples:
                batch = None
            elif self.batch_transform is not None:
                batch = self.batch_transform(res.samples)
            else:
                batch = assemble_numpy(res.samples)
            res.seconds["assemble"] = time.perf_counter() - t0
            self._record(epoch, res.skipped, res.seconds, n, res.io)
            self._step = step + 1
            if batch is not None:
                yield self._finish(batch)

    # -- block path
    def _iter_blocks(self, gen: int) -> Iterator[dict[str, Any]]:
        epoch = self._epoch
        clock = time.perf_counter
        ahead = BlockReadAhead(
            self.dataset,
            self._indices,
            self._step,
            self.steps_per_epoch,
            threads=self._block_threads(),
            depth=self._block_depth(),
            runs=self._run,
        )
        if self._res.blocks is not None:
            self._res.blocks.close()  # an abandoned iteration's threads
        self._res.blocks = ahead
        io0, io_mark = io_counters(), io_changes()
        with ahead:
            while self._gen == gen and self._step < self.steps_per_epoch:
                step = self._step
                t0 = clock()
                # S3 requests start in this thread as units are planned (Stats.add_io sums)
                n0 = io_changes()
                if n0 != io_mark:
                    io0, io_mark = io_counters(), n0
                plan, blocks = ahead.take(step)
                t1 = clock()
                seconds = {"wait": t1 - t0}
                batch: dict[str, Any] | None = None
                io = io_delta(io0) if io_changes() != io_mark else None
                skipped: list[list[Any]] = []
                if not isinstance(blocks, BaseException) and len(plan):
                    seconds["read"], block_io = ahead.first_reads(blocks)
                    self._stats.add_io(block_io)
                    try:
                        if plan.segments is not None:
                            cols = self.dataset.read_segments(
                                plan.index_run, plan.segments, _getter(blocks)
                            )
                        else:
                            assert plan.shards is not None and plan.locals_ is not None
                            cols = self.dataset.read_columns(
                                plan.indices,
                                plan.shards,
                                plan.locals_,
                                blocks=_getter(blocks),
                                units=plan.units,
                            )
                        batch = finish_columns(cols) if cols is not None else None
                    except Exception:
                        batch = None  # the row path below finds the failing sample
                    seconds["assemble"] = clock() - t1
                if batch is None and len(plan):
                    # a unit failed to decode (or the batch to slice): read the batch row by
                    # row, which raises or skips exactly as the other paths do
                    res = load_samples(
                        self.dataset,
                        None,
                        plan.indices,
                        seed=self.seed,
                        epoch=epoch,
                        on_error=self.on_error,
                    )
                    if res.error is not None:
                        raise res.error.to_exception(None)
                    skipped = res.skipped
                    self._stats.add_io(res.io)
                    seconds.update(res.seconds)
                    batch = assemble_numpy(res.samples) if res.samples else None
                n = len(batch["__index__"]) if batch is not None else 0
                self._record(epoch, skipped, seconds, n, io)
                self._step = step + 1
                ahead.done(step)
                if batch is not None:
                    yield self._finish(batch)

    # -- worker path
    def _ensure_pool(self) -> tuple[WorkerPool, RingManager]:
        res = self._res
        if res.pool is None:
            res.pool = WorkerPool(
                self.num_workers,
                self.dataset,
                self.transform,
                self.batch_transform,
                seed=self.seed,
                on_error=self.on_error,
                start_method=self.start_method,
            )
            pool = res.pool
            res.rings = RingManager(self.prefetch + 2, self.slot_bytes, pool.send_ring)
        assert res.pool is not None and res.rings is not None
        return res.pool, res.rings

    @property
    def worker_pids(self) -> list[int]:
        """PIDs of the running worker processes (empty before the first batch)."""
        return self._res.pool.pids if self._res.pool is not None else []

    def _pick_worker(
        self, pool: WorkerPool, affinity: OrderedDict[tuple[int, int], int], idx: np.ndarray
    ) -> int:
        """The least loaded worker, except that batches starting in the same decode unit (a
        Parquet row group) as an earlier one go to that one's worker: the unit is then fetched
        and decoded once, not once per worker."""
        unit = self.dataset.locality(int(idx[0])) if self.num_workers > 1 else None
        if unit is None:
            return pool.least_loaded()
        w = affinity.get(unit)
        if w is None:
            w = affinity[unit] = pool.least_loaded()
            if len(affinity) > 64:
                affinity.popitem(last=False)
        return w

    def _iter_workers(self, gen: int) -> Iterator[dict[str, Any]]:
        pool, rings = self._ensure_pool()
        epoch = self._epoch
        n_steps = self.steps_per_epoch
        dispatch = self._step
        ready: dict[int, tuple[int, Any] | None] = {}
        affinity: OrderedDict[tuple[int, int], int] = OrderedDict()
        prefetcher = None
        if ShardPrefetcher.wanted(self.dataset):
            prefetcher = ShardPrefetcher(
                self.dataset,
                self._indices,
                self._step,
                n_steps,
                lambda: self._step,
                lookahead=self.prefetch + 8,
            ).start()
        try:
            while self._gen == gen and self._step < n_steps:
                # keep `prefetch` batches in flight, as slots allow
                while dispatch < n_steps and dispatch - self._step < self.prefetch:
                    idx = self._indices(dispatch)
                    if len(idx) == 0:
                        ready[dispatch] = None
                        dispatch += 1
                        continue
                    w = self._pick_worker(pool, affinity, idx)
                    sent = compact_indices(idx)
                    nbytes = 256 + (sent.nbytes if isinstance(sent, np.ndarray) else 0)
                    if not pool.can_take(w, nbytes):
                        break  # its pipe is full enough: wait for its replies first
                    got = rings.acquire()
                    if got is None:
                        break
                    pool.submit(w, (Cmd.TASK, gen, dispatch, got[0], got[1], epoch, sent), nbytes)
                    dispatch += 1
                step = self._step
                if step not in ready:
                    if sum(pool.inflight) == 0:
                        raise SlotsExhausted(
                            f"all {rings.num_slots} shared-memory slots are held by batches "
                            "that are still referenced; drop old batches or use copy=True"
                        )
                    t0 = time.perf_counter()
                    replies = pool.wait(self.timeout)
                    self._stats.seconds["wait"] += time.perf_counter() - t0
                    if not replies:
                        raise M5Error(
                            f"no batch arrived within timeout={self.timeout}s", index=None
                        )
                    for wid, msg in replies:
                        if msg[1] != gen:
                            rings.release(msg[3], msg[4])  # reply to an abandoned iteration
                        else:
                            ready[msg[2]] = (wid, msg)
                    continue
                item = ready.pop(step)
                batch = None if item is None else self._deliver(epoch, *item)
                self._step = step + 1
                if batch is not None:
                    yield batch
        except WorkerDied:
            self._stats.worker_restarts += 1
            self._res.close(timeout=0.1)  # the survivors' work is lost anyway
            raise
        finally:
            if prefetcher is not None:
                prefetcher.stop()
                self._stats.prefetched_shards += prefetcher.fetched
                self._stats.add_io(prefetcher.io)
            # batches that arrived but were never delivered (the caller stopped early, or an
            # error was raised): give their slots back
            for item in ready.values():
                if item is not None and self._res.rings is not None:
                    rings.release(item[1][3], item[1][4])

    def _deliver(self, epoch: int, wid: int, msg: tuple[Any, ...]) -> dict[str, Any] | None:
        t0 = time.perf_counter()
        rings = self._res.rings
        assert rings is not None
        if msg[0] == Reply.ERROR:
            rings.release(msg[3], msg[4])
            raise msg[5].to_exception(wid)
        _, _gen, _step, ring_id, slot, layout, meta = msg
        in_slot = any(e[0] in ("array", "bytes", "text") for e in layout)
        if any(e[0] == "inline" for e in layout):
            self._stats.inline_batches += 1
        if meta["needed"] > rings.slot_bytes:
            rings.grow(meta["needed"])
            self._stats.ring_grows = rings.grows
        if in_slot and not self.copy:
            batch = read_batch(layout, rings.lease(ring_id, slot), copy=False)
        else:
            batch = read_batch(layout, rings.slot(ring_id, slot) if in_slot else None, copy=True)
            rings.release(ring_id, slot)
        n = len(batch["__key__"])
        self._stats.seconds["deliver"] += time.perf_counter() - t0
        self._record(epoch, meta["skipped"], meta["seconds"], n, meta.get("io"))
        return self._finish(batch) if n else None

    # ----------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Stop the workers and release shared memory (idempotent)."""
        self._gen += 1
        self._res.close()
        self.dataset.close()

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Loader(batch_size={self.batch_size}, num_workers={self.num_workers}, "
            f"rank={self.rank}/{self.world_size}, epoch={self._epoch}, step={self._step}, "
            f"shuffle={self.order.mode!r})"
        )
