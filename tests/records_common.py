"""Shared pieces of the run-record tests: a recorded Loader run whose expected figures the
test computes itself, and a recorded mixture run made from step outputs (no mixture dataset
needed), so sqlite and PostgreSQL tests check the same exact values."""

from __future__ import annotations

import itertools
import types
from pathlib import Path
from typing import Any

import numpy as np

import m5stream as m5
from m5stream.records import recorder_of
from m5stream.records.recorder import Recorder
from m5stream.stats import Stats
from tests.helpers import make_tar_dataset

#: samples with ``cls % 13 == 5`` fail in the transform (skipped with on_error="skip")
BAD_EVERY, BAD_AT = 13, 5


def flaky(sample: dict[str, Any]) -> dict[str, Any]:
    """A transform that fails on every 13th sample and turns ``cls`` into an int64 array."""
    cls = int(sample["cls"])
    if cls % BAD_EVERY == BAD_AT:
        raise ValueError(f"bad sample {cls}")
    return {**sample, "cls": np.array([cls], dtype=np.int64)}


def payload(batch: dict[str, Any]) -> int:
    """What the recorder counts as a batch's bytes, computed independently."""
    n = 0
    for k, v in batch.items():
        if k.startswith("__"):
            continue
        if isinstance(v, np.ndarray):
            n += v.nbytes
        elif isinstance(v, list):
            n += sum(len(x) for x in v)
    return n


def recorded_loader_run(
    url: str, root: Path, *, num_workers: int = 0, **options: Any
) -> dict[str, Any]:
    """Run one epoch of a recorded Loader (60 samples, 5 of them bad, batch 8) and return
    what the test expects to read back."""
    src = make_tar_dataset(root, shards=3, per_shard=20)
    ds = m5.dataset(src)
    total_bytes = 0
    batches = 0
    with m5.Loader(
        ds,
        8,
        transform=flaky,
        num_workers=num_workers,
        on_error="skip",
        output="numpy",
        record=url,
        run_name="exact-run",
        tags={"team": "data", "try": 3},
        seed=11,
        shuffle=True,
        record_interval=0.05,
        **options,
    ) as lo:
        rec = recorder_of(lo)
        assert rec is not None
        for b in lo:
            total_bytes += payload(b)
            batches += 1
        stats = lo.stats
        executor = lo.executor_kind
    return {
        "run_id": rec.run_id,
        "stats": stats,
        "bytes": total_bytes,
        "batches": batches,
        "executor": executor,
        "num_workers": num_workers,
        "source": src,
        "fingerprint": ds.fingerprint,
        "num_samples": len(ds),
        "skipped": sum(1 for i in range(60) if i % BAD_EVERY == BAD_AT),
    }


def check_loader_run(store: Any, exp: dict[str, Any]) -> None:
    """The run row and its intervals hold exactly what the loader counted."""
    import os
    import socket

    run = store.get_run(exp["run_id"])
    st = exp["stats"]
    assert run["status"] == "finished" and run["ended_at"] is not None
    assert run["kind"] == "loader"
    assert (run["run_name"], run["tags"]) == ("exact-run", {"team": "data", "try": "3"})
    assert (run["host"], run["pid"]) == (socket.gethostname(), os.getpid())
    assert (run["rank"], run["world_size"], run["seed"], run["batch_size"]) == (0, 1, 11, 8)
    assert (run["num_workers"], run["executor"]) == (exp["num_workers"], exp["executor"])
    assert run["shuffle"] == "global"
    assert (run["source"], run["fingerprint"], run["num_samples"], run["format"]) == (
        exp["source"],
        exp["fingerprint"],
        60,
        "tar",
    )
    assert run["batches"] == st["batches"] == exp["batches"]
    assert run["samples"] == st["samples"] == 60 - exp["skipped"]
    assert run["skipped"] == st["skipped"] == exp["skipped"] == 5
    assert run["bytes"] == exp["bytes"] > 0
    assert run["worker_restarts"] == 0 and run["intervals_dropped"] == 0
    for stage, secs in st["seconds"].items():
        assert run[f"{stage}_s"] == secs
    assert run["seconds"] > 0 and 0.0 <= run["input_bound"] <= 1.0
    assert run["samples_per_s"] == run["samples"] / run["seconds"]
    assert run["bottleneck"] in ("fetch", "decode", "transform", "collate", "handoff", "trainer")
    rows = store.intervals(exp["run_id"])
    assert [r["seq"] for r in rows] == list(range(len(rows))) and rows
    assert sum(r["batches"] for r in rows) == run["batches"]
    assert sum(r["samples"] for r in rows) == run["samples"]
    assert sum(r["bytes"] for r in rows) == run["bytes"]
    assert sum(r["skipped"] for r in rows) == run["skipped"]
    for stage, secs in st["seconds"].items():
        assert abs(sum(r[f"{stage}_s"] for r in rows) - secs) < 1e-9
    for a, b in itertools.pairwise(rows):
        assert a["t_end"] == b["t_start"]
    assert rows[0]["t_start"] == 0.0


#: the mixture run: per interval, samples of each source
MIX_WEIGHTS = {"en": 0.5, "ja": 0.3, "img": 0.2}
MIX_INTERVALS = [
    {"en": 32, "ja": 19, "img": 13},
    {"en": 32, "ja": 19, "img": 13},
    {"en": 31, "ja": 20, "img": 13},
    {"en": 33, "ja": 19, "img": 12},
]


def recorded_mixture_run(url: str, *, run_name: str = "mixture") -> str:
    """A run recorded through a real :class:`Recorder` fed with mixture step outputs
    (``__source__`` names per sample), one interval per entry of ``MIX_INTERVALS``."""
    stats = Stats()
    start = {
        "run_id": __import__("uuid").uuid4().hex,
        "kind": "loader",
        "run_name": run_name,
        "tags": {},
        "rank": 0,
        "world_size": 1,
        "started_at": __import__("datetime").datetime(2026, 1, 2, 3, 4, 5),
        "status": "running",
        "source": "mix:en,ja,img",
        "weights": MIX_WEIGHTS,
        "batch_size": 64,
        "num_workers": 2,
        "executor": "processes",
    }
    rec = Recorder(start, stats, url=url, interval=3600.0)
    for step, counts in enumerate(MIX_INTERVALS):
        names = [n for n, c in counts.items() for _ in range(c)]
        batch = {"x": np.zeros((len(names), 4), np.float32), "__index__": np.arange(len(names))}
        batch["__source__"] = names
        stats.batches += 1
        stats.samples += len(names)
        stats.add_seconds({"wait": 0.01, "decode": 0.02})
        rec.step(types.SimpleNamespace(step=step, batch=batch, seconds={}, skipped=[]))
        rec.mark()
    rec.close()
    assert rec.finished.wait(10)
    return rec.run_id
