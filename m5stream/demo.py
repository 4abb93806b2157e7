"""The embedded demo dataset: photo-like JPEGs in webdataset tar shards, generated once.

``demo_dataset()`` writes 8 shards x 64 samples into ``<cache>/demo-v2/`` the first time (a few
seconds, offline: nothing is downloaded) and returns the brace pattern of the shards. Each
sample is a ``jpg`` - a 400-640 px wide, seeded, photo-like image (smooth colour fields, soft
shapes and sensor-like grain, JPEG quality 90, 25-65 KB) - and a ``cls``
label, so the ``imagenet-train`` preset exercises the real decode and crop path. Needs Pillow
to encode (``m5stream[image]``).
"""

from __future__ import annotations

import io
import os
import tarfile

import numpy as np

from ._cache import cache_dir
from .errors import ConfigError

__all__ = ["demo_dataset", "demo_photo", "write_tar_shard"]

SHARDS = 8
PER_SHARD = 64


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


def _smooth(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """A smooth random field in [0, 1]: a coarse grid, bilinearly interpolated."""
    gh, gw = cells + 1, max(2, cells * w // h + 1)
    grid = rng.random((gh, gw))
    ys = np.linspace(0, gh - 1, h)
    xs = np.linspace(0, gw - 1, w)
    y0 = np.minimum(ys.astype(int), gh - 2)
    x0 = np.minimum(xs.astype(int), gw - 2)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a = grid[y0][:, x0]
    b = grid[y0][:, x0 + 1]
    c = grid[y0 + 1][:, x0]
    d = grid[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def demo_photo(seed: int) -> bytes:
    """One deterministic photo-like JPEG (drawn at half size, upscaled, then grained)."""
    try:
        from PIL import Image  # Pillow (optional) only when the demo set is made
    except ImportError:
        raise ConfigError("the demo dataset needs Pillow: pip install 'm5stream[image]'") from None
    rng = np.random.default_rng(seed)
    w = int(rng.integers(400, 641))
    h = int(w * rng.uniform(0.62, 0.8))
    sh, sw = h // 2, w // 2
    base = rng.random(3).astype(np.float32) * 200 + 30
    img = base * (0.55 + 0.9 * _smooth(rng, sh, sw, 3)[..., None].astype(np.float32))
    yy, xx = np.ogrid[0:sh, 0:sw]
    for _ in range(int(rng.integers(3, 8))):  # soft-edged objects with a light gradient
        cy, cx = rng.random() * sh, rng.random() * sw
        ry, rx = rng.uniform(0.08, 0.35) * sh, rng.uniform(0.08, 0.35) * sw
        d = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
        alpha = (np.clip(1.5 - d, 0, 1) * rng.uniform(0.5, 0.95)).astype(np.float32)[..., None]
        shade = (0.75 + 0.5 * (yy / sh)).astype(np.float32)[..., None]
        img = img * (1 - alpha) + (rng.random(3).astype(np.float32) * 255 * shade) * alpha
    small = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).resize(
        (w, h), Image.Resampling.BICUBIC
    )
    grain = rng.integers(-6, 7, (h, w, 1), dtype=np.int16)  # texture / sensor noise
    full = np.clip(np.asarray(small, dtype=np.int16) + grain, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(full).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def demo_dataset() -> str:
    root = cache_dir("demo-v2")
    done = root / "COMPLETE"
    pattern = str(root / f"shard-{{00000..{SHARDS - 1:05d}}}.tar")
    if done.exists():
        return pattern
    for s in range(SHARDS):
        keys, samples = [], []
        for i in range(PER_SHARD):
            n = s * PER_SHARD + i
            keys.append(f"sample{n:07d}")
            samples.append({"jpg": demo_photo(20261128 + n), "cls": str(n * 7919 % 1000).encode()})
        write_tar_shard(str(root / f"shard-{s:05d}.tar"), samples, keys)
    done.write_text("ok\n")
    return pattern
