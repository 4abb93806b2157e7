"""Loader statistics: per-stage seconds and counts, cheap to update, a plain dict to read."""

from __future__ import annotations

from typing import Any

__all__ = ["Stats"]


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
    ``poison_tasks``: bisection pieces sent to workers.
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
        self.prefetched_shards = 0
        self.s3: dict[str, int] = {}

    def add_io(self, io: dict[str, int]) -> None:
        for k, v in io.items():
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
            "prefetched_shards": self.prefetched_shards,
            "seconds": dict(self.seconds),
            "s3": dict(self.s3),
        }
