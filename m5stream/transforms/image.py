"""Image transforms, executed as one fused native call per image.

``DecodeImage`` does not decode: it reads the header and puts a :class:`LazyImage` in the
sample. ``Resize``, ``CenterCrop``, ``RandomResizedCrop`` and ``RandomHorizontalFlip`` only
update the lazy image's plan - a crop box in the original (EXIF-oriented) pixel grid, an output
size and a flip flag - and ``Normalize``/``ToCHW`` choose the output layout. The pixels are made
once, by ``m5stream._native.imgops``: for JPEG, decode of just the box at the smallest DCT scale
that covers the output, Pillow-exact bilinear resampling, flip, normalisation, written straight
into the destination (a row of a shared-memory batch slot in the loader). Other formats are
decoded by Pillow (pillow-simd where installed) and go through the same resample/write kernel.

Semantics (what a reference built from Pillow and torchvision's algorithms gives, see
``reference.py``): geometry follows torchvision - ``Resize(int)`` scales the shorter side,
``CenterCrop`` rounds offsets like torchvision, ``RandomResizedCrop`` uses torchvision's
``get_params`` with the per-sample generator - and a crop followed by a resize resamples the
crop box with edges clamped at the box, as ``crop().resize()`` does.

Eval behaviour (no ``rng``, i.e. at inference): ``RandomResizedCrop`` takes the same fallback
as torchvision's out-of-tries case - a centre crop of the largest box with an allowed aspect
ratio - resized to the output; ``RandomHorizontalFlip`` does not flip. Prefer an explicit eval
pipeline (``Resize`` + ``CenterCrop``).
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from .._native import imgops
from ..errors import CorruptData
from .base import LazyValue, Sample, Transform

__all__ = [
    "CenterCrop",
    "DecodeImage",
    "LazyImage",
    "Normalize",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "Resize",
    "ToCHW",
]

_JPEG_MAGIC = b"\xff\xd8\xff"
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's decompression-bomb limit


class LazyImage(LazyValue):
    """An image and the plan that will turn it into the output array."""

    __slots__ = (
        "box",
        "clip",
        "dct_scaling",
        "dtype",
        "fast",
        "flip",
        "jpeg",
        "key",
        "max_pixels",
        "mean",
        "mode",
        "orientation",
        "pixels",
        "resized",
        "size",
        "std",
    )

    def __init__(
        self,
        *,
        jpeg: bytes | None,
        pixels: np.ndarray | None,
        width: int,
        height: int,
        orientation: int,
        key: str,
        max_pixels: int,
        dct_scaling: bool,
        fast: bool = False,
    ) -> None:
        self.jpeg = jpeg
        self.pixels = pixels  # HxWx3 uint8 (already oriented) for non-JPEG sources
        self.orientation = orientation
        self.box = (0.0, 0.0, float(width), float(height))  # displayed coordinates
        self.clip = self.box  # where the resampling filter may read (see crop())
        self.resized = False
        self.size = (width, height)  # current (virtual) output size (w, h)
        self.flip = False
        self.mode = "u8_hwc"
        self.dtype = np.dtype(np.uint8)
        self.mean: tuple[float, ...] | None = None
        self.std: tuple[float, ...] | None = None
        self.key = key
        self.max_pixels = max_pixels
        self.dct_scaling = dct_scaling
        self.fast = fast

    # -- plan updates, in the current (virtual) image coordinates
    def crop(self, left: float, top: float, width: float, height: float) -> None:
        w, h = self.size
        if self.flip:  # the plan flips at the end: mirror the crop into unflipped coordinates
            left = w - left - width
        x0, y0, x1, y1 = self.box
        sx, sy = (x1 - x0) / w, (y1 - y0) / h
        self.box = (
            x0 + left * sx,
            y0 + top * sy,
            x0 + (left + width) * sx,
            y0 + (top + height) * sy,
        )
        if not self.resized:
            # crop, then resize: the filter stops at the crop's edges (Pillow crop().resize())
            self.clip = self.box
        # else resize, then crop: the pixels are those of the whole resized image, so the
        # filter still reaches past the crop's edges, up to the previous clip
        self.resized = False
        self.size = (int(round(width)), int(round(height)))

    def resize(self, width: int, height: int) -> None:
        self.size = (int(width), int(height))
        self.resized = True

    @property
    def shape(self) -> tuple[int, ...]:
        w, h = self.size
        return (h, w, 3) if self.mode == "u8_hwc" else (3, h, w)

    def write_into(self, out: np.ndarray) -> None:
        """Make the pixels into ``out`` (shape ``self.shape``, dtype ``self.dtype``)."""
        w, h = self.size
        common: dict[str, Any] = {
            "flip": self.flip,
            "mode": self.mode,
            "mean": self.mean,
            "std": self.std,
            "clip": self.clip,
        }
        try:
            if self.jpeg is not None:
                imgops.decode_jpeg_into(
                    self.jpeg,
                    out,
                    self.box,
                    w,
                    h,
                    max_pixels=self.max_pixels,
                    orientation=self.orientation,
                    dct_scaling=self.dct_scaling,
                    fast=self.fast,
                    **common,
                )
            else:
                assert self.pixels is not None
                imgops.resample_into(self.pixels, out, self.box, w, h, **common)
        except ValueError as exc:
            raise CorruptData(f"cannot decode image: {exc}", key=self.key) from None

    def materialize(self) -> np.ndarray:
        out = np.empty(self.shape, dtype=self.dtype)
        self.write_into(out)
        return out


def _lazy(sample: Sample, key: str | None, op: str) -> LazyImage:
    if key is None:  # the sample's one decoded image
        found = [k for k, v in sample.items() if isinstance(v, LazyImage)]
        if len(found) != 1:
            raise TypeError(
                f"{op} needs exactly one image decoded by DecodeImage earlier in the pipeline "
                f"(found {found}); pass key= to choose"
            )
        key = found[0]
    v = sample.get(key)
    if not isinstance(v, LazyImage):
        raise TypeError(
            f"{op} needs field {key!r} to come from DecodeImage in the same pipeline, "
            f"found {type(v).__name__}"
        )
    return v


def _size_pair(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """torchvision's (h, w) convention for crop sizes."""
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


class DecodeImage(Transform):
    """Decode field ``key`` (bytes) as an RGB image, applying the EXIF orientation.

    JPEG goes to the native decoder; other formats to Pillow. Images with more than
    ``max_pixels`` pixels are refused (decompression bombs) with an error naming the sample.
    ``dct_scaling=False`` always decodes at full resolution (slower, exact Pillow parity).
    ``fast=True`` uses the fast integer IDCT and plain chroma upsampling (faster JPEG
    decoding; pixels within a few levels of Pillow's, the choice simplejpeg's fastdct and
    fastupsample make). Whatever is chosen is part of the artifact, so serving decodes the
    same way.
    """

    def __init__(
        self,
        key: str = "jpg",
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        dct_scaling: bool = True,
        fast: bool = False,
    ) -> None:
        self.key = key
        self.max_pixels = int(max_pixels)
        self.dct_scaling = bool(dct_scaling)
        self.fast = bool(fast)

    def args(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "max_pixels": self.max_pixels,
            "dct_scaling": self.dct_scaling,
            "fast": self.fast,
        }

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        key = str(sample.get("__key__", "?"))
        data = sample.get(self.key)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise CorruptData(
                f"field {self.key!r} is {type(data).__name__}, not image bytes", key=key
            )
        data = bytes(data)
        if data[:3] == _JPEG_MAGIC:
            try:
                w, h, _, _, _, orientation = imgops.jpeg_info(data)
            except ValueError as exc:
                raise CorruptData(
                    f"cannot decode field {self.key!r} as JPEG: {exc}", key=key
                ) from None
            self._check_pixels(w, h, key)
            if orientation >= 5:
                w, h = h, w
            img = LazyImage(
                jpeg=data,
                pixels=None,
                width=w,
                height=h,
                orientation=orientation,
                key=key,
                max_pixels=self.max_pixels,
                dct_scaling=self.dct_scaling,
                fast=self.fast,
            )
        else:
            pixels = self._pillow(data, key)
            img = LazyImage(
                jpeg=None,
                pixels=pixels,
                width=pixels.shape[1],
                height=pixels.shape[0],
                orientation=1,
                key=key,
                max_pixels=self.max_pixels,
                dct_scaling=False,
            )
        sample[self.key] = img
        return sample

    def _check_pixels(self, w: int, h: int, key: str) -> None:
        if w * h > self.max_pixels:
            raise CorruptData(
                f"image of {w}x{h} pixels exceeds max_pixels={self.max_pixels} "
                "(decompression bomb guard)",
                key=key,
            )

    def _pillow(self, data: bytes, key: str) -> np.ndarray:
        try:
            from PIL import Image, ImageOps  # optional: only non-JPEG images need Pillow
        except ImportError:
            raise CorruptData(
                "not a JPEG, and Pillow is not installed for other formats", key=key
            ) from None
        try:
            with Image.open(io.BytesIO(data)) as im:
                self._check_pixels(im.width, im.height, key)
                oriented = ImageOps.exif_transpose(im)
                return np.asarray(oriented.convert("RGB"))
        except CorruptData:
            raise
        except Exception as exc:
            raise CorruptData(
                f"cannot decode field {self.key!r} as an image: {exc}", key=key
            ) from None


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
        img = _lazy(sample, self.key, "Resize")
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
        self.size = _size_pair(size)
        self.key = key

    def args(self) -> dict[str, Any]:
        return {"size": list(self.size), "key": self.key}

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        img = _lazy(sample, self.key, "CenterCrop")
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
        self.size = _size_pair(size)
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
        img = _lazy(sample, self.key, "RandomResizedCrop")
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
        img = _lazy(sample, self.key, "RandomHorizontalFlip")
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
        img = _lazy(sample, self.key, "Normalize")
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
        img = _lazy(sample, self.key, "ToCHW")
        img.mode = "u8_chw"
        img.dtype = np.dtype(np.uint8)
        return sample
