"""A mixture described in a small JSON file, for ``m5stream bench`` and ``m5stream inspect``.

The file is one object::

    {"sources": {
        "en":  {"source": "s3://corpus/en/*.parquet", "columns": ["text"]},
        "ja":  {"source": "glue://catalog/products", "where": "locale = 'ja_JP'"},
        "img": {"source": "s3://corpus/img/shard-{0000..0127}.tar", "transform": "imagenet-train"}
     },
     "weights": {"en": 0.5, "ja": 0.3, "img": 0.2},
     "granularity": "batch",
     "epoch_samples": null}

A source takes the keys of ``m5.dataset`` that JSON can say (``source``, ``format``,
``columns``, ``where``, ``options``; a relative local path is relative to the file) and a
``transform``: a preset name or the path of a
transform artifact (relative paths are relative to the file). A source without one takes the
Loader's (``bench --transform``). A file is read as a mixture only when it is a JSON object
with ``sources`` and ``weights``; any other file is a dataset source (e.g. JSON Lines).
"""

from __future__ import annotations

import json
import os

from ..dataset import Dataset
from ..errors import ConfigError
from ..mixing import Mixture, Source, mix, source
from ..source import dataset
from .presets import resolve_transform

__all__ = ["is_mixture_spec", "load_mixture"]

_DATASET_KEYS = {"source", "format", "columns", "where", "options"}


def is_mixture_spec(path: str) -> bool:
    """Whether ``path`` is a local JSON file describing a mixture (see module docstring)."""
    if not path.endswith(".json") or not os.path.isfile(path):
        return False
    try:
        with open(path, encoding="utf-8") as f:
            head = f.read(1 << 20)
        spec = json.loads(head)
    except (OSError, ValueError):
        return False  # not one JSON document: JSON Lines, or not ours
    return isinstance(spec, dict) and "sources" in spec and "weights" in spec


def load_mixture(path: str) -> Mixture:
    """The mixture the file at ``path`` describes; a bad description is a
    :class:`ConfigError` naming the file and the source."""
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the mixture file: {exc}", uri=path) from None
    sources = spec.get("sources")
    if not isinstance(sources, dict) or not sources:
        raise ConfigError("a mixture file needs a non-empty 'sources' object", uri=path)
    base = os.path.dirname(os.path.abspath(path))
    built: dict[str, Dataset | Source] = {}
    for name, desc in sources.items():
        if not isinstance(desc, dict) or "source" not in desc:
            raise ConfigError(f"mixture source {name!r} needs a 'source'", uri=path)
        unknown = set(desc) - _DATASET_KEYS - {"transform"}
        if unknown:
            raise ConfigError(
                f"mixture source {name!r}: unknown key(s) {sorted(unknown)} (known: "
                f"{sorted(_DATASET_KEYS | {'transform'})})",
                uri=path,
            )
        kw = {k: v for k, v in desc.items() if k in _DATASET_KEYS}
        src = kw["source"]
        if isinstance(src, str) and "://" not in src and not os.path.isabs(src):
            kw["source"] = os.path.join(base, src)  # relative to the mixture file
        ds = dataset(**kw)
        tf = desc.get("transform")
        if tf is None:
            built[name] = ds
            continue
        local = os.path.join(base, tf)
        preset = resolve_transform(local if tf.endswith(".json") else tf)
        if preset.batch_transform is not None:
            raise ConfigError(
                f"mixture source {name!r}: transform {tf!r} is a batch transform; a source "
                "takes a per-sample transform",
                uri=path,
            )
        built[name] = source(ds, transform=preset.transform)
    extra = set(spec) - {"sources", "weights", "granularity", "epoch_samples"}
    if extra:
        raise ConfigError(f"unknown mixture file key(s) {sorted(extra)}", uri=path)
    return mix(
        built,
        weights=spec["weights"],
        granularity=spec.get("granularity", "sample"),
        epoch_samples=spec.get("epoch_samples"),
    )
