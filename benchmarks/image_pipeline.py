"""Image pipeline benchmark: RandomResizedCrop(224) + flip + normalize, m5 vs torch DataLoader.

Two corpora are generated once (deterministically, into the m5stream cache) from the real
photographs bundled with scikit-image and scikit-learn: random crops, scales and JPEG
qualities, as individual files -

* ``imagenet``: long side ~500 px (400-600), quality 75-95;
* ``product``: long side ~1,500 px (1,300-1,700), quality 85-95.

Side by side, the same files and worker count:

* m5: ``Loader(m5.dataset(dir), 64, transform=Compose([DecodeImage, RandomResizedCrop(224),
  RandomHorizontalFlip, Normalize]), num_workers=N)`` - fused crop-aware decode into slots;
* torch: ``torch.utils.data.DataLoader(batch_size=64, num_workers=N)`` over a Dataset doing
  what torchvision's v2 ``RandomResizedCrop(224)`` + ``RandomHorizontalFlip`` + ``ToDtype`` +
  ``Normalize`` do on a PIL image (same ``get_params`` algorithm, PIL ``crop().resize(BILINEAR)``,
  ``FLIP_LEFT_RIGHT``, float conversion and normalisation in torch);
* torchvision (stock Pillow): the user's own pipeline, torch ``DataLoader`` + torchvision v2 on
  stock Pillow, ``persistent_workers=True`` (``_torchvision_baseline.py``, run under
  ``.venv-baseline`` from ``scripts/baseline_venv.sh``, as a child of this process, in turn
  with the others; left out with one line if that venv cannot be built);
* decode-only: the same DataLoader doing nothing but a full PIL (libjpeg-turbo) decode;
* floor: the same, decoding at 1/8 DCT scale (``Image.draft``): what entropy decoding alone
  costs, the floor under any crop of the image.

    python benchmarks/image_pipeline.py [--workers 2] [--batches 12] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import time
from pathlib import Path

import numpy as np
import PIL
import torch
import torch.utils.data
from _common import environment, median
from PIL import Image

import m5stream as m5
from m5stream import transforms as T
from m5stream._cache import cache_dir

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CORPORA = {"imagenet": (400, 600, 75, 95, 768), "product": (1300, 1700, 85, 95, 384)}


def _sources() -> list[Image.Image]:
    from skimage import data
    from sklearn.datasets import load_sample_images

    names = (
        "astronaut",
        "coffee",
        "chelsea",
        "rocket",
        "hubble_deep_field",
        "immunohistochemistry",
    )
    imgs = [Image.fromarray(getattr(data, n)()) for n in names]
    imgs += [Image.fromarray(a) for a in load_sample_images().images]
    return [im.convert("RGB") for im in imgs]


def corpus(name: str) -> Path:
    lo, hi, qlo, qhi, n = CORPORA[name]
    root = cache_dir(f"bench-{name}-v1")
    if (root / "COMPLETE").exists():
        return root
    rng = np.random.default_rng(2026)
    src = _sources()
    for i in range(n):
        im = src[i % len(src)]
        w, h = im.size
        cw, ch = int(rng.integers(w * 6 // 10, w + 1)), int(rng.integers(h * 6 // 10, h + 1))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        long_side = int(rng.integers(lo, hi + 1))
        s = long_side / max(cw, ch)
        out = im.crop((x, y, x + cw, y + ch)).resize((round(cw * s), round(ch * s)), Image.BICUBIC)
        out.save(root / f"{i:05d}.jpg", quality=int(rng.integers(qlo, qhi + 1)))
    (root / "COMPLETE").write_text("ok\n")
    return root


class TorchvisionLike(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """What torchvision v2 does for this pipeline on a PIL image (no torchvision needed)."""

    def __init__(self, files: list[Path], decode_only: bool = False, draft: int = 1) -> None:
        self.files = files
        self.decode_only = decode_only
        #: decode-only at 1/draft DCT scale (Pillow ``draft``): 8 is the entropy-decoding floor
        self.draft = draft
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        img = Image.open(self.files[i])
        if self.draft > 1:
            img.draft("RGB", (img.width // self.draft, img.height // self.draft))
        img = img.convert("RGB")
        if self.decode_only:
            return torch.from_numpy(np.asarray(img)[:1, :1].copy())
        w, h = img.size
        area = w * h
        for _ in range(10):
            target = area * random.uniform(0.08, 1.0)
            ar = math.exp(random.uniform(math.log(3 / 4), math.log(4 / 3)))
            cw, ch = int(round(math.sqrt(target * ar))), int(round(math.sqrt(target / ar)))
            if 0 < cw <= w and 0 < ch <= h:
                top, left = random.randint(0, h - ch), random.randint(0, w - cw)
                break
        else:
            cw, ch, top, left = w, h, 0, 0
        img = img.crop((left, top, left + cw, top + ch)).resize((224, 224), Image.BILINEAR)
        if random.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        t = torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div_(255)
        return (t - self.mean) / self.std


def _rate(make_iter, batches: int, batch: int) -> float:  # type: ignore[no-untyped-def]
    it = make_iter()
    next(it)  # warm-up: workers up, first files read
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - t0)


HERE = Path(__file__).resolve().parent


def baseline_python() -> str | None:
    """The interpreter of ``.venv-baseline`` (built on first use), or None with a line why."""
    r = subprocess.run(
        ["bash", str(HERE.parent / "scripts" / "baseline_venv.sh")], capture_output=True, text=True
    )
    if r.returncode != 0:
        print(f"# torchvision (stock Pillow) side left out: {r.stderr.strip()}")
        return None
    return r.stdout.strip().splitlines()[-1]


def _stock_rate(python: str, root: Path, workers: int, batches: int) -> float:
    script = str(HERE / "_torchvision_baseline.py")
    out = subprocess.run(
        [python, script, str(root), "--workers", str(workers), "--batches", str(batches)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1])["img_s"])


def bench(
    name: str, workers: int, batches: int, repeats: int, stock: str | None
) -> dict[str, object]:
    root = corpus(name)
    files = sorted(root.glob("*.jpg"))
    ds = m5.dataset(str(root / "*.jpg"))

    def pipeline(fast: bool) -> T.Compose:
        return T.Compose(
            [
                T.DecodeImage("jpg", fast=fast),
                T.RandomResizedCrop(224),
                T.RandomHorizontalFlip(),
                T.Normalize(MEAN, STD),
            ]
        )

    rates: dict[str, list[float]] = {
        "m5": [],
        "m5_fast": [],
        "torch": [],
        "decode_only": [],
        "floor_1_8": [],
    }
    if stock:
        rates["torchvision_stock"] = []
    with (
        m5.Loader(
            ds, 64, transform=pipeline(False), shuffle=True, num_workers=workers, output="torch"
        ) as lo,
        m5.Loader(
            ds, 64, transform=pipeline(True), shuffle=True, num_workers=workers, output="torch"
        ) as lo_fast,
    ):

        def m5_iter(loader: m5.Loader = lo):  # type: ignore[no-untyped-def]
            while True:
                yield from loader

        for _ in range(repeats):
            rates["m5"].append(_rate(m5_iter, batches, 64))
            rates["m5_fast"].append(_rate(lambda: m5_iter(lo_fast), batches, 64))
            for key, decode_only, draft in (
                ("torch", False, 1),
                ("decode_only", True, 1),
                ("floor_1_8", True, 8),
            ):
                dl = torch.utils.data.DataLoader(
                    TorchvisionLike(files, decode_only, draft),
                    batch_size=64,
                    shuffle=True,
                    num_workers=workers,
                    persistent_workers=True,
                )

                def dl_iter(dl=dl):  # type: ignore[no-untyped-def]
                    while True:
                        yield from dl

                rates[key].append(_rate(dl_iter, batches, 64))
                del dl
            if stock:
                rates["torchvision_stock"].append(_stock_rate(stock, root, workers, batches))
        stats = lo.stats
    sizes = [Image.open(f).size for f in files[:50]]
    return {
        "corpus": name,
        "images": len(files),
        "mean_long_side": float(np.mean([max(s) for s in sizes])),
        "median_img_s": {k: median(v) for k, v in rates.items()},
        "runs": rates,
        "m5_stage_seconds": stats["seconds"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batches", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--corpus", choices=sorted(CORPORA), action="append")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    simd = "pillow-simd" if ".post" in PIL.__version__ else "stock Pillow"
    print(
        f"# image pipeline: RandomResizedCrop(224)+flip+normalize, batch 64, {a.workers} "
        f"workers, median of {a.repeats}; PIL {PIL.__version__} ({simd}); {environment()}"
    )
    stock = baseline_python()
    results = []
    for name in a.corpus or ["imagenet", "product"]:
        r = bench(name, a.workers, a.batches, a.repeats, stock)
        results.append(r)
        med = r["median_img_s"]
        assert isinstance(med, dict)
        print(
            f"{name:9} (~{r['mean_long_side']:.0f} px): torch {med['torch']:5.0f} img/s, "
            f"decode-only {med['decode_only']:5.0f} img/s, 1/8-DCT decode-only (floor) "
            f"{med['floor_1_8']:5.0f} img/s"
            + (
                f", torchvision (stock Pillow) {med['torchvision_stock']:5.0f} img/s"
                if "torchvision_stock" in med
                else ""
            )
        )
        for key, label in (("m5", "m5 (Pillow-exact decode)"), ("m5_fast", "m5 (fast=True)")):
            print(
                f"    {label:26} {med[key]:6.0f} img/s   vs torch {med[key] / med['torch']:.2f}x"
                f"   vs decode-only {med[key] / med['decode_only']:.2f}x"
                f"   vs floor {med[key] / med['floor_1_8']:.2f}x"
                + (
                    f"   vs torchvision (stock Pillow) {med[key] / med['torchvision_stock']:.2f}x"
                    if "torchvision_stock" in med
                    else ""
                )
            )
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    main()
