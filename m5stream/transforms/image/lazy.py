"""``DecodeImage`` and the :class:`LazyImage` it puts in a sample: the header read now, the
pixels made later, once, by one fused native call (see :mod:`m5stream.transforms.image`)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from ..._native import imgops
from ...errors import CorruptData
from ..base import LazyValue, Sample, Transform

__all__ = ["DecodeImage", "LazyImage", "lazy_image", "size_pair"]

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


def lazy_image(sample: Sample, key: str | None, op: str) -> LazyImage:
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


def size_pair(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
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
