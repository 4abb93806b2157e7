"""Formats layer: random access to the samples inside a shard."""

from __future__ import annotations

from ..errors import ConfigError
from .base import Format, Sample, ShardReader
from .csv import CsvFormat
from .jsonl import JsonlFormat
from .parquet import ParquetFormat
from .raw import RawFormat
from .synthetic import SyntheticFormat
from .tar import TarFormat

__all__ = ["FORMATS", "Format", "Sample", "ShardReader", "detect_format", "get_format"]

FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        RawFormat(),
        TarFormat(),
        ParquetFormat(),
        JsonlFormat(),
        CsvFormat(),
        SyntheticFormat(),
    )
}


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(f"unknown format {name!r}; known: {sorted(FORMATS)}") from None


def detect_format(paths: list[str]) -> str:
    """The format every path's suffix points to, or ``raw`` when none claims them."""
    found = set()
    for p in paths:
        low = p.lower()
        name = next(
            (f.name for f in FORMATS.values() if f.suffixes and low.endswith(f.suffixes)),
            "raw",
        )
        found.add(name)
    if len(found) == 1:
        return found.pop()
    raise ConfigError(f"source mixes shard formats {sorted(found)}; pass format= explicitly")
