"""Resolve an ``s3://`` source into objects: brace patterns, globs, prefixes, single keys.

A prefix (``s3://bucket/train/``) is listed with ListObjectsV2, fanned out over its common
prefixes (one listing per "sub-directory", run concurrently) so that large buckets do not list
page by page in series. A brace pattern is one HEAD per expanded key, concurrently. A glob lists
the prefix before its first wildcard and filters with ``fnmatch``. Order: lexicographic by key.
"""

from __future__ import annotations

import fnmatch
import glob
import posixpath
from concurrent.futures import ThreadPoolExecutor

from ..errors import ConfigError, NotFound
from ..storage.s3 import ObjectInfo, S3Client, S3Config, client, parse_s3_uri
from .resolve import expand_braces

__all__ = ["head_s3", "list_prefix", "list_s3"]

_THREADS = 16


def list_prefix(c: S3Client, bucket: str, prefix: str) -> list[ObjectInfo]:
    """Every object under ``prefix`` (directory markers left out), fanned out by sub-prefix."""
    found: list[ObjectInfo] = []
    subs: list[str] = []
    for item in c.list(bucket, prefix, delimiter="/"):
        if isinstance(item, str):
            subs.append(item)
        elif not (item.key.endswith("/") and item.size == 0):
            found.append(item)
    if subs:
        with ThreadPoolExecutor(min(_THREADS, len(subs))) as pool:
            for part in pool.map(lambda p: list_prefix(c, bucket, p), subs):
                found.extend(part)
    found.sort(key=lambda o: o.key)
    return found


def list_s3(source: str, s3: S3Config | None = None) -> tuple[str, list[tuple[str, int, str]]]:
    """``(root, [(uri, size, etag)])`` with every uri under ``root``."""
    c = client(s3)
    objects: list[tuple[str, int, str]] = []
    roots: list[str] = []
    singles: list[tuple[str, str]] = []
    for pat in expand_braces(source):
        bucket, key = parse_s3_uri(pat)
        if glob.has_magic(key):
            cut = min(i for i, ch in enumerate(key) if ch in "*?[")
            prefix = key[:cut]
            hits = [o for o in list_prefix(c, bucket, prefix) if fnmatch.fnmatchcase(o.key, key)]
            if not hits:
                raise NotFound("no object matches the pattern", uri=pat)
            objects.extend((f"s3://{bucket}/{o.key}", o.size, o.etag) for o in hits)
            roots.append(f"{bucket}/{posixpath.dirname(prefix)}".rstrip("/"))
        elif key == "" or key.endswith("/"):
            hits = list_prefix(c, bucket, key)
            if not hits:
                raise NotFound("no object under the prefix", uri=pat)
            objects.extend((f"s3://{bucket}/{o.key}", o.size, o.etag) for o in hits)
            roots.append(f"{bucket}/{key}".rstrip("/"))
        else:
            singles.append((bucket, key))
            roots.append(f"{bucket}/{posixpath.dirname(key)}".rstrip("/"))
    objects.extend(_head_many(c, singles))
    return _root(roots), objects


def head_s3(uris: list[str], s3: S3Config | None = None) -> tuple[str, list[tuple[str, int, str]]]:
    """``(root, [(uri, size, etag)])`` of the objects ``uris`` names, literally (no pattern,
    no prefix listing) and in that order; a missing object is NotFound naming it."""
    singles: list[tuple[str, str]] = []
    for uri in uris:
        bucket, key = parse_s3_uri(uri)
        if key == "" or key.endswith("/"):
            raise ConfigError(
                "a list source names objects, not prefixes (pass a prefix on its own)", uri=uri
            )
        singles.append((bucket, key))
    roots = [f"{b}/{posixpath.dirname(k)}".rstrip("/") for b, k in singles]
    return _root(roots), _head_many(client(s3), singles)


def _head_many(c: S3Client, singles: list[tuple[str, str]]) -> list[tuple[str, int, str]]:
    """``(uri, size, etag)`` of each ``(bucket, key)``, one HEAD each, concurrently."""
    if not singles:
        return []
    with ThreadPoolExecutor(min(_THREADS, len(singles))) as pool:
        infos = list(pool.map(lambda bk: c.head(*bk), singles))
    return [(f"s3://{b}/{i.key}", i.size, i.etag) for (b, _), i in zip(singles, infos)]


def _root(roots: list[str]) -> str:
    return "s3://" + posixpath.commonpath(roots) if len(roots) > 1 else "s3://" + roots[0]
