"""Seek benchmark: time to the first batch after ``load_state_dict`` at step 0 vs step 10^6.

A synthetic manifest of 10^9 samples (10^4 shards of 10^5), global and block shuffle. The
order is a pure function and the Feistel bijection needs no permutation array, so seeking far
costs what seeking nowhere costs. Each measurement builds a fresh Loader, loads the state,
and takes one batch; runs alternate between the two steps; medians are compared.

    python benchmarks/seek.py [--repeats 7] [--workers 0]
"""

from __future__ import annotations

import argparse
import time

from _common import environment, median

import m5stream as m5

SOURCE = "synthetic://1000000000?shard_size=100000"
BATCH = 256


def first_batch_seconds(ds: m5.Dataset, shuffle: str, step: int, workers: int) -> float:
    t0 = time.perf_counter()
    lo = m5.Loader(
        ds, BATCH, shuffle=shuffle, seed=17, num_workers=workers, output="numpy", block_size=1 << 16
    )
    state = lo.state_dict()
    state["step"] = step
    lo.load_state_dict(state)
    batch = next(iter(lo))
    dt = time.perf_counter() - t0
    assert len(batch["__index__"]) == BATCH
    lo.close()
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--workers", type=int, default=0)
    a = ap.parse_args()
    t0 = time.perf_counter()
    ds = m5.dataset(SOURCE)
    print(
        f"# seek: {len(ds):.0e} samples in {ds.manifest.num_shards} shards, batch {BATCH}, "
        f"{a.workers} workers, median of {a.repeats}; manifest built in "
        f"{time.perf_counter() - t0:.2f}s; {environment()}"
    )
    for shuffle in ("global", "block"):
        first_batch_seconds(ds, shuffle, 0, a.workers)  # warm-up
        at0, atm = [], []
        for _ in range(a.repeats):
            at0.append(first_batch_seconds(ds, shuffle, 0, a.workers))
            atm.append(first_batch_seconds(ds, shuffle, 1_000_000, a.workers))
        r = median(atm) / median(at0)
        print(
            f"{shuffle:7} step 0: {median(at0) * 1e3:8.2f} ms   step 1,000,000: "
            f"{median(atm) * 1e3:8.2f} ms   ratio {r:.2f} (target <= 1.5)"
        )


if __name__ == "__main__":
    main()
