"""Per-sample transforms: the contract the loader relies on.

A transform is any picklable callable ``sample -> sample``. One that draws random numbers sets
``wants_rng = True`` and is called as ``t(sample, rng=...)`` with a numpy ``Generator`` keyed
by ``(seed, epoch, sample index)`` (:func:`sample_rng`), so its output does not depend on which
worker ran it or when. This module imports nothing beyond numpy, so a serving process can use
it alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._native.sampler import mix as _mix

__all__ = ["Transform", "apply_transform", "sample_rng"]

_M64 = (1 << 64) - 1

Sample = dict[str, Any]
Transform = Callable[..., Sample]


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random generator of one sample in one epoch (Philox keyed by all three)."""
    a = _mix(_mix(seed & _M64) ^ (epoch & _M64))
    b = _mix(a ^ (index & _M64))
    return np.random.Generator(np.random.Philox(key=[a, b]))


def apply_transform(
    transform: Transform | None, sample: Sample, *, seed: int, epoch: int
) -> Sample:
    if transform is None:
        return sample
    if getattr(transform, "wants_rng", False):
        return transform(sample, rng=sample_rng(seed, epoch, int(sample["__index__"])))
    return transform(sample)
