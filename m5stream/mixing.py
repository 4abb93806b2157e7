"""``m5.mix`` / ``m5.source``: several datasets read as one weighted mixture.

Contract:

* :func:`mix` takes named sources (a :class:`~m5stream.dataset.Dataset`, or :func:`source`
  for one with its own transform), a weight per source (non-negative, not all zero; every
  source needs one), a ``granularity`` (``"sample"``: the samples of every global batch are
  shared out by weight; ``"batch"``: each global batch comes from one source, batches shared
  out by weight) and ``epoch_samples`` (samples per mixture epoch; default: the sum of the
  sources' sizes).
* A :class:`Mixture` is a :class:`Dataset` over the sources' samples laid end to end (source
  ``s``'s sample ``i`` has global index ``offsets[s] + i``; its shards likewise), so every
  executor reads it as it reads one dataset. *Which* of those samples each step takes is the
  plan's business (:class:`~m5stream.plan.mixture.MixtureOrder`), never this object's.
* Each sample read carries ``__source__`` (the source's name) and ``__index__`` (its index
  within that source). A source keeps its format, location and S3 settings; a source made
  with :func:`source` keeps its transform (``None``: none), the others take the Loader's
  (:class:`SourceTransforms` applies them by ``__source__``).
* The mixture's fingerprint covers each source's name and fingerprint (not the weights: they
  are the plan's, recorded in a loader's state as weight segments).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .catalog.manifest import Manifest, ShardInfo
from .dataset import Dataset
from .errors import ConfigError
from .formats.caps import FormatCaps
from .storage.iostats import count_source
from .transforms import Sample, TransformFn, apply_transform

__all__ = ["Mixture", "Source", "SourceTransforms", "mix", "source"]

Granularity = Literal["sample", "batch"]
#: the marker of "this source takes the Loader's transform"
_INHERIT = object()


@dataclass(frozen=True)
class Source:
    """A dataset with a transform of its own, for :func:`mix` (see :func:`source`)."""

    dataset: Dataset
    transform: TransformFn | None


def source(ds: Dataset, *, transform: TransformFn | None = None) -> Source:
    """``ds`` as a mixture source with its own ``transform`` (``None``: no transform, not the
    Loader's)."""
    if not isinstance(ds, Dataset) or isinstance(ds, Mixture):
        raise ConfigError("m5.source() takes an m5stream dataset (not a mixture)")
    return Source(ds, transform)


class _MixtureFormat:
    """What executors ask of a dataset's format: a mixture reads sample by sample, through
    its sources' readers (no column blocks, no decode units of its own to read ahead)."""

    name = "mixture"
    caps = FormatCaps()

    def __init__(self, modules: tuple[str, ...]) -> None:
        #: what the sources' readers import (preloaded into the workers' forkserver)
        self.modules = modules


def _check_weights(names: list[str], weights: Mapping[str, Any]) -> dict[str, float]:
    if not isinstance(weights, Mapping):
        raise ConfigError("mix(weights=...) must be a dict of source name -> weight")
    unknown = [w for w in weights if w not in names]
    if unknown:
        raise ConfigError(
            f"weights name unknown mixture source(s) {unknown}; the sources are {names}"
        )
    missing = [n for n in names if n not in weights]
    if missing:
        raise ConfigError(f"mixture source(s) {missing} have no weight (give 0 to leave one out)")
    out: dict[str, float] = {}
    for n in names:
        w = weights[n]
        if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)):
            raise ConfigError(f"mixture source {n!r}: weight {w!r} is not a number")
        wf = float(w)
        if not math.isfinite(wf) or wf < 0:
            raise ConfigError(f"mixture source {n!r}: weight {w!r} must be finite and >= 0")
        out[n] = wf
    if not any(out.values()):
        raise ConfigError(f"mixture weights are all zero: {out}")
    return out


class Mixture(Dataset):
    """Named sources laid end to end, with the weights a plan draws them by (module
    docstring)."""

    def __init__(
        self,
        sources: Mapping[str, Dataset | Source],
        weights: Mapping[str, float],
        *,
        granularity: Granularity = "sample",
        epoch_samples: int | None = None,
    ) -> None:
        if not isinstance(sources, Mapping) or not sources:
            raise ConfigError("mix() needs a non-empty dict of source name -> dataset")
        self.names: list[str] = []
        self.datasets: dict[str, Dataset] = {}
        self._own: dict[str, TransformFn | None] = {}
        for name, src in sources.items():
            if not isinstance(name, str) or not name or name.startswith("__"):
                raise ConfigError(f"mixture source names are non-empty strings, not {name!r}")
            if isinstance(src, Source):
                ds: Dataset = src.dataset
                self._own[name] = src.transform
            elif isinstance(src, Mixture):
                raise ConfigError(f"mixture source {name!r} is itself a mixture: nest its sources")
            elif isinstance(src, Dataset):
                ds = src
            else:
                raise ConfigError(
                    f"mixture source {name!r} must be an m5.dataset(...) or m5.source(...), "
                    f"not {type(src).__name__}"
                )
            if len(ds) == 0:
                raise ConfigError(f"mixture source {name!r} has no samples")
            self.names.append(name)
            self.datasets[name] = ds
        self.weights = _check_weights(self.names, weights)
        if granularity not in ("sample", "batch"):
            raise ConfigError(f"granularity must be 'sample' or 'batch', not {granularity!r}")
        self.granularity: Granularity = granularity
        sizes = [len(self.datasets[n]) for n in self.names]
        if epoch_samples is None:
            epoch_samples = sum(sizes)
        if isinstance(epoch_samples, bool) or not isinstance(epoch_samples, (int, np.integer)):
            raise ConfigError(f"epoch_samples must be an int, not {epoch_samples!r}")
        if epoch_samples <= 0:
            raise ConfigError(f"epoch_samples must be positive, not {epoch_samples}")
        self.epoch_samples = int(epoch_samples)
        #: global index of each source's first sample / first shard
        self.offsets = dict(zip(self.names, np.cumsum([0, *sizes[:-1]]).tolist()))
        #: samples per shard of each source
        self.shard_counts = {n: self.datasets[n].manifest.counts for n in self.names}
        shard_counts = [len(self.shard_counts[n]) for n in self.names]
        self._sample_starts = np.cumsum([0, *sizes]).astype(np.int64)
        self._shard_starts = np.cumsum([0, *shard_counts]).astype(np.int64)
        self.s3 = None
        modules = [m for n in self.names for m in self.datasets[n].format.modules]
        self.format = _MixtureFormat(tuple(dict.fromkeys(modules)))  # type: ignore[assignment]
        self.caps = self.format.caps
        self.manifest = self._manifest()
        self._rows = None
        self._readers = OrderedDict()  # the sources hold the readers
        self._prefetched = {}

    def _manifest(self) -> Manifest:
        keys: list[str] = []
        sizes: list[np.ndarray] = []
        stamps: list[str] = []
        counts: list[np.ndarray] = []
        for n in self.names:
            m = self.datasets[n].manifest
            keys += [f"{n}:{k}" for k in m.keys]
            sizes.append(m.sizes)
            stamps += m.stamps
            counts.append(m.counts)
        return Manifest(
            source="mix(" + ", ".join(self.names) + ")",
            format="mixture",
            root="",
            keys=keys,
            sizes=np.concatenate(sizes),
            stamps=stamps,
            counts=np.concatenate(counts),
            options={"sources": self.source_fingerprints()},
        )

    # -- what the plan and the Loader need ------------------------------------------------

    @property
    def sizes(self) -> dict[str, int]:
        return {n: len(self.datasets[n]) for n in self.names}

    def source_fingerprints(self) -> dict[str, str]:
        return {n: self.datasets[n].fingerprint for n in self.names}

    def checked_weights(self, weights: Mapping[str, Any]) -> dict[str, float]:
        """``weights`` validated for these sources (as :func:`mix` validates them)."""
        return _check_weights(self.names, weights)

    def has_own_transform(self, name: str) -> bool:
        return name in self._own

    def transforms(self, default: TransformFn | None) -> TransformFn | None:
        """The per-sample transform a Loader with transform ``default`` runs on this
        mixture (``None`` when no source has any)."""
        by_source = {n: self._own.get(n, default) for n in self.names}
        if all(t is None for t in by_source.values()):
            return None
        return SourceTransforms(by_source)

    def check_fields(self, transform: TransformFn | None, *, seed: int) -> None:
        """With ``granularity="sample"`` the sources' samples must share their fields (one
        batch holds several sources): read each source's first sample through
        ``transform`` (:meth:`transforms`) and raise :class:`ConfigError` naming the
        fields that differ."""
        if self.granularity != "sample" or len(self.names) < 2:
            return
        fields: dict[str, set[str]] = {}
        for n in self.names:
            sample = self.get(self.offsets[n])
            out = apply_transform(transform, sample, seed=seed, epoch=0)
            fields[n] = {k for k in out if not (k.startswith("__") and k.endswith("__"))}
        common = set.intersection(*fields.values())
        if all(f == common for f in fields.values()):
            return
        extra = {n: sorted(f - common) for n, f in fields.items() if f - common}
        raise ConfigError(
            "with granularity='sample' every batch mixes the sources, so their samples must "
            f"have the same fields after their transforms; they share {sorted(common)}, but "
            + "; ".join(f"{n!r} also has {v}" for n, v in extra.items())
            + ". Make the transforms agree, or use granularity='batch' (each global batch "
            "from one source)"
        )

    def _source_of_shard(self, shard: int) -> int:
        return int(np.searchsorted(self._shard_starts, shard, side="right")) - 1

    # -- reading (the executors' interface) -----------------------------------------------

    def locality(self, index: int) -> tuple[int, int] | None:
        shard, _ = self.manifest.locate(int(index))
        sid = self._source_of_shard(shard)
        name = self.names[sid]
        got = self.datasets[name].locality(int(index) - self.offsets[name])
        return None if got is None else (int(self._shard_starts[sid]) + got[0], got[1])

    def unit_rows(self) -> int | None:
        return None

    @property
    def downloads_ahead(self) -> bool:
        return any(ds.downloads_ahead for ds in self.datasets.values())

    def shard_download(self, shard: int) -> ShardInfo | None:
        sid = self._source_of_shard(shard)
        return self.datasets[self.names[sid]].shard_download(shard - int(self._shard_starts[sid]))

    def _by_source(self, shards: np.ndarray) -> list[tuple[Dataset, np.ndarray]]:
        """``shards`` (global) split by source: each source's dataset and its own shards."""
        sh = np.asarray(shards, dtype=np.int64)
        if not len(sh):
            return []
        sids = np.searchsorted(self._shard_starts, sh, side="right") - 1
        return [
            (self.datasets[self.names[sid]], sh[sids == sid] - self._shard_starts[sid])
            for sid in np.unique(sids).tolist()
        ]

    def prefetch(self, shards: np.ndarray) -> None:
        for ds, local in self._by_source(shards):
            ds.prefetch(local)

    def prefetch_ahead(self, shards: np.ndarray) -> None:
        for ds, local in self._by_source(shards):
            ds.prefetch_ahead(local)

    def read_at(self, index: int, shard: int, local: int) -> Sample:
        sid = self._source_of_shard(shard)
        name = self.names[sid]
        t0 = time.perf_counter_ns()
        sample = self.datasets[name].read_at(
            int(index) - self.offsets[name], shard - int(self._shard_starts[sid]), local
        )
        count_source(name, "read_ns", time.perf_counter_ns() - t0)
        count_source(name, "samples", 1)
        count_source(name, "bytes", _payload_bytes(sample))
        sample["__source__"] = name
        return sample

    def close(self) -> None:
        for ds in self.datasets.values():
            ds.close()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "sources": {
                n: Source(self.datasets[n], self._own[n]) if n in self._own else self.datasets[n]
                for n in self.names
            },
            "weights": self.weights,
            "granularity": self.granularity,
            "epoch_samples": self.epoch_samples,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["sources"],
            state["weights"],
            granularity=state["granularity"],
            epoch_samples=state["epoch_samples"],
        )

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}={self.weights[n]:g}:{len(self.datasets[n])}" for n in self.names)
        return f"Mixture({parts}, granularity={self.granularity!r})"


def _payload_bytes(sample: Sample) -> int:
    n = 0
    for k, v in sample.items():
        if k.startswith("__"):
            continue
        if isinstance(v, (bytes, bytearray, memoryview, np.ndarray)):
            n += v.nbytes if isinstance(v, (memoryview, np.ndarray)) else len(v)
        elif isinstance(v, str):
            n += len(v)  # characters: a cheap stand-in for the encoded size
    return n


class SourceTransforms:
    """The transform of a mixture sample, chosen by its ``__source__`` (picklable)."""

    def __init__(self, by_source: Mapping[str, TransformFn | None]) -> None:
        self.by_source = dict(by_source)
        self.wants_rng = any(getattr(t, "wants_rng", False) for t in self.by_source.values())
        self.supports_defer = any(
            getattr(t, "supports_defer", False) for t in self.by_source.values()
        )

    def __call__(
        self, sample: Sample, *, rng: np.random.Generator | None = None, defer: bool = False
    ) -> Sample:
        name = sample["__source__"]
        t = self.by_source[name]
        if t is None:
            return sample
        kwargs: dict[str, Any] = {}
        if getattr(t, "wants_rng", False):
            kwargs["rng"] = rng
        if defer and getattr(t, "supports_defer", False):
            kwargs["defer"] = True
        t0 = time.perf_counter_ns()
        out = t(sample, **kwargs)
        count_source(name, "transform_ns", time.perf_counter_ns() - t0)
        if "__source__" not in out:
            out["__source__"] = name
        return out


def mix(
    sources: Mapping[str, Dataset | Source],
    weights: Mapping[str, float],
    *,
    granularity: Granularity = "sample",
    epoch_samples: int | None = None,
) -> Mixture:
    """A weighted mixture of named sources (see module docstring)."""
    return Mixture(sources, weights, granularity=granularity, epoch_samples=epoch_samples)
