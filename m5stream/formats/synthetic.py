"""Synthetic samples computed from their index, for benchmarks and tests.

``synthetic://N?shard_size=S&shape=3x224x224&dtype=uint8``: N samples in shards of S. Each
sample is ``{"value": int64(index)}``; with ``shape`` it also carries ``"image"``, one of 16
pre-built arrays (``index % 16``, filled with that number) so producing a sample costs no
allocation: the stand-in for pre-decoded data in hand-off benchmarks.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

from ..catalog.manifest import Manifest, ShardInfo
from ..errors import ConfigError
from ..storage.s3 import S3Config
from .base import Format, Sample, ShardReader

__all__ = ["SyntheticFormat", "synthetic_manifest"]


def synthetic_manifest(source: str) -> Manifest:
    u = urlparse(source)
    try:
        n = int(u.netloc or u.path.strip("/"))
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        shard_size = int(q.get("shard_size", 1000))
    except ValueError:
        raise ConfigError(
            "synthetic source must look like synthetic://N?shard_size=S", uri=source
        ) from None
    if n < 0 or shard_size <= 0:
        raise ConfigError("synthetic source needs N >= 0 and shard_size > 0", uri=source)
    full, rest = divmod(n, shard_size)
    num = full + (1 if rest else 0)
    counts = np.full(num, shard_size, dtype=np.int64)
    if rest:
        counts[-1] = rest
    options: dict[str, Any] = {k: q[k] for k in ("shape", "dtype") if k in q}
    return Manifest(
        source=source,
        format="synthetic",
        root="synthetic://",
        keys=[f"shard-{i:08d}" for i in range(num)],
        sizes=np.zeros(num, dtype=np.int64),
        stamps=["0"] * num,
        counts=counts,
        options=options,
    )


@functools.lru_cache(maxsize=4)
def _pool(shape: str, dtype: str) -> list[np.ndarray]:
    # one pool per process and shape: opening a shard must not allocate (shuffles open many)
    dims = tuple(int(d) for d in shape.split("x"))
    out = []
    for v in range(16):
        a = np.full(dims, v, dtype=np.dtype(dtype))
        a.flags.writeable = False
        out.append(a)
    return out


class SyntheticReader(ShardReader):
    def __init__(self, shard: ShardInfo, options: dict[str, Any]) -> None:
        super().__init__(shard, options)
        shape = options.get("shape")
        self.pool = _pool(str(shape), str(options.get("dtype", "uint8"))) if shape else None

    def read(self, local: int) -> tuple[str, Sample]:
        index = self.shard.first_sample + local
        sample: Sample = {"value": np.int64(index)}
        if self.pool is not None:
            sample["image"] = self.pool[index % 16]
        return f"{self.shard.key}/{local}", sample


class SyntheticFormat(Format):
    name = "synthetic"

    def count(
        self, uri: str, size: int, stamp: str, options: dict[str, Any], s3: S3Config | None = None
    ) -> int:
        raise NotImplementedError("synthetic manifests are built by synthetic_manifest()")

    def open(self, shard: ShardInfo, options: dict[str, Any]) -> ShardReader:
        return SyntheticReader(shard, options)
