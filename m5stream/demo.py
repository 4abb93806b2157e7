"""The embedded demo dataset: webdataset tar shards generated once, deterministically.

``demo_dataset()`` writes 8 shards x 256 samples into ``<cache>/demo-v1/`` the first time (a
few seconds, offline) and returns the brace pattern of the shards. Each sample has a ``bin``
payload of 8-64 KiB of seeded random bytes (the size range of web photos) and a ``cls`` label.
"""

from __future__ import annotations

import io
import os
import tarfile

import numpy as np

from ._cache import cache_dir

__all__ = ["demo_dataset", "write_tar_shard"]

SHARDS = 8
PER_SHARD = 256


def write_tar_shard(path: str, samples: list[dict[str, bytes]], keys: list[str]) -> None:
    """Write one webdataset-layout tar shard (members ``<key>.<field>``) atomically."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tf:
        for key, sample in zip(keys, samples):
            for field, data in sample.items():
                info = tarfile.TarInfo(f"{key}.{field}")
                info.size = len(data)
                info.mtime = 0
                tf.addfile(info, io.BytesIO(data))
    os.replace(tmp, path)


def demo_dataset() -> str:
    root = cache_dir("demo-v1")
    done = root / "COMPLETE"
    pattern = str(root / f"shard-{{00000..{SHARDS - 1:05d}}}.tar")
    if done.exists():
        return pattern
    rng = np.random.default_rng(20261127)
    for s in range(SHARDS):
        keys, samples = [], []
        for i in range(PER_SHARD):
            n = int(rng.integers(8 << 10, 64 << 10))
            keys.append(f"sample{s * PER_SHARD + i:07d}")
            samples.append(
                {
                    "bin": rng.integers(0, 256, n, dtype=np.uint8).tobytes(),
                    "cls": str(int(rng.integers(0, 1000))).encode(),
                }
            )
        write_tar_shard(str(root / f"shard-{s:05d}.tar"), samples, keys)
    done.write_text("ok\n")
    return pattern
