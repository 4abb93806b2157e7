"""Per-batch cost of the Loader's façade, plan and threads executor, without I/O waits.

Writes (once, into the m5stream cache) 4 local Parquet files of 200,000 rows (row groups of
50,000; int, float, int and text columns) and 8 local tar shards of 2,000 small samples, then
times whole epochs of ``Loader(ds, batch, num_workers=N, output="numpy")`` over each (the
threads executor: batches sliced out of decoded units). Each figure is the median of
``--repeats`` epochs. Run it from two checkouts, alternately, to compare code versions.

    python benchmarks/loop_overhead.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

import m5stream as m5
from m5stream._cache import cache_dir


def _make(root: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from m5stream.demo import write_tar_shard

    (root / "pq").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for f in range(4):
        n = 200_000
        table = pa.table(
            {
                "id": np.arange(n),
                "x": rng.random(n).astype(np.float32),
                "label": rng.integers(0, 1000, n),
                "text": [f"row {i} text" for i in range(n)],
            }
        )
        pq.write_table(table, root / "pq" / f"part-{f}.parquet", row_group_size=50_000)
    (root / "tar").mkdir(parents=True, exist_ok=True)
    for s in range(8):
        keys = [f"s{s}-{i:05d}" for i in range(2000)]
        samples = [{"bin": os.urandom(64), "cls": str(i).encode()} for i in range(2000)]
        write_tar_shard(str(root / "tar" / f"shard-{s:05d}.tar"), samples, keys)
    (root / "COMPLETE").touch()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    root = cache_dir("bench-loop-overhead-v1")
    if not (root / "COMPLETE").exists():
        _make(root)
    cases = [
        ("parquet", m5.dataset(str(root / "pq" / "*.parquet")), 1024),
        ("tar", m5.dataset(str(root / "tar" / "shard-{00000..00007}.tar")), 64),
    ]
    out = []
    for name, ds, batch in cases:
        for nw in (0, 2):
            times = []
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                with m5.Loader(ds, batch, num_workers=nw, output="numpy") as lo:
                    for _b in lo:
                        pass
                    kind = lo.executor_kind
                times.append(time.perf_counter() - t0)
            med = statistics.median(times)
            out.append({"case": name, "workers": nw, "executor": kind, "epoch_s": med})
            print(f"{name:8} workers={nw} executor={kind:9} epoch {med:.3f} s")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
