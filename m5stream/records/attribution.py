"""Where a run's time went: the stage breakdown and the bottleneck, named one way everywhere.

``m5stream bench`` (its report), the run records (each run and each interval row) and the
HTML report all name the limiting stage with :func:`bottleneck`, from the stage seconds of
:class:`m5stream.stats.Stats` mapped by :func:`stages`. Pure functions of numbers: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SUGGESTIONS", "WORK_STAGES", "bottleneck", "input_bound", "stages"]

#: the stages a worker (or the inline executor) spends its time in, as the bench names them
WORK_STAGES = ("fetch", "decode", "transform", "collate")

SUGGESTIONS = {
    "fetch": "more requests in flight: more workers or a larger prefetch, bigger shards, "
    "or a local shard cache closer to the data",
    "decode": "more workers, a smaller RandomResizedCrop scale (the DCT-scaled decode then "
    "does less work), or DecodeImage(fast=True)",
    "transform": "more workers, or move batch-level work into batch_transform",
    "collate": "fewer or larger fields per sample, with fixed shapes so batches stack in the "
    "shared-memory slot",
    "handoff": "the trainer process is busy turning slots into batches: larger batches, "
    "fewer Python objects per sample (arrays instead of lists), or output='numpy'",
    "trainer": "the loader is not the problem: it delivers faster than the trainer asks",
}


def stages(
    seconds: Mapping[str, float], listing: float = 0.0, first_batch: float | None = None
) -> dict[str, float]:
    """The bench's stage names over :class:`~m5stream.stats.Stats` ``seconds``."""
    s = seconds
    return {
        "listing": listing,
        "first_batch": first_batch or 0.0,
        "fetch": s.get("read", 0.0),
        "decode": s.get("decode", 0.0),
        "transform": s.get("transform", 0.0),
        "collate": s.get("assemble", 0.0),
        "handoff": s.get("deliver", 0.0),
        "trainer_wait": s.get("wait", 0.0),
    }


def input_bound(wait_seconds: float, wall_seconds: float) -> float:
    """The share of ``wall_seconds`` the trainer spent waiting for its next batch (0..1)."""
    if wall_seconds <= 0:
        return 0.0
    return min(1.0, max(0.0, wait_seconds / wall_seconds))


def bottleneck(st: Mapping[str, float], seconds: float, workers: int) -> dict[str, Any]:
    """Name the stage that limits throughput, with a concrete suggestion.

    If the trainer hardly waits, the loader keeps up (trainer-bound). Otherwise the busiest
    worker stage limits; unless the workers are mostly idle while the trainer waits, in which
    case the trainer's own side of the hand-off is the limit.
    """
    if seconds <= 0:
        return {"stage": "unknown", "reason": "nothing was timed", "suggestion": ""}
    wait_share = st["trainer_wait"] / seconds
    work = {k: st[k] for k in WORK_STAGES}
    busy = sum(work.values())
    util = busy / (seconds * max(1, workers))
    if wait_share < 0.15:
        stage = "trainer"
        reason = f"the trainer waited for data only {wait_share:.0%} of the time"
    elif workers and util < 0.5 and st["handoff"] > max(work.values(), default=0.0) / workers:
        stage = "handoff"
        reason = (
            f"workers were busy {util:.0%} of the time while the trainer waited "
            f"{wait_share:.0%}; delivering batches took {st['handoff']:.2f}s"
        )
    else:
        stage = max(work, key=lambda k: work[k])
        share = work[stage] / busy if busy else 0.0
        reason = f"{stage} took {share:.0%} of the workers' time ({work[stage]:.2f}s)"
    return {"stage": stage, "reason": reason, "suggestion": SUGGESTIONS[stage]}
