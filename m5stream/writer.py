"""Writing datasets: ``write_shards`` and the ``m5stream shard`` command.

Samples (dicts of fields plus ``__key__``) are written in order into shards of
``shard_size`` samples - webdataset tar (``<key>.<field>`` members) or Parquet (one row per
sample) - named ``shard-00000.tar``, ``shard-00001.tar``, ... in a local directory or under an
``s3://bucket/prefix``. Each shard is built in a local temporary file and, for S3, uploaded by
the CRT (multipart above the part size, parts in parallel). The return value is the brace
pattern that ``m5.dataset`` reads back.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .storage.blobs import is_s3
from .storage.s3 import client, parse_s3_uri

__all__ = ["write_shards"]


def _field_bytes(name: str, value: Any, key: str) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (int, float)) or hasattr(value, "item"):
        return str(value.item() if hasattr(value, "item") else value).encode()
    raise ConfigError(
        f"field {name!r} of sample {key!r} is {type(value).__name__}; tar shards "
        "hold bytes, str or numbers"
    )


def _chunks(samples: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for s in samples:
        chunk.append(s)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _write_tar(path: str, samples: list[dict[str, Any]], start: int) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for i, s in enumerate(samples):
            key = str(s.get("__key__", f"{start + i:09d}"))
            if "." in os.path.basename(key):
                raise ConfigError(
                    f"sample key {key!r} has a dot in its name, which webdataset "
                    "uses to separate the field"
                )
            if "\0" in key:  # tar cuts a member name at NUL: the key would change silently
                raise ConfigError(f"sample key {key!r} holds a NUL, which tar names cannot")
            for name, value in s.items():
                if name.startswith("__"):
                    continue
                if "\0" in name:
                    raise ConfigError(f"field {name!r} of sample {key!r} holds a NUL")
                data = _field_bytes(name, value, key)
                info = tarfile.TarInfo(f"{key}.{name}")
                info.size = len(data)
                info.mtime = 0
                tf.addfile(info, io.BytesIO(data))


def _write_parquet(path: str, samples: list[dict[str, Any]]) -> None:
    import pyarrow as pa  # pyarrow (heavy) only when Parquet is written
    import pyarrow.parquet as pq

    names = [k for k in samples[0] if k != "__index__"]
    table = pa.table({k: [s.get(k) for s in samples] for k in names})
    pq.write_table(table, path, row_group_size=min(len(samples), 10_000))


def write_shards(
    samples: Iterable[dict[str, Any]],
    dst: str,
    *,
    format: str = "tar",
    shard_size: int = 1000,
    prefix: str = "shard",
) -> str:
    """Write ``samples`` into shards under ``dst``; returns the pattern that reads them back."""
    if format not in ("tar", "parquet"):
        raise ConfigError(f"write_shards writes 'tar' or 'parquet', not {format!r}")
    if shard_size <= 0:
        raise ConfigError("shard_size must be positive")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", prefix):
        # the prefix is part of every shard's file name: it must not name another directory
        raise ConfigError(
            f"shard prefix {prefix!r} must be a plain name (letters, digits, '.', '_', '-')"
        )
    suffix = ".tar" if format == "tar" else ".parquet"
    remote = is_s3(dst)
    if not remote:
        Path(dst).mkdir(parents=True, exist_ok=True)
    n = 0
    start = 0
    with tempfile.TemporaryDirectory(prefix="m5shard-") as tmp:
        for n, chunk in enumerate(_chunks(samples, shard_size), start=1):
            name = f"{prefix}-{n - 1:05d}{suffix}"
            local = os.path.join(tmp, name) if remote else os.path.join(dst, name)
            try:
                if format == "tar":
                    _write_tar(local + ".part", chunk, start)
                else:
                    _write_parquet(local + ".part", chunk)
            except BaseException:
                # a refused key or field: leave no half-written shard behind
                Path(local + ".part").unlink(missing_ok=True)
                raise
            os.replace(local + ".part", local)
            if remote:
                bucket, key = parse_s3_uri(dst.rstrip("/") + "/" + name)
                client().put(bucket, key, path=local)
                os.unlink(local)
            start += len(chunk)
    if n == 0:
        raise ConfigError("no samples to write")
    return f"{dst.rstrip('/')}/{prefix}-{{00000..{n - 1:05d}}}{suffix}"
