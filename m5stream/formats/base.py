"""What a format is: how many samples a shard holds, and random access to them.

A :class:`Format` is stateless and shared; :meth:`Format.open` returns a :class:`ShardReader`
that a worker keeps open while it reads that shard. ``read(i)`` returns the sample's key and
fields: a ``dict[str, bytes | str | number | numpy array]``. Readers raise
:class:`m5stream.errors.CorruptData` (or ``NotFound`` ...) naming the shard URI and the sample
key or byte range.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from ..batches.columns import ColumnBlock
from ..catalog.manifest import ShardInfo
from ..errors import ConfigError, CorruptData, Unsupported
from ..storage.s3 import S3Config
from .caps import Fetch, FormatCaps

__all__ = [
    "Format",
    "Sample",
    "ShardReader",
    "check_unique_columns",
    "expression_columns",
    "matching_rows",
]

Sample = dict[str, Any]


def check_unique_columns(names: list[str], what: str, uri: str) -> None:
    """Raise :class:`CorruptData` if a table's column ``names`` repeat one: a sample is a dict,
    so two columns of one name cannot both be its fields (``what`` says where, e.g.
    ``"CSV header"``)."""
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CorruptData(f"{what} names column(s) {dup} more than once", uri=uri)


class ShardReader(ABC):
    """Random access to the samples of one shard."""

    def __init__(self, shard: ShardInfo, options: dict[str, Any]) -> None:
        self.shard = shard
        self.options = options

    @abstractmethod
    def read(self, local: int) -> tuple[str, Sample]:
        """``(key, fields)`` of sample ``local`` (0-based within the shard)."""

    def read_fetched(self, local: int, fetched: Any) -> tuple[str, Sample]:
        """:meth:`read`, given what ``Format.prefetch`` fetched for this shard (the payload,
        or the exception its fetch ended with)."""
        return self.read(local)

    def block_at(self, local: int) -> ColumnBlock | None:
        """Column-wise formats: the decoded unit holding sample ``local`` (kept until another
        unit is asked for), whose columns hold exactly the values :meth:`read` gives row by
        row (see ``m5stream.batches.columns``); ``None``: the format is read row by row."""
        return None

    def fetch_unit(self, unit: int) -> Fetch | None:
        """Start fetching what decoding unit ``unit`` needs (e.g. S3 byte ranges), without
        waiting; the handle goes to :meth:`decode_unit`. ``None``: nothing to start."""
        return None

    def decode_unit(self, unit: int, fetched: Fetch | None = None) -> ColumnBlock:
        """Column-wise formats: decode unit ``unit`` afresh (nothing cached, so a read-ahead
        thread can use its own reader while the trainer uses another), with what
        :meth:`fetch_unit` started, if anything."""
        raise NotImplementedError(f"{type(self).__name__} has no decode units")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files or caches."""


class Format(ABC):
    """A shard layout (raw, tar, parquet, jsonl, synthetic)."""

    name: str = ""
    #: file suffixes that select this format when ``format=`` is not given
    suffixes: tuple[str, ...] = ()
    #: modules its readers import (preloaded into the forkserver that starts the workers)
    modules: tuple[str, ...] = ()
    #: what the format can do; the execution layer chooses its path from this alone
    caps: FormatCaps = FormatCaps()

    def validate_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Normalise and check format options (e.g. ``columns``); stored in the manifest."""
        return options

    @abstractmethod
    def count(
        self, uri: str, size: int, stamp: str, options: dict[str, Any], s3: S3Config | None = None
    ) -> int:
        """Number of samples in the shard (may build and cache an index)."""

    def count_many(
        self,
        objects: list[tuple[str, int, str]],
        options: dict[str, Any],
        s3: S3Config | None = None,
    ) -> list[int]:
        """:meth:`count` for many ``(uri, size, stamp)`` (formats may fetch concurrently)."""
        return [self.count(uri, size, stamp, options, s3) for uri, size, stamp in objects]

    @abstractmethod
    def open(self, shard: ShardInfo, options: dict[str, Any]) -> ShardReader:
        """A reader for ``shard``."""

    def unit_starts(self, shard: ShardInfo, options: dict[str, Any]) -> Any:
        """First rows of the shard's decode units (Parquet row groups), for formats whose
        ``caps.decode_units`` is set (reading one sample decodes a whole unit); ``None`` for
        the others. Batches of one unit go to one worker, so a unit is decoded once."""
        return None

    def select_rows(self, shard: ShardInfo, options: dict[str, Any], expr: Any) -> np.ndarray:
        """The rows (sorted int64 local indices) of ``shard`` for which the pyarrow compute
        expression ``expr`` holds, reading as little as the format allows (Parquet: only the
        column chunks ``expr`` references). Formats without a columnar reading raise
        :class:`Unsupported`."""
        raise Unsupported(f"filter= is not supported for {self.name} shards", uri=shard.uri)

    def prefetch(self, shards: list[ShardInfo]) -> dict[str, Any]:
        """Formats with ``caps.batch_fetch``: fetch what reading these shards needs, all at
        once, as ``{uri: payload or the error}`` for the readers (called once per batch)."""
        started = self.start_prefetch(shards)
        return started() if started is not None else {}

    def start_prefetch(self, shards: list[ShardInfo]) -> Callable[[], dict[str, Any]] | None:
        """:meth:`prefetch` in two halves: the fetches start now, and the returned function
        (called once, from any thread) waits for them; ``None``: nothing to fetch."""
        return None


def expression_columns(expr: Any, schema: Any, uri: str) -> list[str]:
    """The columns of ``schema`` (a pyarrow schema) that ``expr`` references: those without
    which it cannot be evaluated (tried on empty tables: no data is read)."""
    empty = schema.empty_table()
    try:
        empty.filter(expr)
    except Exception as exc:
        raise ConfigError(
            f"filter {expr} cannot be evaluated on the columns {schema.names}: {exc}", uri=uri
        ) from None
    need = []
    for name in schema.names:
        try:
            empty.drop_columns([name]).filter(expr)
        except Exception:
            need.append(name)
    return need


def matching_rows(table: Any, expr: Any, uri: str) -> np.ndarray:
    """Row numbers of ``table`` where ``expr`` holds (sorted int64)."""
    import pyarrow as pa  # pyarrow (heavy) only when a filter is evaluated

    n = table.num_rows
    numbered = table.append_column("__m5_row__", pa.array(np.arange(n, dtype=np.int64)))
    try:
        kept = numbered.filter(expr).column("__m5_row__")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise ConfigError(f"filter {expr} cannot be evaluated: {exc}", uri=uri) from None
    return np.asarray(kept.to_numpy(), dtype=np.int64)
