"""Host-to-device feeding on a CUDA machine (not part of CI; run it where a GPU is present).

    python benchmarks/gpu_feed.py [--batches 50] [--repeats 3]

Prints, medians of ``--repeats``:

1. host-to-device GB/s for a 64x3x224x224 float32 batch (38.5 MB) copied from pageable memory
   (``tensor.to("cuda")``) and from page-locked memory (``pin_memory()``, ``non_blocking``);
2. the share of copy time hidden behind compute: a loop of ``copy + matmul`` per batch run
   serially, then through ``m5stream.torch.DeviceLoader`` (side-stream copies, prefetch 2),
   against compute alone: hidden = (serial - pipelined) / copy time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

SHAPE = (64, 3, 224, 224)


def gbps(src: torch.Tensor, n: int, non_blocking: bool) -> float:
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        src.to("cuda", non_blocking=non_blocking)
    torch.cuda.synchronize()
    return src.numel() * src.element_size() * n / (time.perf_counter() - t0) / 1e9


def compute(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (x.flatten(1)[:, :4096] @ w).relu()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_feed.py needs a CUDA device")
    from m5stream.torch import DeviceLoader

    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}")
    pageable = torch.rand(SHAPE)
    pinned = pageable.pin_memory()
    res: dict[str, list[float]] = {"pageable": [], "pinned": [], "serial": [], "pipelined": []}
    res["compute"] = []
    w = torch.rand(4096, 4096, device="cuda")
    host = [{"x": torch.rand(SHAPE), "__index__": torch.arange(64)} for _ in range(8)]

    def batches() -> list[dict[str, torch.Tensor]]:
        return [host[i % len(host)] for i in range(a.batches)]

    for _ in range(a.repeats):
        res["pageable"].append(gbps(pageable, a.batches, False))
        res["pinned"].append(gbps(pinned, a.batches, True))
        on_dev = pinned.to("cuda")
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(a.batches):
            compute(on_dev, w)
        torch.cuda.synchronize()
        res["compute"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for b in batches():
            compute(b["x"].to("cuda"), w)
        torch.cuda.synchronize()
        res["serial"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for b in DeviceLoader(batches(), "cuda", prefetch=2):
            compute(b["x"], w)
        torch.cuda.synchronize()
        res["pipelined"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in res.items()}
    copy = med["serial"] - med["compute"]
    hidden = (med["serial"] - med["pipelined"]) / copy if copy > 0 else 0.0
    print(
        f"H2D pageable: {med['pageable']:.1f} GB/s, pinned non_blocking: {med['pinned']:.1f} GB/s"
    )
    print(
        f"{a.batches} batches: compute {med['compute']:.3f}s, copy+compute serial "
        f"{med['serial']:.3f}s, DeviceLoader {med['pipelined']:.3f}s -> {hidden:.0%} of the "
        "copy time hidden behind compute"
    )


if __name__ == "__main__":
    main()
