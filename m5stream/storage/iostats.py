"""Counters of the S3 requests the calling thread made, by operation, and the body bytes.

The S3 client (:mod:`m5stream.storage.s3`) counts each request it sends (retries included)
with :func:`count_request`, each one it sends again with :func:`count_retry` (``retries``),
and each body it receives with :func:`count_bytes`. Readers take
:func:`io_counters` snapshots around a piece of work and report :func:`io_delta`: a worker
the delta of each batch, which the loader sums into ``stats["s3"]`` (e.g. to check that a
partition filter really read fewer objects). The counters are per thread, so that a
background prefetch thread's requests are not counted twice; :func:`io_changes` lets a
per-batch caller skip the copy when nothing was requested.

A mixture's reads count per source the same way (:func:`count_source`: keys
``source/NAME/FIELD``, e.g. samples, bytes, read and transform nanoseconds), so that they
come back from the workers with each batch's delta; the loader moves them into
``stats["sources"]``.
"""

from __future__ import annotations

import threading

from ..stats import SOURCE_PREFIX

__all__ = [
    "add_io",
    "count_bytes",
    "count_request",
    "count_retry",
    "count_source",
    "io_changes",
    "io_counters",
    "io_delta",
]

_IO = threading.local()


def _counters() -> dict[str, int]:
    d: dict[str, int] | None = getattr(_IO, "d", None)
    if d is None:
        d = _IO.d = {}
    return d


def _add(name: str, n: int) -> None:
    d = _counters()
    d[name] = d.get(name, 0) + n
    _IO.n = getattr(_IO, "n", 0) + 1  # what io_changes() reports


def count_request(operation: str) -> None:
    """One ``operation`` (``GetObject``, ``HeadObject`` ...) request sent by this thread."""
    _add(operation, 1)


def count_retry() -> None:
    """One request of this thread that failed and is sent again (kept as ``retries``)."""
    _add("retries", 1)


def count_bytes(nbytes: int) -> None:
    """``nbytes`` of response body received by this thread."""
    _add("bytes", nbytes)


def count_source(name: str, field: str, n: int) -> None:
    """``n`` more of ``field`` (``samples``, ``bytes``, ``read_ns``, ``transform_ns``) for
    mixture source ``name``."""
    _add(f"{SOURCE_PREFIX}{name}/{field}", n)


def add_io(delta: dict[str, int]) -> None:
    """Count another thread's :func:`io_delta` as this thread's (work it farmed out)."""
    for k, v in delta.items():
        _add(k, v)


def io_counters() -> dict[str, int]:
    """A copy of the calling thread's S3 counters: requests per operation, plus ``bytes``."""
    return dict(_counters())


def io_delta(before: dict[str, int], after: dict[str, int] | None = None) -> dict[str, int]:
    """``after - before`` of two :func:`io_counters` snapshots (``after``: now); zeros left out."""
    now = io_counters() if after is None else after
    return {k: v - before.get(k, 0) for k, v in now.items() if v != before.get(k, 0)}


def io_changes() -> int:
    """A number that changes whenever the calling thread's counters do: a per-batch caller
    compares it instead of copying the counters when nothing was requested."""
    n: int = getattr(_IO, "n", 0)
    return n
