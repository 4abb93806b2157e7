"""``m5stream.Loader``: the deterministic, seekable batch iterator (the user-facing façade).

A Loader validates its options once into a :class:`~m5stream.config.LoaderConfig`, makes a
:class:`~m5stream.plan.Plan` per epoch, and lets one executor (:mod:`m5stream.execution`,
chosen once from the config and the format's capabilities) deliver the plan's batches. It
owns the position, the checkpoint state, the skip records and the counters; see
``docs/ARCHITECTURE.md`` for the layers and README "Determinism contract" for the rules.

Epochs: ``set_epoch(e)`` selects epoch ``e`` (keeping the position if ``e`` is the current
epoch, so a resumed loop that calls ``set_epoch`` again continues). Iterating runs the rest of
the current epoch. Iterating again after an epoch completed moves to the next epoch, unless
``set_epoch`` was called since, in which case that completed epoch yields nothing.

Batches: a dict of fixed-shape fields stacked into arrays, variable-length fields as lists,
``__index__`` (int64 global sample ids) and ``__key__`` (list of str, or an equal
:class:`m5stream.Keys` sequence). With ``copy=False`` (the default) arrays from worker
processes are zero-copy views of a shared-memory slot, reused only once every view of that
batch is gone; keep a batch beyond the next few iterations only with ``copy=True``.
``output="torch"`` returns tensors made with ``torch.from_numpy`` (zero-copy).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

from .config import LoaderConfig, ReadAheadBudget
from .dataset import Dataset
from .errors import ConfigError
from .execution import ExecContext, Executor, StepOutput, choose_executor, make_executor
from .mixing import Mixture
from .plan import MixtureOrder, MixtureSchedule, Plan, make_order, mixture_order
from .records import Recorder, open_recorder
from .sampling import Order
from .source import dataset
from .state import STATE_VERSION, check_mixture_state, check_state
from .stats import Stats
from .transforms import TransformFn
from .workers.task import BatchTransform

__all__ = ["Loader"]

log = logging.getLogger("m5stream")
_MAX_SKIP_RECORDS = 1000


def _want_torch(output: str) -> bool:
    if output == "numpy":
        return False
    try:
        import torch  # noqa: F401 - optional dependency, imported only to see it is there
    except ImportError:
        if output == "torch":
            raise ConfigError("output='torch' needs torch installed") from None
        return False
    return True


class Loader:
    """Deterministic batches of a dataset (see module docstring).

    ``Loader(ds, batch_size, *, transform=None, batch_transform=None, **options)`` where the
    options are the fields of :class:`~m5stream.config.LoaderConfig`: ``shuffle`` (False,
    True/"global", "block"), ``seed``, ``num_workers``, ``drop_last``, ``rank`` and
    ``world_size`` (default: ``torch.distributed``, then ``RANK``/``WORLD_SIZE``),
    ``on_error`` ("raise" or "skip"), ``even_batches``, ``prefetch``, ``block_size``,
    ``output``, ``copy``, ``slot_bytes``, ``timeout``, ``start_method``, ``columnar_reads``
    ``executor`` ("auto", "inline", "threads", "processes") and ``max_worker_restarts``
    (dead worker processes replaced per epoch, their batches recomputed; 0: a dead worker is
    a :class:`WorkerDied` at once), ``inline_start`` (the first batches made in this process
    while the workers start; default: unless ``max_worker_restarts``). ``config=`` passes a
    ready :class:`LoaderConfig` instead.
    """

    def __init__(
        self,
        ds: Dataset | str | list[str] | tuple[str, ...],
        batch_size: int | None = None,
        *,
        transform: TransformFn | None = None,
        batch_transform: BatchTransform | None = None,
        config: LoaderConfig | None = None,
        **options: Any,
    ) -> None:
        if isinstance(ds, (str, list, tuple)):
            ds = dataset(ds)
        if not isinstance(ds, Dataset):
            raise ConfigError("Loader needs an m5stream Dataset, a source string or a list")
        if config is None:
            if batch_size is None:
                raise ConfigError("Loader needs a batch_size")
            config = LoaderConfig.build(batch_size, **options)
        elif options or (batch_size is not None and batch_size != config.batch_size):
            raise ConfigError("pass either config= or the options, not both")
        self.config = c = config
        self.dataset = ds
        self.transform = transform
        self.batch_transform = batch_transform
        self.order: Order | MixtureOrder
        if isinstance(ds, Mixture):
            # each source's own transform where it has one: what the executors run
            transform = ds.transforms(transform)
            ds.check_fields(transform, seed=c.seed)
            ds.close()  # the probe's readers: workers open their own
        self.order = make_order(c, ds if isinstance(ds, Mixture) else ds.manifest.counts)
        self._torch = _want_torch(c.output)
        self.read_ahead = ReadAheadBudget.choose(
            ds.caps,
            ds.manifest.sizes,
            batch_size=c.batch_size,
            global_batch_size=c.global_batch_size,
            num_workers=c.num_workers,
            prefetch=c.prefetch,
            unit_rows=ds.unit_rows() if c.num_workers > 1 else None,
        )
        #: which executor delivers the batches: "inline", "threads" or "processes"
        self.executor_kind = choose_executor(
            c,
            ds.caps,
            has_transform=transform is not None,
            has_batch_transform=batch_transform is not None,
        )
        self._stats = Stats()
        self._executor: Executor = make_executor(
            self.executor_kind,
            ExecContext(ds, c, transform, batch_transform, self.read_ahead, self._stats),
        )
        self._finalizer = weakref.finalize(self, self._executor.close)
        self._executor.warm()  # worker processes start now, while the caller goes on
        # run records and live metrics (m5stream.records): None unless record= / metrics_port=
        self._recorder: Recorder | None = open_recorder(self, self._stats, self._executor)
        self._epoch = 0
        self._step = 0
        self._hold = False
        self._gen = 0
        self._skipped: list[list[Any]] = []
        self._skipped_count = 0

    # ----------------------------------------------------------------- configuration
    @property
    def batch_size(self) -> int:
        return self.config.batch_size

    @property
    def rank(self) -> int:
        return self.config.rank

    @property
    def world_size(self) -> int:
        return self.config.world_size

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def num_workers(self) -> int:
        return self.config.num_workers

    @property
    def global_batch_size(self) -> int:
        return self.config.global_batch_size

    def plan(self, epoch: int | None = None) -> Plan:
        """This rank's plan of ``epoch`` (default: the current one)."""
        return Plan(self.config, self.order, self._epoch if epoch is None else epoch)

    @property
    def steps_per_epoch(self) -> int:
        """Global steps in one epoch (the same on every rank)."""
        return self.plan().steps

    def __len__(self) -> int:
        """Batches this rank yields in a full epoch."""
        return self.plan().rank_batches()

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
        # lazy: device imports torch, which a Loader must not need
        from .device import DeviceLoader

        return DeviceLoader(self, device, **kwargs)

    # ----------------------------------------------------------------- state
    def _expected(self) -> dict[str, Any]:
        m = self.dataset.manifest
        c = self.config
        mixture = {}
        if isinstance(self.order, MixtureOrder):
            mixture["mixture"] = {
                "schedule": self.order.schedule.to_state(),
                "sources": self.dataset.source_fingerprints(),  # type: ignore[attr-defined]
                "epoch_samples": self.dataset.epoch_samples,  # type: ignore[attr-defined]
            }
        return {
            **mixture,
            "fingerprint": m.fingerprint,
            "num_samples": m.num_samples,
            "num_shards": m.num_shards,
            "seed": c.seed,
            "shuffle": self.order.mode,
            "block_size": self.order.block_size,
            "global_batch_size": c.global_batch_size,
            "drop_last": c.drop_last,
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

    def load_state_dict(
        self,
        state: dict[str, Any],
        *,
        on_change: str = "error",
        weights: dict[str, float] | None = None,
    ) -> None:
        """Continue after the position ``state`` records.

        The dataset must be the one the state was saved on (same fingerprint), else
        :class:`StateMismatch` says what changed. ``on_change="new_epoch"`` accepts changed
        data on purpose (e.g. a Glue table that gained partitions, re-resolved): the order on
        the new data starts at step 0 of the epoch after the saved one (or of the saved epoch
        when no batch of it had been delivered).

        A mixture resumes on the saved weight schedule (whatever the weights it was built
        with). ``weights=`` re-weights from the saved step on (a new segment).
        ``on_change="reweight"`` also lets the sources differ from the saved ones: an added
        source is drawn from the saved step on (by ``weights``, else the mixture's weights),
        a removed one is no longer drawn. A source whose data changed is a
        :class:`StateMismatch` naming it.
        """
        if on_change not in ("error", "new_epoch", "reweight"):
            raise ConfigError(
                f'on_change must be "error", "new_epoch" or "reweight", not {on_change!r}'
            )
        expected = self._expected()
        if isinstance(self.order, MixtureOrder):
            if on_change == "new_epoch":
                raise ConfigError(
                    'on_change="new_epoch" does not apply to a mixture: a source whose data '
                    'changed is a new source (on_change="reweight" with a new name)'
                )
            self._resume_mixture(state, expected, weights, on_change == "reweight")
        elif weights is not None or on_change == "reweight":
            raise ConfigError("weights= and on_change='reweight' apply to mixtures (m5.mix)")
        changed = check_state(state, expected, allow_changed_data=on_change == "new_epoch")
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
        self._executor.remember_skips(self._skipped)

    def _resume_mixture(
        self,
        state: dict[str, Any],
        expected: dict[str, Any],
        weights: dict[str, float] | None,
        allow_sources: bool,
    ) -> None:
        """Check a mixture state against this loader and take its weight schedule (plus a
        re-weighting segment); ``expected`` is then what :func:`check_state` compares."""
        mix = self.dataset
        assert isinstance(mix, Mixture) and isinstance(self.order, MixtureOrder)
        saved = check_mixture_state(state, expected["mixture"], allow_sources=allow_sources)
        schedule = MixtureSchedule.from_state(saved["schedule"])
        # the mixture's own checks (unknown names, negative or all-zero weights)
        if weights is not None:
            weights = mix.checked_weights(weights)
        added = [n for n in mix.names if n not in schedule.ids]
        removed = [n for n in schedule.sources if n not in mix.names]
        reweight = None
        step = int(state["step"])
        at = int(state["epoch"]) * self.order.epoch_steps + step
        if weights is not None or added or removed:
            w = weights if weights is not None else mix.weights
            reweight = (at, {n: v for n, v in w.items() if n in mix.names})
            log.info("mixture re-weighted from global step %d: %s", at, reweight[1])
        self.order = mixture_order(self.config, mix, schedule, reweight)
        # what was saved is what is now expected, once its sources check out
        expected["fingerprint"] = state["fingerprint"]
        expected["snapshot"] = state.get("snapshot")

    @property
    def stats(self) -> dict[str, Any]:
        snap = self._stats.snapshot()
        snap["executor"] = self.executor_kind
        if isinstance(self.order, MixtureOrder):
            sch = self.order.schedule
            weights = sch.weights(self._epoch * self.order.epoch_steps + self._step)
            seen = snap.get("sources", {})
            zero = {"samples": 0, "bytes": 0, "read_s": 0.0, "transform_s": 0.0, "share": 0.0}
            # every source of the schedule, in its order (one not drawn yet shows zeros)
            snap["sources"] = {n: {**seen.get(n, zero), "weight": weights[n]} for n in sch.sources}
        snap["skipped_samples"] = [list(r) for r in self._skipped[-20:]]
        return snap

    @property
    def worker_pids(self) -> list[int]:
        """PIDs of the worker processes (waits for their start, which begins when the Loader
        is made; empty for the inline and threads executors)."""
        return list(getattr(self._executor, "pids", []))

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
        return self._iterate(self._gen)

    def _iterate(self, gen: int) -> Iterator[dict[str, Any]]:
        plan = self.plan()
        ex = self._executor
        ex.start(plan, self._step)
        try:
            while self._gen == gen and self._step < plan.steps:
                out = ex.next()
                self._record(plan.epoch, out)
                self._step = out.step + 1
                if out.batch is not None:
                    yield self._finish(out.batch)
        finally:
            if ex.plan is plan:  # not when a newer iteration has started the executor again
                ex.stop()

    def _record(self, epoch: int, out: StepOutput) -> None:
        stats = self._stats
        stats.add_seconds(out.seconds)
        if out.io:
            stats.add_io(out.io)  # S3 counters, and a mixture's per-source ones
        stats.batches += 1
        stats.samples += out.samples
        for idx, key, err in out.skipped:
            log.warning("skipped sample %r (index %d, epoch %d): %s", key, idx, epoch, err)
            self._skipped.append([epoch, idx, key, err])
            self._skipped_count += 1
            stats.skipped += 1
        if len(self._skipped) > _MAX_SKIP_RECORDS:
            del self._skipped[: len(self._skipped) - _MAX_SKIP_RECORDS]
        if self._recorder is not None:
            self._recorder.step(out)

    def _finish(self, batch: dict[str, Any]) -> dict[str, Any]:
        if self._torch:
            import torch  # lazy: present (checked at construction), needed only here

            return {
                k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()
            }
        return batch

    # ----------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Stop the workers and release shared memory (idempotent)."""
        self._gen += 1
        self._executor.close()
        self.dataset.close()
        if self._recorder is not None:
            self._recorder.close()

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        c = self.config
        return (
            f"Loader(batch_size={c.batch_size}, num_workers={c.num_workers}, "
            f"rank={c.rank}/{c.world_size}, epoch={self._epoch}, step={self._step}, "
            f"shuffle={self.order.mode!r}, executor={self.executor_kind!r})"
        )
