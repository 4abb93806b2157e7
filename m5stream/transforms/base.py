"""Transform base class, ``Compose``, and the versioned JSON artifact.

A :class:`Transform` is a per-sample function with JSON-serialisable constructor arguments.
Subclasses register themselves by class name; the artifact is
``{"format": "m5stream.transforms", "version": 1, "pipeline": [{"type": ..., "args": ...}]}``
and never contains pickled code, so a serving container can load it with this package alone.

Randomness: ``__call__(sample, rng=None)``. The loader passes a generator keyed by
``(seed, epoch, sample index)``; called without one (inference), random transforms take their
documented eval behaviour (see each class).

Deferred values: a transform may leave a :class:`LazyValue` in a sample (an image whose pixels
are made later, straight into their destination); :func:`materialize` turns every one into
its array. This module knows no kind of transform: the image and text modules build on it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "ARTIFACT_FORMAT",
    "ARTIFACT_VERSION",
    "Compose",
    "LazyValue",
    "Transform",
    "from_json",
    "load",
    "materialize",
]

ARTIFACT_FORMAT = "m5stream.transforms"
ARTIFACT_VERSION = 1
_REGISTRY: dict[str, type[Transform]] = {}

Sample = dict[str, Any]


class LazyValue:
    """A sample field whose value is made on demand (e.g. ``image.LazyImage``). A plain base
    class rather than an ABC, because :func:`materialize` checks every field of every sample
    with ``isinstance``."""

    __slots__ = ()

    def materialize(self) -> Any:
        raise NotImplementedError


def materialize(sample: Sample) -> Sample:
    """Replace every :class:`LazyValue` of ``sample`` by its value (in place; returned)."""
    for k, v in list(sample.items()):
        if isinstance(v, LazyValue):
            sample[k] = v.materialize()
    return sample


class Transform:
    """Base of m5stream's serialisable per-sample transforms."""

    #: random transforms get ``rng=`` from the loader
    wants_rng: ClassVar[bool] = False
    #: ``__call__`` accepts ``defer=True`` (leave images lazy for a fused write into a slot)
    supports_defer: ClassVar[bool] = False

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        _REGISTRY[cls.__name__] = cls

    def args(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable (round-trips through ``from_spec``)."""
        return {}

    def spec(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "args": self.args()}

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        raise NotImplementedError

    def to_json(self) -> str:
        return Compose([self]).to_json() if not isinstance(self, Compose) else self.to_json()

    def __repr__(self) -> str:
        a = ", ".join(f"{k}={v!r}" for k, v in self.args().items())
        return f"{type(self).__name__}({a})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Transform)
            and type(self) is type(other)
            and (self.spec() == other.spec())
        )

    def __hash__(self) -> int:
        return hash(json.dumps(self.spec(), sort_keys=True))


def from_spec(spec: dict[str, Any]) -> Transform:
    try:
        cls = _REGISTRY[spec["type"]]
    except KeyError:
        raise ValueError(f"unknown transform type {spec.get('type')!r}") from None
    args = spec.get("args", {})
    if cls is Compose:
        return Compose([from_spec(s) for s in args["transforms"]])
    return cls(**args)


class Compose(Transform):
    """Apply transforms in order. With ``defer=True`` (the loader's worker path) decoded images
    stay lazy so the fused kernel writes them straight into the batch slot; otherwise (direct
    calls, inference) every image is materialised as a numpy array before returning."""

    supports_defer = True

    def __init__(self, transforms: list[Transform]) -> None:
        for t in transforms:
            if not isinstance(t, Transform):
                raise TypeError(f"{t!r} is not an m5stream Transform (needed for the artifact)")
        self.transforms = list(transforms)
        self.wants_rng = any(t.wants_rng for t in self.transforms)  # type: ignore[misc]

    def args(self) -> dict[str, Any]:
        return {"transforms": [t.spec() for t in self.transforms]}

    def __call__(
        self, sample: Sample, rng: np.random.Generator | None = None, defer: bool = False
    ) -> Sample:
        for t in self.transforms:
            sample = t(sample, rng)
        if not defer:
            sample = materialize(sample)
        return sample

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": ARTIFACT_FORMAT,
                "version": ARTIFACT_VERSION,
                "pipeline": [t.spec() for t in self.transforms],
            },
            indent=2,
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    def __len__(self) -> int:
        return len(self.transforms)


def from_json(text: str) -> Compose:
    """Rebuild a pipeline from ``Compose.to_json()`` output (checks format and version)."""
    d = json.loads(text)
    if d.get("format") != ARTIFACT_FORMAT:
        raise ValueError(f"not an m5stream transform artifact (format={d.get('format')!r})")
    if d.get("version") != ARTIFACT_VERSION:
        raise ValueError(
            f"transform artifact version {d.get('version')!r} is not supported "
            f"(this m5stream reads version {ARTIFACT_VERSION})"
        )
    return Compose([from_spec(s) for s in d["pipeline"]])


def load(path: str | Path) -> Compose:
    return from_json(Path(path).read_text())
