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

from .geometry import (
    CenterCrop,
    Normalize,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ToCHW,
    rrc_params,
)
from .lazy import DEFAULT_MAX_PIXELS, DecodeImage, LazyImage

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "CenterCrop",
    "DecodeImage",
    "LazyImage",
    "Normalize",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "Resize",
    "ToCHW",
    "rrc_params",
]
