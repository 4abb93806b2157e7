"""A weighted mixture, m5stream against grain's ``MapDataset.mix``, side by side.

The sources (written once into the m5stream cache): local Parquet text (40,000 rows of
~200-byte texts, row groups of 5,000) and local tar shards of raw bytes (8,000 samples of
~4 KiB, no decode), mixed 0.7 / 0.3. Each side maps every sample to the same ``{"x": bytes}``
(text encoded, or the tar member's bytes) and batches 256 samples as lists, with the same
number of worker processes:

* m5stream: ``m5.mix({"text": m5.source(pq, transform=...), "bytes": m5.source(tar, ...)})``
  through ``m5.Loader(..., shuffle=True, num_workers=N)``;
* grain: ``MapDataset.mix([source.shuffle().repeat().map(f), ...], weights)`` over the same
  random-access readers (m5stream datasets: grain has no Parquet or tar source of its own),
  ``.batch(256, batch_fn=list).to_iter_dataset().mp_prefetch(MultiprocessingOptions(N))``.

Figures: samples/s after the first batch (steady) and the time to the first batch (cold),
medians of ``--repeats`` runs, alternated; the ratio m5/grain; the worst deviation of any
source's count from ``weight x samples so far`` over the first 1,000 global batches (both
sides' schedules, computed from indices alone); and the mixture's samples/s against its
slowest source read alone through the same Loader configuration (the cost of mixing).

    python benchmarks/mixture.py [--repeats 5] [--batches 60] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

import m5stream as m5
from m5stream._cache import cache_dir

W = {"text": 0.7, "bytes": 0.3}
BATCH = 256


def _make(root: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from m5stream.demo import write_tar_shard

    rng = np.random.default_rng(0)
    (root / "pq").mkdir(parents=True, exist_ok=True)
    words = np.array(["data", "mixture", "token", "東京", "product", "título", "image", "x"])
    for f in range(4):
        n = 10_000
        text = [" ".join(rng.choice(words, 30)) for _ in range(n)]
        table = pa.table({"id": np.arange(f * n, (f + 1) * n), "text": text})
        pq.write_table(table, root / "pq" / f"part-{f}.parquet", row_group_size=5_000)
    (root / "tar").mkdir(parents=True, exist_ok=True)
    for s in range(8):
        keys = [f"s{s}-{i:05d}" for i in range(1000)]
        samples = [{"bin": os.urandom(int(rng.integers(2048, 6144)))} for _ in range(1000)]
        write_tar_shard(str(root / "tar" / f"shard-{s:05d}.tar"), samples, keys)
    (root / "COMPLETE").touch()


def text_x(s: dict[str, Any]) -> dict[str, Any]:
    return {"x": str(s["text"]).encode(), "__key__": s["__key__"], "__index__": s["__index__"]}


def bytes_x(s: dict[str, Any]) -> dict[str, Any]:
    return {"x": bytes(s["bin"]), "__key__": s["__key__"], "__index__": s["__index__"]}


def _sources(root: Path) -> tuple[m5.Dataset, m5.Dataset]:
    return (
        m5.dataset(str(root / "pq" / "*.parquet"), columns=["text"]),
        m5.dataset(str(root / "tar" / "shard-{00000..00007}.tar")),
    )


def _time(batches: Iterator[Any], n: int) -> tuple[float, float]:
    """(seconds to the first batch, samples/s over the next ``n`` batches)."""
    t0 = time.perf_counter()
    first = next(batches)
    t1 = time.perf_counter()
    samples = 0
    for _ in range(n):
        b = next(batches)
        samples += len(b["x"]) if isinstance(b, dict) else len(b)
    t2 = time.perf_counter()
    del first
    return t1 - t0, samples / (t2 - t1)


def run_m5(root: Path, n: int, workers: int, only: str | None = None) -> tuple[float, float]:
    text, raw = _sources(root)
    if only is None:
        ds: m5.Dataset = m5.mix(
            {
                "text": m5.source(text, transform=text_x),
                "bytes": m5.source(raw, transform=bytes_x),
            },
            weights=W,
        )
        tf = None
    else:
        ds, tf = (text, text_x) if only == "text" else (raw, bytes_x)
    with m5.Loader(
        ds, BATCH, transform=tf, shuffle=True, seed=1, num_workers=workers, output="numpy"
    ) as lo:

        def forever() -> Iterator[Any]:
            while True:
                yield from lo

        return _time(forever(), n)


def run_grain(root: Path, n: int, workers: int) -> tuple[float, float]:
    import grain

    text, raw = _sources(root)
    parts = [
        grain.MapDataset.source(text).shuffle(seed=1).repeat().map(text_x),
        grain.MapDataset.source(raw).shuffle(seed=2).repeat().map(bytes_x),
    ]
    mixed = grain.MapDataset.mix(parts, weights=[W["text"], W["bytes"]])
    ds = mixed.batch(BATCH, batch_fn=list)
    it = ds.to_iter_dataset().mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    return _time(iter(it), n)


def deviation_m5(steps: int) -> float:
    """Worst |count - weight x samples| over the first ``steps`` global batches (the plan)."""
    from m5stream.plan import MixtureSchedule, WeightSegment

    sched = MixtureSchedule(
        ["text", "bytes"], {"text": 40_000, "bytes": 8_000}, [WeightSegment(0, W)], BATCH
    )
    counts = sched.counts_array(np.arange(1, steps + 1))
    n = np.arange(1, steps + 1)[:, None] * BATCH
    return float(np.abs(counts - n * np.array([W["text"], W["bytes"]])).max())


def deviation_grain(steps: int) -> float:
    """The same for grain's mix, by index (which parent each position reads)."""
    import grain

    parts = [
        grain.MapDataset.range(40_000).shuffle(seed=1).repeat().map(lambda i: 0),
        grain.MapDataset.range(8_000).shuffle(seed=2).repeat().map(lambda i: 1),
    ]
    mixed = grain.MapDataset.mix(parts, weights=[W["text"], W["bytes"]])
    src = np.array([mixed[i] for i in range(steps * BATCH)])
    ones = np.cumsum(src.reshape(steps, BATCH).sum(axis=1))
    n = np.arange(1, steps + 1) * BATCH
    dev_b = np.abs(ones - W["bytes"] * n)
    dev_t = np.abs((n - ones) - W["text"] * n)
    return float(max(dev_b.max(), dev_t.max()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    root = cache_dir("bench-mixture-v1")
    if not (root / "COMPLETE").exists():
        _make(root)
    runs: dict[str, Callable[[], tuple[float, float]]] = {
        "m5": lambda: run_m5(root, a.batches, a.workers),
        "grain": lambda: run_grain(root, a.batches, a.workers),
        "m5 text alone": lambda: run_m5(root, a.batches, a.workers, only="text"),
        "m5 bytes alone": lambda: run_m5(root, a.batches, a.workers, only="bytes"),
    }
    got: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
    for _ in range(a.repeats):  # alternated, so drifts of the machine hit every side alike
        for name, fn in runs.items():
            got[name].append(fn())
    med = {
        k: (statistics.median(c for c, _ in v), statistics.median(s for _, s in v))
        for k, v in got.items()
    }
    slowest = min(("m5 text alone", "m5 bytes alone"), key=lambda k: med[k][1])
    out = {
        "workers": a.workers,
        "batch": BATCH,
        "batches": a.batches,
        "repeats": a.repeats,
        "samples_per_s": {k: v[1] for k, v in med.items()},
        "first_batch_s": {k: v[0] for k, v in med.items()},
        "ratio_m5_over_grain": med["m5"][1] / med["grain"][1],
        "ratio_m5_cold_over_grain_cold": med["grain"][0] / med["m5"][0],
        "slowest_source": slowest,
        "mixture_over_slowest_source": med["m5"][1] / med[slowest][1],
        "worst_deviation_1000_steps": {"m5": deviation_m5(1000), "grain": deviation_grain(1000)},
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
