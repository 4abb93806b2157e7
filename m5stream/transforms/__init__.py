"""Per-sample transforms and the JSON artifact that ships them with a model.

Importable with numpy and the ``m5stream._native`` extension only - no torch, no awscrt, no
loader - so a serving container can ``from m5stream.transforms import load`` and run exactly the
preprocessing the model was trained with.

A transform is a picklable callable ``sample -> sample``. One that draws random numbers sets
``wants_rng = True`` and is called as ``t(sample, rng=...)`` with a numpy ``Generator`` keyed
by ``(seed, epoch, sample index)`` (:func:`sample_rng`), so its output does not depend on which
worker ran it or when.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

# numpy loads ``numpy.random`` on first attribute access; that import costs ~0.1 s (more with
# torch loaded). Paid here, at import - and so once in the forkserver, for every worker -
# rather than inside a Loader's first batch.
import numpy.random

from .._native import sampler as _sampler
from .base import (
    ARTIFACT_FORMAT,
    ARTIFACT_VERSION,
    Compose,
    LazyValue,
    Transform,
    from_json,
    load,
    materialize,
)
from .image import (
    CenterCrop,
    DecodeImage,
    LazyImage,
    Normalize,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ToCHW,
)
from .text import Cast, PackTokens, SelectColumns, Tokenize

__all__ = [
    "ARTIFACT_FORMAT",
    "ARTIFACT_VERSION",
    "Cast",
    "CenterCrop",
    "Compose",
    "DecodeImage",
    "LazyImage",
    "LazyValue",
    "Normalize",
    "PackTokens",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "Resize",
    "SelectColumns",
    "ToCHW",
    "Tokenize",
    "Transform",
    "apply_transform",
    "from_json",
    "load",
    "materialize",
    "sample_rng",
]

_M64 = (1 << 64) - 1

Sample = dict[str, Any]
TransformFn = Callable[..., Sample]


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random generator of one sample in one epoch (Philox keyed by all three)."""
    a = _sampler.mix(_sampler.mix(seed & _M64) ^ (epoch & _M64))
    b = _sampler.mix(a ^ (index & _M64))
    return np.random.Generator(np.random.Philox(key=[a, b]))


def apply_transform(
    transform: TransformFn | None, sample: Sample, *, seed: int, epoch: int, defer: bool = False
) -> Sample:
    """Run ``transform`` the way the loader does (keyed rng; lazy images when ``defer``)."""
    if transform is None:
        return sample
    kwargs: dict[str, Any] = {}
    if getattr(transform, "wants_rng", False):
        kwargs["rng"] = sample_rng(seed, epoch, int(sample["__index__"]))
    if defer and getattr(transform, "supports_defer", False):
        kwargs["defer"] = True
    out = transform(sample, **kwargs)
    return out if defer else materialize(out)
