"""Geometry and layout transforms over a :class:`~.lazy.LazyImage`: each only updates the
lazy image's plan (crop box, output size, flip, normalisation, layout); the pixels are made
once, when the image is written (see :mod:`m5stream.transforms.image`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...errors import CorruptData
from ..base import Sample, Transform
from .lazy import lazy_image, size_pair

__all__ = [
    "CenterCrop",
    "Normalize",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "Resize",
    "ToCHW",
    "rrc_params",
]


class Resize(Transform):
    """torchvision ``Resize``: an int scales the shorter side to it (aspect kept, like
    torchvision: the longer side is ``int(size * long / short)``); ``(h, w)`` is exact."""

    def __init__(self, size: int | tuple[int, int] | list[int], key: str | None = None) -> None:
        self.size = size if isinstance(size, int) else tuple(size)
        self.key = key

    def args(self) -> dict[str, Any]:
        return {
            "size": self.size if isinstance(self.size, int) else list(self.size),
            "key": self.key,
        }

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        img = lazy_image(sample, self.key, "Resize")
        w, h = img.size
        if isinstance(self.size, int):
            if w <= h:
                nw, nh = self.size, int(self.size * h / w)
            else:
                nw, nh = int(self.size * w / h), self.size
        else:
            nh, nw = self.size
        img.resize(nw, nh)
        return sample


class CenterCrop(Transform):
    """torchvision ``CenterCrop`` (offsets ``round((W - w) / 2)``); the crop must fit."""

    def __init__(self, size: int | tuple[int, int] | list[int], key: str | None = None) -> None:
        self.size = size_pair(size)
        self.key = key

    def args(self) -> dict[str, Any]:
        return {"size": list(self.size), "key": self.key}

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        img = lazy_image(sample, self.key, "CenterCrop")
        ch, cw = self.size
        w, h = img.size
        if cw > w or ch > h:
            raise CorruptData(
                f"CenterCrop({ch}x{cw}) is larger than the {h}x{w} image", key=img.key
            )
        img.crop(int(round((w - cw) / 2.0)), int(round((h - ch) / 2.0)), cw, ch)
        return sample


def rrc_params(
    width: int,
    height: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    rng: np.random.Generator | None,
) -> tuple[int, int, int, int]:
    """torchvision ``RandomResizedCrop.get_params`` -> (top, left, h, w) with our generator.

    Without ``rng`` (eval) it returns torchvision's fallback centre crop.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    if rng is not None:
        for _ in range(10):
            target_area = area * rng.uniform(scale[0], scale[1])
            aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(rng.integers(0, height - h + 1))
                left = int(rng.integers(0, width - w + 1))
                return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class RandomResizedCrop(Transform):
    """torchvision ``RandomResizedCrop`` (bilinear) with the per-sample generator."""

    wants_rng = True

    def __init__(
        self,
        size: int | tuple[int, int] | list[int],
        scale: tuple[float, float] | list[float] = (0.08, 1.0),
        ratio: tuple[float, float] | list[float] = (3 / 4, 4 / 3),
        key: str | None = None,
    ) -> None:
        self.size = size_pair(size)
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.key = key

    def args(self) -> dict[str, Any]:
        return {
            "size": list(self.size),
            "scale": list(self.scale),
            "ratio": list(self.ratio),
            "key": self.key,
        }

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        img = lazy_image(sample, self.key, "RandomResizedCrop")
        w, h = img.size
        top, left, ch, cw = rrc_params(w, h, self.scale, self.ratio, rng)
        img.crop(left, top, cw, ch)
        img.resize(self.size[1], self.size[0])
        return sample


class RandomHorizontalFlip(Transform):
    """Flip with probability ``p`` (never without ``rng``, i.e. at inference)."""

    wants_rng = True

    def __init__(self, p: float = 0.5, key: str | None = None) -> None:
        self.p = float(p)
        self.key = key

    def args(self) -> dict[str, Any]:
        return {"p": self.p, "key": self.key}

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        img = lazy_image(sample, self.key, "RandomHorizontalFlip")
        if rng is not None and rng.random() < self.p:
            img.flip = not img.flip
        return sample


class Normalize(Transform):
    """``(x / 255 - mean) / std`` per channel, output CHW ``float32`` or ``float16``."""

    def __init__(
        self,
        mean: tuple[float, ...] | list[float] = (0.485, 0.456, 0.406),
        std: tuple[float, ...] | list[float] = (0.229, 0.224, 0.225),
        dtype: str = "float32",
        key: str | None = None,
    ) -> None:
        if dtype not in ("float32", "float16"):
            raise ValueError("dtype must be 'float32' or 'float16'")
        if len(mean) != 3 or len(std) != 3:
            raise ValueError("mean and std need 3 values (RGB)")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.dtype = dtype
        self.key = key

    def args(self) -> dict[str, Any]:
        return {
            "mean": list(self.mean),
            "std": list(self.std),
            "dtype": self.dtype,
            "key": self.key,
        }

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        img = lazy_image(sample, self.key, "Normalize")
        img.mode = "f32_chw" if self.dtype == "float32" else "f16_chw"
        img.dtype = np.dtype(self.dtype)
        img.mean, img.std = self.mean, self.std
        return sample


class ToCHW(Transform):
    """uint8 output in CHW layout (default output is uint8 HWC)."""

    def __init__(self, key: str | None = None) -> None:
        self.key = key

    def args(self) -> dict[str, Any]:
        return {"key": self.key}

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        img = lazy_image(sample, self.key, "ToCHW")
        img.mode = "u8_chw"
        img.dtype = np.dtype(np.uint8)
        return sample
