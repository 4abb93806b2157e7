"""One timed pass over a loader (m5stream's or a peer's): the measurement every side shares.

The clock starts when iteration starts; the first batch's arrival is reported apart (time to
first batch: worker start-up, listing pages, first fetches) and the rate is taken over what
follows, until ``batches`` batches or ``seconds`` seconds. Ctrl-C ends the pass early and keeps
what was measured (``interrupted``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .monitor import Progress

__all__ = ["Measurement", "batch_size_of", "measure", "payload_bytes"]


@dataclass
class Measurement:
    samples: int = 0
    batches: int = 0
    bytes: int = 0
    first_batch_s: float | None = None
    seconds: float = 0.0  # after the first batch
    interrupted: bool = False
    #: ``[seconds since the first batch, samples/s over the last interval]``
    timeline: list[list[float]] = field(default_factory=list)

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds > 0 else 0.0


def payload_bytes(value: Any) -> int:
    """Bytes a batch (or a field of it) holds: arrays, tensors, bytes and str, nested."""
    if isinstance(value, dict):
        return sum(payload_bytes(v) for k, v in value.items() if k not in ("__key__", "__index__"))
    if isinstance(value, (bytes, bytearray, str)):
        return len(value)
    if isinstance(value, (list, tuple)):
        return sum(payload_bytes(v) for v in value)
    n = getattr(value, "nbytes", None)
    if n is not None:
        return int(n)
    if hasattr(value, "element_size") and hasattr(value, "numel"):  # torch tensors
        return int(value.element_size() * value.numel())
    return 0


def batch_size_of(batch: Any) -> int:
    if isinstance(batch, dict):
        if "__key__" in batch:
            return len(batch["__key__"])
        for v in batch.values():
            return len(v)
        return 0
    if isinstance(batch, (list, tuple)):
        return len(batch)
    shape = getattr(batch, "shape", None)
    return int(shape[0]) if shape else 1


def measure(
    batches: Iterable[Any],
    *,
    max_batches: int | None,
    max_seconds: float | None,
    progress: Progress | None = None,
    count: Any = batch_size_of,
) -> Measurement:
    """Iterate ``batches`` (re-iterating it when an epoch ends) within the budget."""
    m = Measurement()
    t_start = time.perf_counter()
    t0 = t_last = t_start
    n_last = 0
    t_end = t_start
    it = iter(batches)
    restarts = 0
    try:
        while True:
            try:
                batch = next(it)
            except StopIteration:
                restarts += 1
                if restarts > 1 and m.batches == 0:
                    break  # empty source
                it = iter(batches)
                continue
            now = time.perf_counter()
            if m.first_batch_s is None:
                m.first_batch_s = now - t_start
                t0 = t_last = now
                continue
            m.batches += 1
            m.samples += count(batch)
            m.bytes += payload_bytes(batch)
            del batch
            t_end = now
            elapsed = now - t0
            if now - t_last >= 0.5:
                m.timeline.append([round(elapsed, 3), (m.samples - n_last) / (now - t_last)])
                t_last, n_last = now, m.samples
            if progress is not None:
                progress.update(elapsed, m.samples, m.bytes)
            if (max_batches is not None and m.batches >= max_batches) or (
                max_seconds is not None and elapsed >= max_seconds
            ):
                break
    except KeyboardInterrupt:
        m.interrupted = True
    finally:
        if progress is not None:
            progress.done()
        close = getattr(it, "close", None)
        if close is not None:
            close()
    if m.first_batch_s is not None:
        m.seconds = t_end - t0
        if m.samples and (not m.timeline or m.timeline[-1][0] < m.seconds):
            m.timeline.append([round(m.seconds, 3), float(np.float64(m.samples_per_s))])
    return m
