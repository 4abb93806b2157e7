"""The recorder of one loader: run rows in a database and live metrics, off the training loop.

Contract:

* The loop's only cost is :meth:`Recorder.step`, called once per step by the Loader: it adds
  the batch's payload bytes and, for a mixture, its per-source counts to a few plain
  counters (no lock, no queue, no I/O, no allocation beyond a mixture's counts).
* One daemon thread (``m5stream-recorder``) wakes every ``record_interval`` seconds, takes a
  snapshot of those counters and of the loader's :class:`~m5stream.stats.Stats`, and turns the
  difference to the previous snapshot into an interval row (none while no step ended: the
  next row then spans the whole time).
  Counters are cumulative, so a late snapshot only makes its interval longer: nothing is
  lost by a slow thread, and the run's totals are exact at close.
* The same thread writes: it connects (and migrates) lazily, writes the run's first row, the
  pending interval rows and the run's totals in one transaction per interval. Pending rows
  are a bounded queue (:data:`MAX_PENDING`, the oldest dropped and counted in
  ``intervals_dropped``). A database that is down, refuses, or hangs costs the record, never
  the step: the first error is logged once (``m5stream.records``, ERROR, password hidden),
  later attempts back off (up to :data:`MAX_BACKOFF` s) and stay silent; a recovery is
  logged at INFO.
* :meth:`Recorder.close` (the Loader's ``close()``, or its finaliser) takes the last snapshot,
  marks the run ``finished`` and waits at most :data:`CLOSE_TIMEOUT` seconds for the last
  write (not at all while the database is failing); the thread never keeps the process alive.
* Live metrics (:mod:`.metrics`) are read from the same snapshots at scrape time: a scrape
  costs the loop nothing.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..stats import Stats
from .attribution import bottleneck, input_bound, stages
from .urls import redact, resolve_url

__all__ = [
    "CLOSE_TIMEOUT",
    "MAX_PENDING",
    "Recorder",
    "Snapshot",
    "open_recorder",
    "recorder_of",
]

log = logging.getLogger("m5stream.records")

#: interval rows kept while the database cannot be written; the oldest are dropped beyond
MAX_PENDING = 1000
#: seconds between attempts while the database fails (doubling up to this)
MAX_BACKOFF = 60.0
#: seconds close() waits for the last write of a healthy database
CLOSE_TIMEOUT = 3.0
#: environment variables naming the job a rank belongs to (first set wins)
JOB_VARIABLES = ("M5STREAM_JOB", "TORCHELASTIC_RUN_ID", "SLURM_JOB_ID")
_SKIP_FIELDS = ("__index__", "__key__", "__source__")
_STAGE_COLUMNS = {s: f"{s}_s" for s in Stats.STAGES}
#: the stages each executor runs in the trainer's own thread: the time ``next(loader)`` takes,
#: which is what the trainer waits for (the inline executor does everything there)
TRAINER_STAGES = {
    "inline": Stats.STAGES,
    "threads": ("wait", "assemble", "deliver"),
    "processes": ("wait", "deliver"),
}


def _payload_bytes(batch: Mapping[str, Any]) -> int:
    """Bytes of a batch's fields: arrays by ``nbytes``, lists of bytes/str by length."""
    n = 0
    for k, v in batch.items():
        if k in _SKIP_FIELDS:
            continue
        nb = getattr(v, "nbytes", None)
        if nb is not None:
            n += nb
        elif isinstance(v, list) and v and isinstance(v[0], (bytes, str)):
            n += sum(map(len, v))
    return int(n)


@dataclass
class Snapshot:
    """Cumulative counters at one moment (``t``: ``time.perf_counter()``)."""

    t: float
    batches: int = 0
    samples: int = 0
    bytes: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    s3_requests: int = 0
    s3_retries: int = 0
    s3_bytes: int = 0
    skipped: int = 0
    worker_restarts: int = 0
    sources: dict[str, int] = field(default_factory=dict)

    def counters(
        self, since: Snapshot, workers: int, trainer: tuple[str, ...] = ("wait",)
    ) -> dict[str, Any]:
        """The row columns for ``since`` .. ``self`` (rates over its wall time); ``trainer``:
        the stages that ran in the trainer's thread (its waiting time)."""
        wall = self.t - since.t
        secs = {k: self.seconds.get(k, 0.0) - since.seconds.get(k, 0.0) for k in Stats.STAGES}
        samples = self.samples - since.samples
        nbytes = self.bytes - since.bytes
        waited = sum(secs[k] for k in trainer)
        st = stages(secs)
        st["trainer_wait"] = waited
        b = bottleneck(st, wall, workers)
        return {
            "batches": self.batches - since.batches,
            "samples": samples,
            "bytes": nbytes,
            "samples_per_s": samples / wall if wall > 0 else 0.0,
            "bytes_per_s": nbytes / wall if wall > 0 else 0.0,
            **{_STAGE_COLUMNS[k]: v for k, v in secs.items()},
            "input_bound": input_bound(waited, wall),
            "s3_requests": self.s3_requests - since.s3_requests,
            "s3_retries": self.s3_retries - since.s3_retries,
            "s3_bytes": self.s3_bytes - since.s3_bytes,
            "skipped": self.skipped - since.skipped,
            "worker_restarts": self.worker_restarts - since.worker_restarts,
            "bottleneck": b["stage"],
            "_reason": b["reason"],
        }


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (numpy scalars and mappings included)."""
    return json.loads(
        json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    )


class Recorder:
    """Records one run (see module docstring). Built by :func:`open_recorder`."""

    def __init__(
        self,
        start: dict[str, Any],
        stats: Stats,
        *,
        url: str | None,
        metrics: tuple[str, int] | None = None,
        interval: float = 10.0,
        queue_depth: Callable[[], int] | None = None,
        weights: Callable[[], Any] | None = None,
        source_label: str = "",
    ) -> None:
        self.run_id: str = start["run_id"]
        self.url = url
        self.interval = float(interval)
        self.source_label = source_label
        self._start = {k: v for k, v in start.items() if k != "run_id"}
        self._stats = stats
        self._queue_depth = queue_depth
        self._weights = weights
        self._workers = int(start.get("num_workers") or 0)
        self._trainer = TRAINER_STAGES.get(str(start.get("executor")), ("wait",))
        self._pid = os.getpid()
        # --- written by the loop (step), read by the thread -----------------------------------
        self.bytes = 0
        self.sources: dict[str, int] = {}
        self._t_first: float | None = None  # when iteration began (first step minus its wait)
        self._t_last: float | None = None
        # --- the thread's ---------------------------------------------------------------------
        self._prev: Snapshot | None = None
        self._seq = 0
        self._pending: collections.deque[tuple[dict[str, Any], list[dict[str, Any]]]] = (
            collections.deque()
        )
        self.dropped = 0
        self.last_input_bound = 0.0
        self._annotations: dict[str, Any] = {}
        self._store: Any = None
        self._started = False
        self._failing = False
        self._retry_at = 0.0
        self._backoff = 1.0
        self.errors = 0
        self._lock = threading.Lock()  # the thread's state, against close() and scrapes
        self._stop = threading.Event()
        self._closed = False
        self.finished = threading.Event()  # the last write is done (or given up)
        self._metrics: Any = None
        self.metrics_address: tuple[str, int] | None = None
        if metrics is not None:
            try:
                from .metrics import serve  # lazy: prometheus-client is needed only for metrics
            except ImportError:
                raise ConfigError(
                    "metrics_port= needs prometheus-client: pip install 'm5stream[records]'"
                ) from None
            try:
                self._metrics = serve(self, *metrics)
                self.metrics_address = self._metrics.address
            except OSError as exc:  # e.g. the port is taken (two ranks on one host, one port)
                log.error(
                    "m5stream metrics: cannot serve on %s:%d (%s); training goes on without "
                    "this loader's metrics (give each rank its own port)",
                    metrics[0],
                    metrics[1],
                    exc,
                )
        self._thread = threading.Thread(target=self._run, name="m5stream-recorder", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the loop's side
    def step(self, out: Any) -> None:
        """Count one step's output (a :class:`~m5stream.execution.StepOutput`)."""
        now = time.perf_counter()
        if self._t_first is None:  # iteration began when the trainer started waiting
            secs = self._stats.seconds
            self._t_first = now - sum(secs.get(k, 0.0) for k in self._trainer)
        self._t_last = now
        batch = out.batch
        if batch is None:
            return
        self.bytes += _payload_bytes(batch)
        src = batch.get("__source__")
        if src is not None:
            counts = self.sources
            if isinstance(src, np.ndarray):
                names, n = np.unique(src, return_counts=True)
                for name, c in zip(names.tolist(), n.tolist()):
                    counts[str(name)] = counts.get(str(name), 0) + c
            else:
                for name in src:
                    counts[name] = counts.get(name, 0) + 1

    # ------------------------------------------------------------------ snapshots
    def snapshot(self, t: float | None = None) -> Snapshot:
        """The cumulative counters now."""
        st = self._stats
        s3 = dict(st.s3)
        retries = s3.pop("retries", 0)
        s3_bytes = s3.pop("bytes", 0)
        return Snapshot(
            t=time.perf_counter() if t is None else t,
            batches=st.batches,
            samples=st.samples,
            bytes=self.bytes,
            seconds=dict(st.seconds),
            s3_requests=sum(s3.values()),
            s3_retries=retries,
            s3_bytes=s3_bytes,
            skipped=st.skipped,
            worker_restarts=st.worker_restarts,
            sources=dict(self.sources),
        )

    def queue_depth(self) -> int:
        if self._queue_depth is None:
            return 0
        try:
            return int(self._queue_depth())
        except Exception:
            return 0

    def _sample(self) -> None:
        """Append the interval since the previous snapshot to the pending rows."""
        if self._t_first is None:
            return  # iteration has not begun
        last = self._t_last if self._stop.is_set() and self._t_last is not None else None
        cur = self.snapshot(t=last)
        prev = self._prev or Snapshot(t=self._t_first)
        if cur.batches == prev.batches and cur.skipped == prev.skipped:
            # no step ended: no row, and the span stays open (a trainer blocked on its next
            # batch is counted, wait seconds and all, in the row of the step that ends it)
            return
        row = cur.counters(prev, self._workers, self._trainer)
        self.last_input_bound = row["input_bound"]
        del row["_reason"]
        seq = self._seq
        self._seq += 1
        row.update(
            seq=seq,
            at=_utcnow(),
            t_start=prev.t - self._t_first,
            t_end=cur.t - self._t_first,
            queue_depth=self.queue_depth(),
        )
        srcs = [
            {"seq": seq, "source": name, "samples": n - prev.sources.get(name, 0)}
            for name, n in sorted(cur.sources.items())
            if n != prev.sources.get(name, 0)
        ]
        self._prev = cur
        if self.url is None:
            return
        self._pending.append((row, srcs))
        while len(self._pending) > MAX_PENDING:
            self._pending.popleft()
            self.dropped += 1

    def totals(self, final: bool = False) -> dict[str, Any]:
        """The run row's totals from the latest snapshot."""
        cur = self._prev
        t0 = self._t_first
        out: dict[str, Any] = {"updated_at": _utcnow(), "intervals_dropped": self.dropped}
        if cur is not None and t0 is not None:
            row = cur.counters(Snapshot(t=t0), self._workers, self._trainer)
            out["seconds"] = cur.t - t0
            out["bottleneck_reason"] = row.pop("_reason")
            out.update(row)
        if self._weights is not None:
            try:
                w = self._weights()
                out["weights"] = _jsonable(dict(w)) if w is not None else None
            except Exception:
                pass
        if final:
            out["status"] = "finished"
            out["ended_at"] = out["updated_at"]
        out.update(self._annotations)
        return out

    def mark(self) -> None:
        """Close the current interval now and write it, in the caller's thread (for a
        boundary such as an epoch's end, and for tests; not for every step: it waits for the
        database)."""
        with self._lock:
            if not self._closed:
                self._sample()
                if self.url is not None:
                    self._flush(final=False)

    def annotate(self, **fields: Any) -> None:
        """Columns to set on the run row from now on (e.g. a bench run's ``kind``,
        ``result``, ``bottleneck``); they override the recorder's own values."""
        with self._lock:
            self._annotations.update({k: _jsonable(v) for k, v in fields.items()})

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        try:
            while True:
                stopping = self._stop.wait(self.interval)
                with self._lock:
                    self._sample()
                    if self.url is not None:
                        self._flush(final=stopping)
                if stopping:
                    break
        except Exception:  # a bug here must not reach the trainer: log it once, stop recording
            log.exception("m5stream records: the recorder thread failed; recording stopped")
        finally:
            self.finished.set()
            if self._store is not None:
                try:
                    self._store.close()
                except Exception:
                    pass

    def _flush(self, final: bool) -> None:
        now = time.monotonic()
        if self._failing and now < self._retry_at and not final:
            return
        assert self.url is not None
        rows = list(self._pending)
        try:
            if self._store is None:
                from .store import RunStore  # lazy: SQLAlchemy is imported only when recording

                self._store = RunStore(self.url)
            start = None if self._started else self._start
            self._store.write(
                self.run_id,
                start=start,
                rows=[r for r, _ in rows],
                sources=[s for _, ss in rows for s in ss],
                totals=self.totals(final=final),
            )
        except Exception as exc:
            self.errors += 1
            if self._is_duplicate(exc):
                # an earlier write landed although its commit seemed to fail
                self._started = True
                for _ in rows:
                    self._pending.popleft()
                return
            if not self._failing:
                log.error(
                    "m5stream records: cannot write run %s to %s (%s: %s); training goes on, "
                    "the record is kept back and retried (this is logged once)",
                    self.run_id,
                    redact(self.url),
                    type(exc).__name__,
                    _first_line(exc),
                )
            self._failing = True
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(MAX_BACKOFF, self._backoff * 2)
            if self._store is not None:
                try:
                    self._store.close()
                except Exception:
                    pass
                self._store = None
            return
        self._started = True
        for _ in rows:
            self._pending.popleft()
        if self._failing:
            log.info("m5stream records: writing to %s again", redact(self.url))
            self._failing = False
            self._backoff = 1.0

    @staticmethod
    def _is_duplicate(exc: Exception) -> bool:
        try:
            import sqlalchemy.exc  # lazy: present whenever a store was opened
        except ImportError:
            return False
        return isinstance(exc, sqlalchemy.exc.IntegrityError)

    # ------------------------------------------------------------------ lifetime
    def close(self, timeout: float | None = None) -> None:
        """The last interval and the run's end; waits for the write at most ``timeout``
        (default :data:`CLOSE_TIMEOUT`; no wait while the database is failing). Idempotent."""
        if self._closed or os.getpid() != self._pid:
            return
        self._closed = True
        self._stop.set()
        wait = 0.0 if self._failing else (CLOSE_TIMEOUT if timeout is None else timeout)
        self._thread.join(wait)
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None

    @property
    def metrics_url(self) -> str | None:
        if self.metrics_address is None:
            return None
        host, port = self.metrics_address
        return f"http://{host}:{port}/metrics"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


def _utcnow() -> Any:
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _metrics_address(spec: int | str | None) -> tuple[str, int] | None:
    if spec is None:
        return None
    if isinstance(spec, int):
        return ("127.0.0.1", spec)
    host, _, port = spec.rpartition(":")
    return (host.strip("[]") or "127.0.0.1", int(port))


def _describe(ds: Any) -> dict[str, Any]:
    """What the run reads: source, fingerprint, format, samples (any dataset-like object)."""
    m = getattr(ds, "manifest", None)
    source = getattr(m, "source", None) or getattr(ds, "source", None)
    if source is not None and not isinstance(source, str):
        source = json.dumps(_jsonable(source))
    return {
        "source": source,
        "fingerprint": getattr(ds, "fingerprint", None) or getattr(m, "fingerprint", None),
        "format": getattr(m, "format", None) or getattr(ds, "format_name", None),
        "num_samples": int(len(ds)) if hasattr(ds, "__len__") else None,
    }


def _source_label(source: str | None) -> str:
    if not source:
        return ""
    return source if len(source) <= 120 else source[:117] + "..."


def _current_weights(loader: Any) -> Callable[[], Any]:
    """The mixture weights in force at the loader's position (its schedule's, after any
    re-weighting), through a weak reference: the recorder must not keep the loader alive."""
    ref = weakref.ref(loader)
    initial = getattr(loader.dataset, "weights", None)

    def weights() -> Any:
        lo = ref()
        order: Any = getattr(lo, "order", None)
        schedule = getattr(order, "schedule", None)
        if lo is None or schedule is None:
            return initial
        return schedule.weights(lo.epoch * order.epoch_steps + lo.step)

    return weights


def open_recorder(loader: Any, stats: Stats, executor: Any = None) -> Recorder | None:
    """The recorder of ``loader`` when its config asks for records or metrics, else ``None``.

    Reads ``loader.config``, ``loader.dataset`` and ``loader.executor_kind``; keeps no
    reference to the loader (a finaliser closes the recorder with it).
    """
    c = loader.config
    url = resolve_url(c.record, env=False)
    metrics = _metrics_address(c.metrics_port)
    if url is None and metrics is None:
        return None
    if url is not None:
        try:
            import sqlalchemy  # lazy: an optional dependency, needed only when recording
        except ImportError:
            raise ConfigError("record= needs SQLAlchemy: pip install 'm5stream[records]'") from None
        try:
            sqlalchemy.make_url(url)
        except Exception as exc:
            raise ConfigError(f"record: not a database URL: {redact(url)!r} ({exc})") from None
    ds = loader.dataset
    weights_of = getattr(ds, "weights", None)
    desc = _describe(ds)
    tags = dict(c.tags)
    job = next((os.environ[v] for v in JOB_VARIABLES if os.environ.get(v)), None)
    start = {
        "run_id": uuid.uuid4().hex,
        "kind": "loader",
        "run_name": c.run_name,
        "tags": tags,
        "job": job,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "rank": c.rank,
        "world_size": c.world_size,
        "started_at": _utcnow(),
        "status": "running",
        **desc,
        "weights": _jsonable(dict(weights_of)) if isinstance(weights_of, Mapping) else None,
        "seed": c.seed,
        "shuffle": getattr(getattr(loader, "order", None), "mode", None) or str(c.shuffle),
        "batch_size": c.batch_size,
        "num_workers": c.num_workers,
        "executor": loader.executor_kind,
        # the package is imported before any of its modules; read, not imported, so that
        # this layer does not depend on the package's top-level façade
        "m5stream_version": getattr(sys.modules.get("m5stream"), "__version__", None),
    }
    qd = getattr(executor, "queue_depth", None)
    rec = Recorder(
        start,
        stats,
        url=url,
        metrics=metrics,
        interval=c.record_interval,
        queue_depth=qd if callable(qd) else None,
        weights=_current_weights(loader) if weights_of is not None else None,
        source_label=_source_label(desc["source"]),
    )
    weakref.finalize(loader, rec.close)
    return rec


def recorder_of(loader: Any) -> Recorder | None:
    """The :class:`Recorder` of a Loader (``None`` when it records nothing)."""
    rec = getattr(loader, "_recorder", None)
    return rec if isinstance(rec, Recorder) else None
