"""Picklable transforms used by the multi-process tests (workers import them by name)."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np


class FailOn:
    """Raise KeyError for one sample index."""

    def __init__(self, index: int) -> None:
        self.index = index

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        if sample["__index__"] == self.index:
            raise KeyError(f"no field for {sample['__key__']}")
        return sample


class Slow:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        time.sleep(self.seconds)
        return sample


class RandomJitter:
    """A random transform: draws from the per-sample generator the loader passes."""

    wants_rng = True

    def __call__(self, sample: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        sample["noise"] = rng.integers(0, 1 << 30, size=4)
        sample["pid"] = os.getpid()
        return sample


class Big:
    """Replace each sample by a large array (to outgrow the first slot size), after
    ``delay`` seconds."""

    def __init__(self, nbytes: int, delay: float = 0.0) -> None:
        self.nbytes = nbytes
        self.delay = delay

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        if self.delay:
            time.sleep(self.delay)
        i = sample["__index__"]
        return {
            "__index__": i,
            "__key__": sample["__key__"],
            "x": np.full(self.nbytes, i % 251, dtype=np.uint8),
        }


class AbortOn:
    """Kill the process with ``os.abort()`` (SIGABRT, as a crashing C decoder does) on the
    samples whose index is in ``indices``; no core file is written."""

    def __init__(self, *indices: int) -> None:
        self.indices = frozenset(indices)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        if sample["__index__"] in self.indices:
            import resource  # lazy: only a worker about to crash needs it

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            os.abort()
        return sample


def join_bins(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch transform: the batch's ``bin`` payloads joined in order, and their count."""
    return {
        "bins": np.frombuffer(b"".join(s["bin"] for s in samples), dtype=np.uint8),
        "n": np.asarray([len(samples)], dtype=np.int64),
        "__index__": np.asarray([s["__index__"] for s in samples], dtype=np.int64),
        "__key__": [s["__key__"] for s in samples],
    }


class BigAt:
    """A ``x`` array of ``nbytes`` for the samples ``first .. last - 1`` and of 16 bytes for
    the others: a batch of those outgrows small slots (the ring grows)."""

    def __init__(self, first: int, last: int, nbytes: int, later_delay: float = 0.0) -> None:
        self.first, self.last, self.nbytes = first, last, nbytes
        self.later_delay = later_delay  # seconds per sample after ``last``

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        i = sample["__index__"]
        if i >= self.last:
            time.sleep(self.later_delay)
        n = self.nbytes if self.first <= i < self.last else 16
        return {"__index__": i, "__key__": sample["__key__"], "x": np.full(n, i % 251, np.uint8)}


class PidAfter:
    """Sleep ``seconds``, then add the pid of the process that ran the transform."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        time.sleep(self.seconds)
        sample["pid"] = os.getpid()
        return sample


class ThreadEnv:
    """Add the thread-count variables of the process that ran the transform, as bytes."""

    NAMES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        sample["env"] = "|".join(os.environ.get(n, "-") for n in self.NAMES).encode()
        sample["pid"] = os.getpid()
        return sample


class Stamped(PidAfter):
    """:class:`PidAfter`, adding the system-wide monotonic clock (the same in every process)
    before and after: when and where each sample was made."""

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        t0 = time.monotonic()
        sample = super().__call__(sample)
        sample["t0"], sample["t1"] = t0, time.monotonic()
        return sample
