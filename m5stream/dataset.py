"""The dataset description and its random-access source.

``dataset(source, ...)`` resolves a source into a :class:`~m5stream.catalog.manifest.Manifest`
once (listing, counting samples, building shard indexes) and returns a :class:`Dataset`:
``len(ds)`` samples, ``ds[i]`` the sample with global index ``i``. A Dataset pickles as its
manifest and options; each process opens its own shard readers lazily and keeps a small LRU of
them, so workers never share file descriptors.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

import numpy as np

from .catalog.manifest import Manifest
from .catalog.resolve import list_local
from .errors import ConfigError, M5Error
from .formats import Sample, ShardReader, detect_format, get_format
from .formats.synthetic import synthetic_manifest
from .storage.local import stat_local

__all__ = ["Dataset", "dataset"]

# Readers hold an open file and an index (tar/JSONL) or one decoded row group (Parquet): a global
# shuffle touches many shards per batch, so keep enough of them to avoid reopening per sample.
_OPEN_READERS = 32


def dataset(
    source: str | Manifest,
    *,
    format: str | None = None,
    columns: list[str] | None = None,
) -> Dataset:
    """Describe a dataset (see DESIGN.md "Public contract").

    ``source`` is a directory, file, glob or brace pattern of local files, a
    ``synthetic://N?shard_size=S`` URI, or an already built :class:`Manifest`.
    """
    if isinstance(source, Manifest):
        return Dataset(source)
    if not isinstance(source, str) or not source:
        raise ConfigError("source must be a non-empty string or a Manifest")
    if source.startswith("synthetic://"):
        return Dataset(synthetic_manifest(source))
    scheme = source.split("://", 1)[0] if "://" in source else ""
    if scheme in ("s3", "glue"):
        raise ConfigError(
            f"{scheme}:// sources need the {scheme.upper()} layer, which this build does not "
            "include yet",
            uri=source,
        )
    if scheme and scheme != "file":
        raise ConfigError(f"unsupported URI scheme {scheme!r}", uri=source)
    path = source[len("file://") :] if scheme == "file" else source
    root, files = list_local(path)
    fmt_name = format or detect_format(files)
    fmt = get_format(fmt_name)
    options: dict[str, Any] = {}
    if columns is not None:
        options["columns"] = list(columns)
    options = fmt.validate_options(options)
    keys, sizes, stamps, counts = [], [], [], []
    for f in files:
        size, stamp = stat_local(f)
        keys.append(os.path.relpath(f, root) if root else f)
        sizes.append(size)
        stamps.append(stamp)
        counts.append(fmt.count(f, size, stamp, options))
    manifest = Manifest(
        source=source,
        format=fmt_name,
        root=root,
        keys=keys,
        sizes=sizes,
        stamps=stamps,
        counts=counts,
        options=options,
    )
    return Dataset(manifest)


class Dataset:
    """Random access to the samples of a manifest (see module docstring)."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.format = get_format(manifest.format)
        self._readers: OrderedDict[int, ShardReader] = OrderedDict()

    @property
    def fingerprint(self) -> str:
        return self.manifest.fingerprint

    def __len__(self) -> int:
        return self.manifest.num_samples

    def _reader(self, shard: int) -> ShardReader:
        r = self._readers.get(shard)
        if r is not None:
            self._readers.move_to_end(shard)
            return r
        r = self.format.open(self.manifest.shard(shard), self.manifest.options)
        self._readers[shard] = r
        while len(self._readers) > _OPEN_READERS:
            _, old = self._readers.popitem(last=False)
            old.close()
        return r

    def get(self, index: int) -> Sample:
        """The sample with global index ``index``: its fields plus ``__key__``/``__index__``."""
        shard, local = self.manifest.locate(int(index))
        return self.read_at(int(index), shard, local)

    def locate_many(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised :meth:`Manifest.locate`: (shard numbers, indices within the shards)."""
        idx = np.asarray(indices, dtype=np.int64)
        offsets = self.manifest.offsets
        if len(idx) and (idx.min() < 0 or idx.max() >= offsets[-1]):
            raise IndexError(f"sample index out of range [0, {int(offsets[-1])})")
        shards = np.searchsorted(offsets, idx, side="right") - 1
        return shards, idx - offsets[shards]

    def read_at(self, index: int, shard: int, local: int) -> Sample:
        """The sample ``index`` already located at ``(shard, local)`` (see locate_many)."""
        try:
            key, fields = self._reader(shard).read(local)
        except M5Error as exc:
            exc.add_context(uri=self.manifest.uri(shard), index=int(index))
            raise
        fields["__key__"] = key
        fields["__index__"] = int(index)
        return fields

    __getitem__ = get

    def close(self) -> None:
        for r in self._readers.values():
            r.close()
        self._readers.clear()

    def __getstate__(self) -> dict[str, Any]:
        return {"manifest": self.manifest}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["manifest"])  # type: ignore[misc]

    def __repr__(self) -> str:
        m = self.manifest
        return (
            f"Dataset({m.source!r}, format={m.format!r}, samples={len(self)}, "
            f"shards={m.num_shards}, fingerprint={m.fingerprint[:12]})"
        )
