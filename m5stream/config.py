"""``LoaderConfig``: the one validated description of how a dataset is loaded.

Built once from the user's keyword arguments (``LoaderConfig.build``), frozen, and shared by
:class:`m5stream.Loader` and both modes of :class:`m5stream.torch.IterableDataset`, so that
rank resolution, defaults and validation exist in one place. It also holds the read-ahead
budgets (:class:`ReadAheadBudget`): how many units, objects or shards are kept fetched ahead,
chosen from the dataset's format capabilities and object sizes.

Nothing here does I/O or imports torch: rank resolution looks at ``torch.distributed`` only
when the trainer has already imported torch.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .errors import ConfigError
from .formats.caps import FormatCaps
from .sampling.order import ShuffleMode, normalize_shuffle

__all__ = [
    "ExecutorKind",
    "LoaderConfig",
    "ReadAheadBudget",
    "resolve_rank",
]

#: ``"auto"`` lets the Loader choose from the config and the format's capabilities
ExecutorKind = Literal["auto", "inline", "threads", "processes"]
_EXECUTORS = ("auto", "inline", "threads", "processes")


def resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
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
    return int(rank), int(world_size)


def _torch_dist(fn: str) -> int | None:
    # torch is looked up, never imported: a process that has not imported it has no
    # process group to ask
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return int(getattr(dist, fn)())
    return None


@dataclass(frozen=True)
class ReadAheadBudget:
    """How far the read-ahead runs, in the unit the format decodes.

    ``threads``: decode threads of the in-process (threads) executor; ``depth``: units kept
    fetched or decoded beyond the current batch's; ``steps``: batches the process executor
    keeps in flight; ``shard_lookahead``: steps ahead whose shards the process executor
    downloads into the shard cache, and ``shards_ahead`` how many such shards at most.
    """

    threads: int
    depth: int
    steps: int
    shard_lookahead: int
    shards_ahead: int = 1

    #: bound on the look-ahead for formats with decode units (slots are 1 MiB by default)
    MAX_UNIT_STEPS = 64
    #: one-sample units (raw objects) kept in flight at most, and their bytes
    MAX_OBJECTS = 512
    OBJECT_BYTES = 64 << 20
    #: whole shards (tar) kept downloaded or downloading beyond the current one's, and bytes
    MAX_SHARDS = 4
    SHARD_BYTES = 512 << 20

    @classmethod
    def choose(
        cls,
        caps: FormatCaps,
        sizes: np.ndarray,
        *,
        batch_size: int,
        global_batch_size: int,
        num_workers: int,
        prefetch: int | None,
        unit_rows: int | None,
    ) -> ReadAheadBudget:
        """The budget for a dataset with format ``caps`` and object ``sizes``.

        Row groups: twice as many ahead as decode threads, so a thread that finishes finds
        the next one's bytes arrived. Raw objects are latency-bound: as many in flight as fit
        in ``OBJECT_BYTES`` by the mean size, at least a batch. Whole shards: as many
        downloads as ``MAX_SHARDS``, fewer when they would pass ``SHARD_BYTES``. Worker
        processes: two batches in flight per worker, and for formats whose batches of one
        decode unit go to one worker, a unit's worth of steps per worker (within
        ``MAX_UNIT_STEPS``) so that every worker has a unit to decode.
        """
        mean = max(1, int(sizes.mean())) if len(sizes) else 1
        if caps.columnar:
            depth = 2 * num_workers + 2
        elif caps.shard_units:
            depth = max(1, min(cls.MAX_SHARDS, cls.SHARD_BYTES // mean))
        else:
            depth = min(cls.MAX_OBJECTS, max(batch_size, cls.OBJECT_BYTES // mean))
        # a raw object's unit is the body its GET delivered: wrapping it costs less than a
        # hand-off to a decode thread, so only row groups and shards get decode threads
        threads = num_workers if caps.columnar or caps.shard_units else 0
        if prefetch is None:
            steps = 2 * max(1, num_workers)
            if unit_rows is not None and num_workers > 1:
                per_unit = -(-unit_rows // global_batch_size)
                steps = min(cls.MAX_UNIT_STEPS, max(steps, num_workers * per_unit + 1))
        else:
            steps = prefetch
        steps = max(1, steps)
        return cls(
            threads=threads,
            depth=depth,
            steps=steps,
            shard_lookahead=steps + 8,
            # downloads into the disk cache are bounded by the lookahead in steps; the count
            # bound only keeps a step of many small shards from queueing thousands
            shards_ahead=max(cls.MAX_SHARDS, min(256, cls.SHARD_BYTES // mean)),
        )


@dataclass(frozen=True)
class LoaderConfig:
    """The validated options of one loader (see :class:`m5stream.Loader` for each)."""

    batch_size: int
    shuffle: ShuffleMode = "none"
    seed: int = 0
    num_workers: int = 0
    drop_last: bool = False
    rank: int = 0
    world_size: int = 1
    on_error: Literal["raise", "skip"] = "raise"
    #: equal batch counts on every rank (the last step padded), so DDP never hangs
    even_batches: bool = True
    prefetch: int | None = None
    block_size: int = 16384
    output: Literal["auto", "numpy", "torch"] = "auto"
    copy: bool = False
    slot_bytes: int = 1 << 20
    timeout: float | None = None
    start_method: str | None = None
    columnar_reads: Literal["threads", "workers"] = "threads"
    executor: ExecutorKind = "auto"
    #: dead worker processes replaced per epoch (their batches recomputed); 0: fail fast
    max_worker_restarts: int = 0
    #: the trainer makes the first batches itself while the workers start (processes
    #: executor); ``None``: yes unless ``max_worker_restarts > 0`` (a sample that crashes its
    #: decoder in the trainer would take the trainer down)
    inline_start: bool | None = None
    # --- run records and live metrics (m5stream.records) ------------------------------------
    #: where the run is recorded: a SQLAlchemy URL (``sqlite:///runs.db``, ``postgresql://...``),
    #: ``True`` for ``sqlite:///<cache>/runs.db``, ``None``: not recorded; default
    #: ``$M5STREAM_RECORD`` (a URL, or 1/true)
    record: str | bool | None = None
    #: the user's name and ``(key, value)`` tags for the run's record (a dict is accepted)
    run_name: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    #: Prometheus endpoint: a port (on 127.0.0.1), ``"host:port"``, 0 for any free port;
    #: ``None``: no endpoint; default ``$M5STREAM_METRICS_PORT``
    metrics_port: int | str | None = None
    #: seconds between interval rows (and input-bound gauge updates)
    record_interval: float = 10.0
    # -------------------------------------------------------------------------------------------

    @classmethod
    def build(cls, batch_size: int, **options: Any) -> LoaderConfig:
        """Validate ``options`` (the Loader's keyword arguments) and resolve the rank."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise ConfigError(f"unknown loader option(s): {', '.join(unknown)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ConfigError(f"batch_size must be a positive int, not {batch_size!r}")
        rank, world_size = resolve_rank(options.pop("rank", None), options.pop("world_size", None))
        opts: dict[str, Any] = {"rank": rank, "world_size": world_size, **options}
        if "shuffle" in opts:
            opts["shuffle"] = normalize_shuffle(opts["shuffle"])
        _check_choice(opts, "on_error", ("raise", "skip"))
        _check_choice(opts, "output", ("auto", "numpy", "torch"))
        _check_choice(opts, "columnar_reads", ("threads", "workers"))
        _check_choice(opts, "executor", _EXECUTORS)
        nw = opts.get("num_workers", 0)
        if isinstance(nw, bool) or not isinstance(nw, int) or nw < 0:
            raise ConfigError(f"num_workers must be an int >= 0, not {nw!r}")
        if opts.get("block_size", 1) <= 0:
            raise ConfigError("block_size must be positive")
        if opts.get("prefetch") is not None and opts["prefetch"] < 1:
            raise ConfigError(f"prefetch must be >= 1, not {opts['prefetch']!r}")
        restarts = opts.get("max_worker_restarts", 0)
        if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 0:
            raise ConfigError(f"max_worker_restarts must be an int >= 0, not {restarts!r}")
        if opts.get("executor") == "processes" and nw == 0:
            raise ConfigError('executor="processes" needs num_workers > 0')
        if opts.get("inline_start") is not None:
            opts["inline_start"] = bool(opts["inline_start"])
        for flag in ("drop_last", "even_batches", "copy"):
            if flag in opts:
                opts[flag] = bool(opts[flag])
        if "seed" in opts:
            opts["seed"] = int(opts["seed"])
        _record_options(opts)
        return cls(batch_size=batch_size, **opts)

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size

    @property
    def pad_last(self) -> bool:
        """Whether a last step that does not split evenly over the ranks is padded."""
        return self.even_batches and self.world_size > 1 and not self.drop_last

    def replace(self, **changes: Any) -> LoaderConfig:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> Mapping[str, Any]:
        return dataclasses.asdict(self)


def _record_options(opts: dict[str, Any]) -> None:
    """Validate and default the run-record and metrics options (``$M5STREAM_RECORD``,
    ``$M5STREAM_METRICS_PORT`` when not given)."""
    if "record" not in opts:
        opts["record"] = os.environ.get("M5STREAM_RECORD") or None
    rec = opts["record"]
    if isinstance(rec, str):
        low = rec.strip().lower()
        if low in ("", "0", "false", "no", "off"):
            rec = None
        elif low in ("1", "true", "yes", "on"):
            rec = True
        opts["record"] = rec
    elif rec is not None and not isinstance(rec, bool):
        raise ConfigError(f"record must be a database URL, True or None, not {rec!r}")
    if opts["record"] is False:
        opts["record"] = None
    if "metrics_port" not in opts:
        opts["metrics_port"] = os.environ.get("M5STREAM_METRICS_PORT") or None
    port = opts["metrics_port"]
    if isinstance(port, str) and port.strip().isdigit():
        port = opts["metrics_port"] = int(port)
    if isinstance(port, bool) or not (
        port is None
        or (isinstance(port, int) and 0 <= port < 65536)
        or (isinstance(port, str) and port.rpartition(":")[2].isdigit() and ":" in port)
    ):
        raise ConfigError(f"metrics_port must be a port, 'host:port' or None, not {port!r}")
    tags = opts.get("tags", ())
    if isinstance(tags, Mapping):
        tags = tags.items()
    try:
        opts["tags"] = tuple(sorted((str(k), str(v)) for k, v in tags))
    except (TypeError, ValueError):
        raise ConfigError(f"tags must be a dict or (key, value) pairs, not {tags!r}") from None
    if opts.get("run_name") is not None:
        opts["run_name"] = str(opts["run_name"])
    interval = opts.get("record_interval", 10.0)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
        raise ConfigError(f"record_interval must be positive seconds, not {interval!r}")
    opts["record_interval"] = float(interval)


def _check_choice(opts: dict[str, Any], name: str, choices: tuple[str, ...]) -> None:
    if name in opts and opts[name] not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{name} must be one of {allowed}, not {opts[name]!r}")
