"""The jobs ``m5stream bench --transform`` knows by name, and their plain-PyTorch twins.

A preset is an m5stream transform (per sample) and/or batch transform, plus the equivalent
per-sample function written the way a PyTorch user would (Pillow decode, the same geometry),
used by the peers of ``--compare`` so that every side does the same work:

- ``imagenet-train``: decode JPEG, RandomResizedCrop(224) (torchvision's parameters), random
  horizontal flip, normalise to float32 CHW.
- ``imagenet-eval``: decode, resize the short side to 256, centre crop 224, normalise.
- ``text-pack``: byte-level tokenisation of the ``txt`` field and packing of each batch into
  rows of 2048 tokens (a batch transform).
- ``raw``: no transform: the bytes as stored.

``--transform FILE.json`` loads a saved transform artifact instead (no PyTorch twin: peers
then run without a transform and say so).
"""

from __future__ import annotations

import io
import math
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..transforms import (
    CenterCrop,
    Compose,
    DecodeImage,
    Normalize,
    PackTokens,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    Tokenize,
    load,
)

__all__ = ["PRESETS", "Preset", "resolve_transform"]

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


@dataclass
class Preset:
    name: str
    transform: Any = None
    batch_transform: Any = None
    #: the same work for a PyTorch Dataset: sample dict -> what the DataLoader collates
    peer_fn: Callable[[dict[str, Any]], Any] | None = None
    #: the field the peer function needs (peers that read tar shards themselves)
    field: str | None = None


def _image_field(sample: dict[str, Any]) -> bytes:
    for k in ("jpg", "jpeg", "png", "webp"):
        if k in sample:
            return sample[k]
    raise ConfigError(f"the image presets need a jpg/png field; the sample has {sorted(sample)}")


def _to_chw(img: Any) -> Any:
    import torch  # torch (optional, heavy) only when used (the peers)

    arr = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(((arr - MEAN) / STD).transpose(2, 0, 1).copy())


def _open(data: bytes) -> Any:
    from PIL import Image  # the PyTorch twins' Pillow: only when a peer runs

    img = Image.open(io.BytesIO(data))
    return img.convert("RGB")


def _rrc_box(w: int, h: int) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop.get_params (scale 0.08-1, ratio 3/4-4/3)."""
    area = w * h
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for _ in range(10):
        target = area * random.uniform(0.08, 1.0)
        ar = math.exp(random.uniform(*log_ratio))
        cw = round(math.sqrt(target * ar))
        ch = round(math.sqrt(target / ar))
        if 0 < cw <= w and 0 < ch <= h:
            top, left = random.randint(0, h - ch), random.randint(0, w - cw)
            return left, top, left + cw, top + ch
    side = min(w, h)
    return (w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side


def peer_imagenet_train(sample: dict[str, Any]) -> Any:
    from PIL import Image  # see _open

    img = _open(_image_field(sample))
    img = img.resize((224, 224), Image.Resampling.BILINEAR, box=_rrc_box(*img.size))
    if random.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return _to_chw(img)


def peer_imagenet_eval(sample: dict[str, Any]) -> Any:
    from PIL import Image  # see _open

    img = _open(_image_field(sample))
    w, h = img.size
    s = 256 / min(w, h)
    img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BILINEAR)
    w, h = img.size
    left, top = (w - 224) // 2, (h - 224) // 2
    return _to_chw(img.crop((left, top, left + 224, top + 224)))


def peer_text(sample: dict[str, Any]) -> Any:
    text = sample.get("txt", b"")
    data = text.encode() if isinstance(text, str) else bytes(text)
    return np.frombuffer(data, np.uint8).astype(np.int32)


def peer_raw(sample: dict[str, Any]) -> Any:
    return {k: v for k, v in sample.items() if not k.startswith("__")}


def _presets() -> dict[str, Callable[[], Preset]]:
    return {
        "imagenet-train": lambda: Preset(
            "imagenet-train",
            Compose([DecodeImage(), RandomResizedCrop(224), RandomHorizontalFlip(), Normalize()]),
            peer_fn=peer_imagenet_train,
        ),
        "imagenet-eval": lambda: Preset(
            "imagenet-eval",
            Compose([DecodeImage(), Resize(256), CenterCrop(224), Normalize()]),
            peer_fn=peer_imagenet_eval,
        ),
        "text-pack": lambda: Preset(
            "text-pack",
            Tokenize("txt"),
            batch_transform=PackTokens(2048),
            peer_fn=peer_text,
        ),
        "raw": lambda: Preset("raw", peer_fn=peer_raw),
    }


PRESETS = ("imagenet-train", "imagenet-eval", "text-pack", "raw")


def resolve_transform(spec: str) -> Preset:
    """A preset name or the path of a transform artifact (``.json``)."""
    makers = _presets()
    if spec in makers:
        return makers[spec]()
    if spec.endswith(".json") or os.path.exists(spec):
        if not os.path.exists(spec):
            raise ConfigError(f"transform file {spec!r} does not exist")
        try:
            return Preset(os.path.basename(spec), load(spec))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"transform file {spec!r} is not a transform artifact: {exc}"
            ) from None
    raise ConfigError(
        f"unknown transform {spec!r}: a preset ({', '.join(PRESETS)}) or a FILE.json artifact"
    )
