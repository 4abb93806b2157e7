"""One timed pass over a loader (m5stream's or a peer's): the measurement every side shares.

The clock starts when iteration starts; the first batch's arrival is reported apart (time to
first batch: worker start-up, listing pages, first fetches) and the rate is taken over what
follows, until ``batches`` batches, ``seconds`` seconds or ``epochs`` epochs. Ctrl-C ends the
pass early and keeps what was measured (``interrupted``).

Start-up as a user meets it is measured from ``origin``, a ``time.perf_counter()`` reading the
caller takes just before it makes the loader: the first batch from there
(``first_batch_from_origin_s``), and each epoch's end (the ``StopIteration`` that makes the pass
iterate the loader again), from which :func:`epoch_rates` gives the first epoch's samples/s
(start-up included) against the steady samples/s of the later epochs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from .monitor import Progress

__all__ = ["Epoch", "Measurement", "batch_size_of", "epoch_rates", "measure", "payload_bytes"]


@dataclass(frozen=True)
class Epoch:
    """One complete epoch: it ended (``StopIteration``) ``end_s`` seconds after the origin."""

    end_s: float
    batches: int  # the first batch included
    samples: int


@dataclass
class Measurement:
    samples: int = 0  # after the first batch (as ``batches``, ``bytes``)
    batches: int = 0
    bytes: int = 0
    first_batch_s: float | None = None  # from the start of iteration
    seconds: float = 0.0  # after the first batch
    interrupted: bool = False
    #: ``[seconds since the first batch, samples/s over the last interval]``
    timeline: list[list[float]] = field(default_factory=list)
    #: seconds from the origin to the start of iteration (making the loader, when the origin
    #: is taken just before it is made)
    iter_start_s: float = 0.0
    #: seconds from the origin to the first batch in hand (``iter_start_s + first_batch_s``)
    first_batch_from_origin_s: float | None = None
    #: the complete epochs, in order (an epoch the pass stopped within is not one)
    epochs: list[Epoch] = field(default_factory=list)

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


def _median(xs: list[float]) -> float:
    ys = sorted(xs)
    mid = len(ys) // 2
    return ys[mid] if len(ys) % 2 else (ys[mid - 1] + ys[mid]) / 2


def epoch_rates(epochs: list[Epoch]) -> dict[str, Any]:
    """The first epoch's samples/s against the steady samples/s, from the complete epochs.

    ``first_epoch_samples_per_s``: epoch 1's samples over its end (seconds from the origin:
    start-up included). ``steady_samples_per_s``: the median over epochs 2.. of each one's
    samples over the seconds from the previous epoch's end to its own. ``first_epoch_ratio``:
    the first over the steady; ``None`` with fewer than 2 complete epochs, and
    ``first_epoch_ratio_note`` then says why (else ``None``).
    """
    first = epochs[0].samples / epochs[0].end_s if epochs and epochs[0].end_s > 0 else None
    later = [e.samples / (e.end_s - p.end_s) for p, e in pairwise(epochs) if e.end_s > p.end_s]
    steady = _median(later) if later else None
    ratio = first / steady if first is not None and steady else None
    note = None
    if len(epochs) < 2:
        note = f"run ended within epoch {len(epochs) + 1}"
    elif ratio is None:
        note = "no time measured over the epochs"
    return {
        "first_epoch_samples_per_s": first,
        "steady_samples_per_s": steady,
        "first_epoch_ratio": ratio,
        "first_epoch_ratio_note": note,
    }


def measure(
    batches: Iterable[Any],
    *,
    max_batches: int | None,
    max_seconds: float | None,
    max_epochs: int | None = None,
    progress: Progress | None = None,
    count: Any = batch_size_of,
    origin: float | None = None,
) -> Measurement:
    """Iterate ``batches`` (re-iterating it when an epoch ends) within the budget.

    ``origin``: the ``time.perf_counter()`` reading start-up is measured from (default: the
    start of iteration). ``max_epochs``: stop when that many epochs have ended.
    """
    m = Measurement()
    t_start = time.perf_counter()
    origin = t_start if origin is None else origin
    m.iter_start_s = t_start - origin
    t0 = t_last = t_start
    n_last = 0
    t_end = t_start
    it = iter(batches)
    restarts = 0
    epoch_batches = epoch_samples = 0  # in the epoch under way, the first batch included
    try:
        while True:
            try:
                batch = next(it)
            except StopIteration:
                restarts += 1
                if epoch_batches == 0:
                    if restarts > 1:
                        break  # empty source
                else:
                    now = time.perf_counter()
                    m.epochs.append(Epoch(now - origin, epoch_batches, epoch_samples))
                    epoch_batches = epoch_samples = 0
                    if max_epochs is not None and len(m.epochs) >= max_epochs:
                        break
                it = iter(batches)
                continue
            now = time.perf_counter()
            n = count(batch)
            epoch_batches += 1
            epoch_samples += n
            if m.first_batch_s is None:
                m.first_batch_s = now - t_start
                m.first_batch_from_origin_s = now - origin
                t0 = t_last = now
                continue
            m.batches += 1
            m.samples += n
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
