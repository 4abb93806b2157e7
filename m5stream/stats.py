"""Loader statistics: per-stage seconds and counts, cheap to update, a plain dict to read."""

from __future__ import annotations

from typing import Any

__all__ = ["SOURCE_PREFIX", "Stats"]

#: the counter keys of a mixture's per-source reads: ``source/NAME/FIELD``
SOURCE_PREFIX = "source/"


class Stats:
    """Counters of one loader. ``snapshot()`` gives a JSON-friendly dict.

    Stages: ``read`` (bytes from storage and format decoding, summed over workers),
    ``transform`` (summed over workers), ``decode`` (images made lazily by the transforms,
    decoded and resampled straight into the slot by the workers; in-process, this is part of
    ``transform``), ``assemble`` (collating the rest of the batch into its slot),
    ``wait`` (trainer blocked waiting for the next batch), ``deliver`` (trainer turning a slot
    into the returned batch). ``s3``: requests per S3 operation (``GetObject``, ...) and body
    ``bytes`` that reading batches made, in the workers and the shard prefetcher together.
    ``worker_restarts``: dead worker processes replaced; ``poison_kills``: those of them that
    bisecting for poison samples cost (not charged to ``max_worker_restarts``);
    ``poison_tasks``: bisection pieces sent to workers. ``startup_batches``: batches the
    processes executor made in the trainer while its workers were starting.
    """

    STAGES = ("read", "transform", "decode", "assemble", "wait", "deliver")

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(self.STAGES, 0.0)
        self.batches = 0
        self.samples = 0
        self.skipped = 0
        self.inline_batches = 0
        self.ring_grows = 0
        self.worker_restarts = 0
        self.poison_kills = 0
        self.poison_tasks = 0
        self.startup_batches = 0
        self.prefetched_shards = 0
        self.s3: dict[str, int] = {}
        #: mixture source -> samples, bytes, read_ns, transform_ns
        self.sources: dict[str, dict[str, int]] = {}

    def add_io(self, io: dict[str, int]) -> None:
        """S3 counters, and a mixture's per-source ones (``source/NAME/FIELD`` keys)."""
        for k, v in io.items():
            if k.startswith(SOURCE_PREFIX):
                name, _, fld = k[len(SOURCE_PREFIX) :].rpartition("/")
                per = self.sources.setdefault(name, {})
                per[fld] = per.get(fld, 0) + v
            else:
                self.s3[k] = self.s3.get(k, 0) + v

    def add_seconds(self, seconds: dict[str, float]) -> None:
        for k, v in seconds.items():
            self.seconds[k] = self.seconds.get(k, 0.0) + v

    def snapshot(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "samples": self.samples,
            "skipped": self.skipped,
            "inline_batches": self.inline_batches,
            "ring_grows": self.ring_grows,
            "worker_restarts": self.worker_restarts,
            "poison_kills": self.poison_kills,
            "poison_tasks": self.poison_tasks,
            "startup_batches": self.startup_batches,
            "prefetched_shards": self.prefetched_shards,
            "seconds": dict(self.seconds),
            "s3": dict(self.s3),
            **({"sources": self._sources()} if self.sources else {}),
        }

    def _sources(self) -> dict[str, dict[str, Any]]:
        total = sum(p.get("samples", 0) for p in self.sources.values()) or 1
        return {
            name: {
                "samples": p.get("samples", 0),
                "bytes": p.get("bytes", 0),
                "read_s": p.get("read_ns", 0) / 1e9,
                "transform_s": p.get("transform_ns", 0) / 1e9,
                "share": p.get("samples", 0) / total,
            }
            for name, p in self.sources.items()
        }
