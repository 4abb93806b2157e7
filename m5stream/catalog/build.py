"""Source -> manifest: list a local or ``s3://`` source and count the samples of every shard.

:func:`resolve_source` lists the objects (through :mod:`~m5stream.catalog.resolve` and
:mod:`~m5stream.catalog.s3list`, i.e. the storage layer) and :func:`build_manifest` turns
``(uri, size, stamp)`` objects into a :class:`~m5stream.catalog.manifest.Manifest`, keys
relative to the source's root. Counting a shard's samples is the format's business, and
formats sit above the catalog (they read :class:`~m5stream.catalog.manifest.ShardInfo`), so
the caller hands in the format registry as a :data:`FormatLookup` (and, where the source does
not name its format, a :data:`FormatDetect`): the catalog itself imports no format.

:func:`shared_manifest` lists once per job: rank 0 resolves and writes the manifest to a
path, every other process (and later runs) reads it from there.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError, NotFound
from ..storage.local import stat_local
from ..storage.s3 import S3Config, parse_s3_uri
from .manifest import Manifest
from .resolve import list_files, list_local
from .s3list import head_s3, list_s3

__all__ = [
    "FormatDetect",
    "FormatLookup",
    "ShardCounter",
    "build_manifest",
    "list_paths",
    "list_source",
    "resolve_source",
    "shared_manifest",
]

#: ``(uri, size, stamp)`` of one listed object (the stamp: an ETag or a local mtime/inode)
Object = tuple[str, int, str]


class ShardCounter(Protocol):
    """What the catalog needs of a format (:class:`m5stream.formats.Format` is one)."""

    def validate_options(self, options: dict[str, Any]) -> dict[str, Any]: ...

    def count_many(
        self, objects: list[Object], options: dict[str, Any], s3: S3Config | None = None
    ) -> list[int]: ...


#: a format's name -> the format (``m5stream.formats.get_format``); raises ConfigError if unknown
FormatLookup = Callable[[str], ShardCounter]
#: listed URIs -> the name of the one format they are in (``m5stream.formats.detect_format``)
FormatDetect = Callable[[list[str]], str]


def list_source(source: str, s3: S3Config | None = None) -> tuple[str, list[Object]]:
    """``(root, objects)`` of a local (plain path or ``file://``) or ``s3://`` source, in the
    source's order, every object under ``root``."""
    scheme = source.split("://", 1)[0] if "://" in source else ""
    if scheme == "s3":
        return list_s3(source, s3)
    if scheme in ("", "file"):
        path = source[len("file://") :] if scheme == "file" else source
        root, files = list_local(path)
        return root, [(f, *stat_local(f)) for f in files]
    raise ConfigError(f"unsupported URI scheme {scheme!r}", uri=source)


def list_paths(paths: list[str], s3: S3Config | None = None) -> tuple[str, list[Object]]:
    """``(root, objects)`` of a list source: local files or ``s3://`` objects named one by
    one, in the list's order (each taken literally: no pattern, directory or prefix)."""
    if not paths:
        raise ConfigError("a list source is empty: name at least one file or object")
    schemes = {p.split("://", 1)[0] if "://" in p else "" for p in paths}
    bad = sorted(schemes - {"", "file", "s3"})
    if bad:
        raise ConfigError(f"unsupported URI scheme {bad[0]!r} in a list source")
    if "s3" in schemes and len(schemes) > 1:
        raise ConfigError("a list source mixes local paths and s3:// URIs")
    remote = "s3" in schemes
    if not remote:
        paths = [p[len("file://") :] if p.startswith("file://") else p for p in paths]
    # a shard listed twice would be read twice per epoch: surely a mistake in the list
    seen: set[str] = set()
    for p in paths:
        name = (
            "s3://{}/{}".format(*parse_s3_uri(p))
            if remote
            else os.path.abspath(os.path.expanduser(p))
        )
        if name in seen:
            raise ConfigError(f"a list source names {name!r} more than once", uri=p)
        seen.add(name)
    if remote:
        return head_s3(paths, s3)
    root, files = list_files(paths)
    return root, [(f, *stat_local(f)) for f in files]


def resolve_source(
    source: str,
    format: str | None,
    columns: list[str] | None,
    s3: S3Config | None,
    format_options: dict[str, Any] | None,
    *,
    formats: FormatLookup,
    detect: FormatDetect,
    paths: list[str] | None = None,
) -> Manifest:
    """The manifest of a listed source (or, with ``paths``, of a list source whose manifest
    records ``source``): its format ``format`` (else detected from the objects' names),
    ``columns`` projected, the format's options validated."""
    root, objects = list_source(source, s3) if paths is None else list_paths(paths, s3)
    fmt_name = format or detect([o[0] for o in objects])
    options: dict[str, Any] = dict(format_options or {})
    if columns is not None:
        options["columns"] = list(columns)
    options = formats(fmt_name).validate_options(options)
    return build_manifest(source, fmt_name, root, objects, options, s3, formats=formats)


def build_manifest(
    source: str,
    fmt_name: str,
    root: str,
    objects: list[Object],
    options: dict[str, Any],
    s3: S3Config | None = None,
    *,
    formats: FormatLookup,
) -> Manifest:
    """The manifest of ``objects`` (all under ``root``) in one format; every shard's samples
    are counted (footers/indexes fetched concurrently where the format can)."""
    counts = formats(fmt_name).count_many(objects, options, s3)
    return Manifest(
        source=source,
        format=fmt_name,
        root=root,
        keys=[_relative(o[0], root) for o in objects],
        sizes=[o[1] for o in objects],
        stamps=[o[2] for o in objects],
        counts=counts,
        options=options,
    )


def _relative(uri: str, root: str) -> str:
    if not root:
        return uri
    if uri.startswith("s3://"):
        return uri[len(root) :].lstrip("/")
    return os.path.relpath(uri, root)


def shared_manifest(source: str, path: Path, resolve: Callable[[], Manifest]) -> Manifest:
    """The manifest of ``source`` kept at ``path``: rank 0 (``$RANK``, default 0) resolves it
    and writes it (atomically) when it is not there yet; the others wait for the file, up to
    ``$M5STREAM_MANIFEST_WAIT`` seconds (default 600), and read it. A manifest made for
    another source is refused."""
    if not path.exists() and int(os.environ.get("RANK", "0") or 0) == 0:
        m = resolve()
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
