"""The dataset description and its random-access source.

``dataset(source, ...)`` resolves a source into a :class:`~m5stream.catalog.manifest.Manifest`
once (listing, counting samples, building shard indexes) and returns a :class:`Dataset`:
``len(ds)`` samples, ``ds[i]`` the sample with global index ``i``. A Dataset pickles as its
manifest and options; each process opens its own shard readers lazily and keeps a small LRU of
them, so workers never share file descriptors.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from .catalog.manifest import Manifest
from .catalog.resolve import list_local
from .catalog.s3list import list_s3
from .errors import ConfigError, M5Error, NotFound
from .formats import Format, Sample, ShardReader, detect_format, get_format
from .formats.synthetic import synthetic_manifest
from .storage.local import stat_local
from .storage.s3 import S3Config

__all__ = ["Dataset", "dataset"]

# Readers hold an open file and an index (tar/JSONL) or one decoded row group (Parquet): a global
# shuffle touches many shards per batch, so keep enough of them to avoid reopening per sample.
_OPEN_READERS = 32


def dataset(
    source: str | Manifest,
    *,
    format: str | None = None,
    columns: list[str] | None = None,
    manifest: str | os.PathLike[str] | None = None,
    s3: S3Config | None = None,
) -> Dataset:
    """Describe a dataset (see DESIGN.md "Public contract").

    ``source`` is a directory, file, glob or brace pattern of local files, the same over
    ``s3://bucket/...`` (a prefix ending in ``/`` is listed), a
    ``synthetic://N?shard_size=S`` URI, or an already built :class:`Manifest`.

    ``manifest=PATH`` lists once per job: the first process (rank 0, from ``$RANK``) resolves
    the source and writes the manifest there; the others, and later runs, read it instead of
    listing again (they wait up to ``$M5STREAM_MANIFEST_WAIT`` seconds, default 600, for it).

    ``s3=S3Config(endpoint=..., region=...)`` overrides the environment for this dataset: it
    travels with the dataset to every shard reader, in this process and in the workers.
    """
    if s3 is not None:
        s3 = s3.resolved()
    if isinstance(source, Manifest):
        return Dataset(source, s3)
    if not isinstance(source, str) or not source:
        raise ConfigError("source must be a non-empty string or a Manifest")
    if manifest is not None:
        return Dataset(_shared_manifest(source, Path(manifest), format, columns, s3), s3)
    return Dataset(_resolve(source, format, columns, s3), s3)


def _shared_manifest(
    source: str,
    path: Path,
    format: str | None,
    columns: list[str] | None,
    s3: S3Config | None,
) -> Manifest:
    if not path.exists() and int(os.environ.get("RANK", "0") or 0) == 0:
        m = _resolve(source, format, columns, s3)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(m.to_json())
        os.replace(tmp, path)
        return m
    deadline = time.monotonic() + float(os.environ.get("M5STREAM_MANIFEST_WAIT", "600"))
    while not path.exists():
        if time.monotonic() > deadline:
            raise NotFound("timed out waiting for rank 0 to write the manifest", uri=str(path))
        time.sleep(0.2)
    m = Manifest.from_json(path.read_text())
    if m.source != source:
        raise ConfigError(
            f"manifest at {path} was made for {m.source!r}, not {source!r}", uri=str(path)
        )
    return m


def _resolve(
    source: str, format: str | None, columns: list[str] | None, s3: S3Config | None = None
) -> Manifest:
    if source.startswith("synthetic://"):
        return synthetic_manifest(source)
    scheme = source.split("://", 1)[0] if "://" in source else ""
    if scheme == "glue":
        raise ConfigError(
            "glue:// sources need the Glue layer, which this build does not include yet", uri=source
        )
    objects: list[tuple[str, int, str]]
    if scheme == "s3":
        root, objects = list_s3(source, s3)
    elif scheme in ("", "file"):
        path = source[len("file://") :] if scheme == "file" else source
        root, files = list_local(path)
        objects = [(f, *stat_local(f)) for f in files]
    else:
        raise ConfigError(f"unsupported URI scheme {scheme!r}", uri=source)
    fmt_name = format or detect_format([o[0] for o in objects])
    fmt = get_format(fmt_name)
    options: dict[str, Any] = {}
    if columns is not None:
        options["columns"] = list(columns)
    options = fmt.validate_options(options)
    keys, sizes, stamps, counts = [], [], [], []
    for uri, size, stamp in objects:
        keys.append(_relative(uri, root))
        sizes.append(size)
        stamps.append(stamp)
        counts.append(fmt.count(uri, size, stamp, options, s3))
    return Manifest(
        source=source,
        format=fmt_name,
        root=root,
        keys=keys,
        sizes=sizes,
        stamps=stamps,
        counts=counts,
        options=options,
    )


def _relative(uri: str, root: str) -> str:
    if not root:
        return uri
    if uri.startswith("s3://"):
        return uri[len(root) :].lstrip("/")
    return os.path.relpath(uri, root)


class Dataset:
    """Random access to the samples of a manifest (see module docstring)."""

    def __init__(self, manifest: Manifest, s3: S3Config | None = None) -> None:
        self.manifest = manifest
        self.s3 = s3
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
        r = self.format.open(self.manifest.shard(shard, self.s3), self.manifest.options)
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

    def prefetch(self, shards: np.ndarray) -> None:
        """Let the format fetch what a batch touching ``shards`` needs, all at once."""
        if type(self.format).prefetch is Format.prefetch:
            return  # nothing to fetch ahead: keep the per-batch hot path free of it
        m = self.manifest
        self.format.prefetch([m.shard(int(s), self.s3) for s in dict.fromkeys(shards.tolist())])

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
        return {"manifest": self.manifest, "s3": self.s3}  # no credentials in either

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["manifest"], state.get("s3"))  # type: ignore[misc]

    def __repr__(self) -> str:
        m = self.manifest
        return (
            f"Dataset({m.source!r}, format={m.format!r}, samples={len(self)}, "
            f"shards={m.num_shards}, fingerprint={m.fingerprint[:12]})"
        )
