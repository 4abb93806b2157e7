"""Run records and live metrics on against off, on the image pipeline.

Two Loaders over the same ``imagenet`` corpus (``benchmarks/image_pipeline.py``: ~500 px
photos, RandomResizedCrop(224) + flip + normalize, batch 64, 2 worker processes), built anew
for every repeat in alternating order: ``off`` records nothing; ``on`` records to a SQLite
file (``record_interval=1``: a row and a transaction every second, ten times the default)
and serves Prometheus metrics on 127.0.0.1, scraped every second by a thread of this
process. Each repeat times ``--batches`` batches of each loader after a warm-up batch, in
the order they were built;
``--control`` is the A/A run (neither side records), the harness's own bias. The
figures: the median of the repeats' img/s per side and their ratio, and the median of the
per-repeat on/off ratios (each pair ran back to back, under one machine load).

Also measured: what ``Recorder.step`` (the only work recording adds to a training step) costs
per call, on a real batch of the pipeline.

    python benchmarks/record_overhead.py [--repeats 7] [--batches 16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import types
import urllib.request
from pathlib import Path

from _common import environment, median
from image_pipeline import MEAN, STD, corpus

import m5stream as m5
from m5stream import transforms as T
from m5stream.records import recorder_of
from m5stream.records.store import RunStore


def _pipeline() -> T.Compose:
    return T.Compose(
        [
            T.DecodeImage("jpg"),
            T.RandomResizedCrop(224),
            T.RandomHorizontalFlip(),
            T.Normalize(MEAN, STD),
        ]
    )


def _rate(loader: m5.Loader, batches: int, batch: int) -> float:
    def forever():  # type: ignore[no-untyped-def]
        while True:
            yield from loader

    it = forever()
    next(it)  # warm-up
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    rate = batches * batch / (time.perf_counter() - t0)
    it.close()
    return rate


class _Scraper(threading.Thread):
    def __init__(self, url: str, every: float) -> None:
        super().__init__(daemon=True)
        self.url, self.every = url, every
        self.scrapes = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every):
            with urllib.request.urlopen(self.url, timeout=5) as r:
                r.read()
            self.scrapes += 1


def _thread_cpu(native_id: int | None) -> float:
    """CPU seconds (user + system) a thread of this process has used (Linux /proc)."""
    import os

    try:
        with open(f"/proc/self/task/{native_id}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _step_cost(loader: m5.Loader) -> float:
    """Seconds one Recorder.step takes on one of the pipeline's batches (median of 5 x 2000)."""
    rec = recorder_of(loader)
    assert rec is not None
    batch = {k: (v.numpy() if hasattr(v, "numpy") else v) for k, v in next(iter(loader)).items()}
    out = types.SimpleNamespace(batch=batch, seconds={}, step=0, skipped=[])
    costs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(2000):
            rec.step(out)
        costs.append((time.perf_counter() - t0) / 2000)
    return median(costs)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="m5-record-overhead-") as tmp:
        _main(Path(tmp))


def _main(tmp: Path) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batches", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", default=None)
    ap.add_argument(
        "--control",
        action="store_true",
        help="A/A: the 'on' loader records nothing either (the harness's own bias)",
    )
    a = ap.parse_args()
    root = corpus("imagenet")
    ds = m5.dataset(str(root / "*.jpg"))
    url = f"sqlite:///{tmp / 'runs.db'}"
    common = dict(transform=_pipeline(), shuffle=True, num_workers=a.workers, output="torch")
    rates: dict[str, list[float]] = {"off": [], "on": []}
    scrapes = intervals = 0
    step_s = wall = thread_cpu = 0.0

    def make(side: str) -> m5.Loader:
        on = side == "on" and not a.control
        return m5.Loader(
            ds,
            64,
            record=url if on else None,
            metrics_port=0 if on else None,
            record_interval=1.0,
            **common,
        )  # type: ignore[arg-type]

    for r in range(a.repeats):
        # both loaders are built anew each repeat, in alternating order: a loader built
        # second ran up to 20% faster in an A/A run (--control) on this shared machine
        sides = ("off", "on") if r % 2 == 0 else ("on", "off")
        loaders = {side: make(side) for side in sides}
        try:
            rec = recorder_of(loaders["on"])
            scraper = _Scraper(rec.metrics_url or "", 1.0) if rec is not None else None
            if scraper is not None:
                scraper.start()
            t0 = time.perf_counter()
            for side in sides:
                rates[side].append(_rate(loaders[side], a.batches, 64))
            wall += time.perf_counter() - t0
            if rec is not None:
                thread_cpu += _thread_cpu(rec._thread.native_id)
            if scraper is not None:
                scraper.stop.set()
                scraper.join()
                scrapes += scraper.scrapes
            if rec is not None and r == a.repeats - 1:
                step_s = _step_cost(loaders["on"])
        finally:
            for lo in loaders.values():
                lo.close()
        if rec is not None:
            with RunStore(url) as store:
                intervals += len(store.intervals(rec.run_id))
    med = {k: median(v) for k, v in rates.items()}
    ratio = med["on"] / med["off"]
    # each repeat ran both sides back to back: the ratio within a pair sees one machine load
    pair = median([x / y for x, y in zip(rates["on"], rates["off"])])
    per_batch = 64 / med["off"]
    result = {
        "median_img_s": med,
        "on_over_off": ratio,
        "paired_ratio_median": pair,
        "slowdown_pct": 100 * (1 - ratio),
        "runs": rates,
        "recorder_step_us": step_s * 1e6,
        "step_share_of_batch_pct": 100 * step_s / per_batch,
        "intervals_written": intervals,
        "recorder_thread_cpu_share_pct": 100 * thread_cpu / wall if wall else 0.0,
        "scrapes": scrapes,
    }
    print(
        f"# record overhead: imagenet corpus, batch 64, {a.workers} workers, {a.batches} "
        f"batches x {a.repeats} repeats, alternating{', A/A control' if a.control else ''}; "
        f"{environment()}"
    )
    for side, label in (
        ("off", "off (no records, no metrics)   "),
        ("on", "on  (sqlite every 1 s, scraped)"),
    ):
        runs = [round(x) for x in rates[side]]
        print(f"{label} {med[side]:7,.0f} img/s   runs {runs}")
    print(
        f"on / off = {ratio:.3f} ({result['slowdown_pct']:+.1f}% slower); median of the "
        f"paired ratios {pair:.3f}"
    )
    print(
        f"Recorder.step {step_s * 1e6:.1f} us per batch = "
        f"{result['step_share_of_batch_pct']:.4f}% of a {per_batch * 1e3:.0f} ms batch; "
        f"{intervals} interval rows written, {scrapes} scrapes; the recorder thread used "
        f"{result['recorder_thread_cpu_share_pct']:.2f}% of one core"
    )
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
