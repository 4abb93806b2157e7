"""The stock baseline of ``image_pipeline.py``: torch ``DataLoader`` + torchvision v2, stock Pillow.

Run by ``image_pipeline.py`` under ``.venv-baseline``'s interpreter (``scripts/baseline_venv.sh``),
once per repeat, alternating with the other sides; prints one JSON object, ``{"img_s": ...}``.

What a new user writes: a map-style dataset opening each JPEG with Pillow (``convert("RGB")``,
as torchvision's ``default_loader`` does), torchvision's v2 ``RandomResizedCrop(224)``,
``RandomHorizontalFlip``, ``PILToTensor``, ``ToDtype(float32, scale=True)`` and ``Normalize``,
batch 64, shuffled, ``num_workers`` workers, ``persistent_workers=True``. The first batch is a
warm-up (workers start, files are first read); the rate is over the ``--batches`` after it.

PyPI's torchvision for torch 2.13 is the CUDA build, whose C ops do not load beside the CPU
torch; its ``_meta_registrations`` module, which registers fake kernels for those detection ops
(``nms``, ``roi_align``...), is replaced by an empty module before the import. The transforms
measured here are pure Python over Pillow and torch and never call those ops.

    .venv-baseline/bin/python benchmarks/_torchvision_baseline.py DIR [--workers 2] [--batches 8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types
import warnings
from pathlib import Path

sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")

import torch  # noqa: E402 - after the stub above
import torch.utils.data  # noqa: E402
import torchvision  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Files(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, files: list[Path]) -> None:
        self.files = files
        self.transform = v2.Compose(
            [
                v2.RandomResizedCrop(224, antialias=True),
                v2.RandomHorizontalFlip(),
                v2.PILToTensor(),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(MEAN, STD),
            ]
        )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        with open(self.files[i], "rb") as f:
            img = Image.open(f).convert("RGB")
        return self.transform(img)  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=Path)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batches", type=int, default=8)
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    files = sorted(a.dir.glob("*.jpg"))
    dl = torch.utils.data.DataLoader(
        Files(files), batch_size=64, shuffle=True, num_workers=a.workers, persistent_workers=True
    )

    # image_pipeline._rate's loop, written again: this venv cannot import m5stream
    def forever():  # type: ignore[no-untyped-def]
        while True:
            yield from dl

    it = forever()
    next(it)
    t0 = time.perf_counter()
    for _ in range(a.batches):
        next(it)
    rate = a.batches * 64 / (time.perf_counter() - t0)
    import PIL

    versions = {"pillow": PIL.__version__, "torchvision": torchvision.__version__}
    print(json.dumps({"img_s": rate, **versions}))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    main()
