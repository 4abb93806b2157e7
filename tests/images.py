"""Test images (real photographs from scikit-image, re-encoded) and the Pillow reference.

The reference is built only from Pillow and the documented semantics: DCT-scaled decode
(``Image.draft``), EXIF orientation (``ImageOps.exif_transpose``), ``crop`` of the
integer-expanded box and ``resize(BILINEAR, box=...)`` of the fractional box inside it.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageOps


def photo(name: str = "astronaut") -> Image.Image:
    from skimage import data

    arr = getattr(data, name)()
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return Image.fromarray(arr[..., :3])


def encode(
    img: Image.Image, fmt: str = "JPEG", orientation: int | None = None, **kw: object
) -> bytes:
    buf = io.BytesIO()
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif.tobytes()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def reference(
    data: bytes,
    box: tuple[float, float, float, float],
    size: tuple[int, int],
    scale_den: int = 1,
    flip: bool = False,
) -> np.ndarray:
    """uint8 HWC of the box (displayed coordinates) resized to ``size`` = (w, h)."""
    im = Image.open(io.BytesIO(data))
    stored_w, stored_h = im.size
    if scale_den > 1:
        im.draft("RGB", (stored_w // scale_den, stored_h // scale_den))
    im = ImageOps.exif_transpose(im).convert("RGB")
    disp = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).size
    fx, fy = im.size[0] / disp[0], im.size[1] / disp[1]
    b = (box[0] * fx, box[1] * fy, min(box[2] * fx, im.size[0]), min(box[3] * fy, im.size[1]))
    g = (math.floor(b[0]), math.floor(b[1]), math.ceil(b[2]), math.ceil(b[3]))
    out = im.crop(g).resize(
        size, Image.BILINEAR, box=(b[0] - g[0], b[1] - g[1], b[2] - g[0], b[3] - g[1])
    )
    if flip:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(out)


PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera")


def make_image_tar(
    root: object, shards: int, per_shard: int, seed: int = 0, corrupt: tuple[int, ...] = ()
) -> str:
    """Tar shards of ``jpg`` + ``cls`` samples cut from the photos (sizes, qualities and
    orientations vary); samples whose index is in ``corrupt`` get a truncated JPEG."""
    from pathlib import Path

    from m5stream.demo import write_tar_shard

    root = Path(str(root))
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    i = 0
    for s in range(shards):
        keys, samples = [], []
        for _ in range(per_shard):
            img = photo(PHOTOS[i % len(PHOTOS)])
            w, h = img.size
            cw, ch = int(rng.integers(w // 2, w + 1)), int(rng.integers(h // 2, h + 1))
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            orientation = int(rng.integers(1, 9)) if i % 7 == 3 else None
            data = encode(
                img.crop((x, y, x + cw, y + ch)),
                quality=int(rng.integers(60, 96)),
                orientation=orientation,
            )
            if i in corrupt:
                data = data[: len(data) // 2]
            keys.append(f"img{i:05d}")
            samples.append({"jpg": data, "cls": str(i % 10).encode()})
            i += 1
        write_tar_shard(str(root / f"shard-{s:04d}.tar"), samples, keys)
    return str(root / f"shard-{{0000..{shards - 1:04d}}}.tar")
