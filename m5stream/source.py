"""``m5stream.dataset(source, ...)``: a source string, list, Glue table or manifest becomes a
:class:`~m5stream.dataset.Dataset`.

The source is resolved into a :class:`~m5stream.catalog.manifest.Manifest` once (listing,
counting samples, building shard indexes) by the catalog (:mod:`m5stream.catalog.build`,
:mod:`m5stream.catalog.glue`), which is handed this package's format registry to count
shards with. A Dataset pickles as its manifest and options.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .catalog.build import resolve_source, shared_manifest
from .catalog.glue import GlueTable, glue_manifest
from .catalog.manifest import Manifest
from .dataset import Dataset
from .errors import ConfigError
from .formats import detect_format, get_format
from .formats.synthetic import synthetic_manifest
from .selection import filtered
from .storage.s3 import S3Config

__all__ = ["dataset"]


def dataset(
    source: str | Sequence[str | os.PathLike[str]] | Manifest | GlueTable,
    *,
    format: str | None = None,
    columns: list[str] | None = None,
    where: str | None = None,
    filter: Any = None,
    options: dict[str, Any] | None = None,
    manifest: str | os.PathLike[str] | None = None,
    s3: S3Config | None = None,
) -> Dataset:
    """Describe a dataset.

    ``source`` is a directory, file, glob or brace pattern of local files, the same over
    ``s3://bucket/...`` (a prefix ending in ``/`` is listed), a
    ``synthetic://N?shard_size=S`` URI, a Glue Data Catalog table
    (``glue://DATABASE/TABLE[?catalog_id=...&region=...]`` or :class:`GlueTable`), or an
    already built :class:`Manifest`. A list (or tuple) of local file paths, or of ``s3://``
    object URIs, of one format is the dataset of those shards in that order (each taken
    literally: no pattern, no directory or prefix); its manifest's ``source`` is the list as
    JSON.

    ``columns`` projects fields (Parquet reads only those column chunks). ``where`` filters the
    partitions of a Glue table (a Glue partition expression, e.g. ``"dt >= '2024-01-01'"``,
    evaluated by Glue). ``options`` are format options (e.g. CSV ``delimiter``/``header``).

    ``manifest=PATH`` lists once per job: the first process (rank 0, from ``$RANK``) resolves
    the source and writes the manifest there; the others, and later runs, read it instead of
    listing again (they wait up to ``$M5STREAM_MANIFEST_WAIT`` seconds, default 600, for it).

    ``filter`` (a ``pyarrow.compute`` expression, e.g. ``pc.field("locale") == "ja_JP"``)
    keeps the rows where it holds, for Parquet, CSV and JSONL shards and Glue tables of them:
    it is evaluated once, reading only the columns it names where the format allows
    (:mod:`m5stream.selection`), the selected rows are cached with the shard indexes, and the
    dataset is then those rows (``len``, shuffles, resume and mixtures see only them). The
    filter is part of the fingerprint.

    ``s3=S3Config(endpoint=..., region=...)`` overrides the environment for this dataset: it
    travels with the dataset to every shard reader, in this process and in the workers.
    """
    if s3 is not None:
        s3 = s3.resolved()
    if isinstance(source, Manifest):
        return Dataset(source if filter is None else filtered(source, filter, s3), s3)
    if isinstance(source, str) and source.startswith("glue://"):
        source = GlueTable.parse(source)
    if isinstance(source, GlueTable):
        if format is not None or options:
            raise ConfigError("a Glue table's format and options come from the catalog")
        table = source
        resolve = lambda: glue_manifest(  # noqa: E731
            table, where=where, columns=columns, s3=s3, formats=get_format
        )
        uri = table.uri
    elif isinstance(source, str) and source:
        if where is not None:
            raise ConfigError("where= filters the partitions of glue:// tables only", uri=source)
        path = source
        resolve = lambda: _resolve(path, format, columns, s3, options)  # noqa: E731
        uri = source
    elif isinstance(source, (list, tuple)):
        if where is not None:
            raise ConfigError("where= filters the partitions of glue:// tables only")
        paths = [os.fspath(p) if isinstance(p, os.PathLike) else p for p in source]
        if not all(isinstance(p, str) and p for p in paths):
            raise ConfigError("a list source holds non-empty paths or s3:// URIs (strings)")
        uri = json.dumps(paths)
        resolve = lambda: resolve_source(  # noqa: E731
            uri, format, columns, s3, options, formats=get_format, detect=detect_format, paths=paths
        )
    else:
        raise ConfigError(
            "source must be a non-empty string, a list of paths, a GlueTable or a Manifest"
        )
    if filter is not None:
        unfiltered = resolve
        resolve = lambda: filtered(unfiltered(), filter, s3)  # noqa: E731
        uri = f"{uri}?filter={filter}"
    if manifest is not None:
        return Dataset(shared_manifest(uri, Path(manifest), resolve), s3)
    return Dataset(resolve(), s3)


def _resolve(
    source: str,
    format: str | None,
    columns: list[str] | None,
    s3: S3Config | None = None,
    format_options: dict[str, Any] | None = None,
) -> Manifest:
    """The manifest of a non-Glue source string: ``synthetic://`` is made by its format, any
    other is listed and counted by the catalog with this package's formats."""
    if source.startswith("synthetic://"):
        return synthetic_manifest(source)
    return resolve_source(
        source, format, columns, s3, format_options, formats=get_format, detect=detect_format
    )
