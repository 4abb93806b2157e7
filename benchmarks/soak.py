"""Soak: one loader per executor over many epochs for a given time, watching for leaks.

Each executor (``Loader(executor="inline" | "threads" | "processes")``) runs in a process of
its own (``--executor`` runs just one, in this process) over a local tar dataset of small
JPEGs: ``inline`` and ``processes`` decode, crop, flip and normalise them (2 workers);
``threads`` is the block path (no transform). One Loader lives for the whole run, epoch after
epoch (``set_epoch``), as in a training job.

At the end of an epoch - the same point of the cycle each time, so transient threads or
buffers of a running epoch do not count - the process tree (this process and its workers) is
sampled: RSS and PSS (``/proc/PID/smaps_rollup``), open file descriptors, threads and memory
mappings (at most 1,000 samples a run, spread over it). The first ``--warmup`` fraction of
the run is warm-up (caches, pools, slot rings, allocator arenas filling up); the baseline is
the median of the first 3 samples after it, the end the median of the last 3. The run passes
when RSS grew by at most ``--rss-tol`` (5%) and descriptors, threads and mappings not at all
(end == baseline, and no sample after warm-up above the largest of those first 3).

``--json PATH`` writes every sample and the verdict; the exit status is 1 when an executor
failed. Used by ``tests/e2e/test_soak.py`` (a short run) and for ``benchmarks/RESULTS.md``::

    python benchmarks/soak.py --minutes 10                  # each executor, 10 minutes
    python benchmarks/soak.py --executor threads --seconds 40 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EXECUTORS = ("inline", "threads", "processes")
FIELDS = ("rss", "pss", "fds", "threads", "maps")


def tree_pids() -> list[int]:
    from m5stream.bench.monitor import tree_pids as pids

    return pids(os.getpid())


def _count_lines(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def _rollup(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return rss, pss


def _threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def sample_tree() -> dict[str, int]:
    """RSS, PSS, fds, threads and maps summed over this process and its descendants."""
    out = dict.fromkeys(FIELDS, 0)
    pids = tree_pids()
    for pid in pids:
        rss, pss = _rollup(pid)
        out["rss"] += rss
        out["pss"] += pss
        out["fds"] += _fds(pid)
        out["threads"] += _threads(pid)
        out["maps"] += _count_lines(f"/proc/{pid}/maps")
    out["processes"] = len(pids)
    return out


def make_dataset(root: Path, shards: int = 4, per_shard: int = 48) -> str:
    """Small photo-like JPEGs (~160x120) in webdataset tar shards, made once per run."""
    import io

    import numpy as np
    from PIL import Image

    from m5stream.demo import write_tar_shard

    root.mkdir(parents=True, exist_ok=True)
    n = 0
    for s in range(shards):
        keys, samples = [], []
        for _ in range(per_shard):
            rng = np.random.default_rng(n)
            small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
            img = Image.fromarray(small).resize((160, 120), Image.Resampling.BICUBIC)
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=85)
            keys.append(f"s{n:06d}")
            samples.append({"jpg": buf.getvalue(), "cls": str(n % 10).encode()})
            n += 1
        write_tar_shard(str(root / f"shard-{s:05d}.tar"), samples, keys)
    return str(root / f"shard-{{00000..{shards - 1:05d}}}.tar")


def _loader(executor: str, source: str) -> Any:
    import m5stream as m5
    from m5stream import transforms as T

    ds = m5.dataset(source)
    if executor == "threads":
        return m5.Loader(ds, 16, shuffle="block", seed=3, executor="threads", output="numpy")
    tf = T.Compose(
        [
            T.DecodeImage("jpg"),
            T.RandomResizedCrop(64),
            T.RandomHorizontalFlip(),
            T.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
        ]
    )
    workers = 2 if executor == "processes" else 0
    return m5.Loader(
        ds,
        16,
        transform=tf,
        shuffle=True,
        seed=3,
        num_workers=workers,
        executor=executor,
        output="numpy",
    )


def verdict(samples: list[dict[str, Any]], warmup_s: float, rss_tol: float) -> dict[str, Any]:
    """Growth from the baseline after warm-up to the end, and whether it is within bounds."""
    after = [s for s in samples if s["t"] >= warmup_s]
    if len(after) < 6:
        return {"ok": False, "reason": f"only {len(after)} samples after warm-up (< 6)"}
    base, end = after[:3], after[-3:]
    out: dict[str, Any] = {"epochs_after_warmup": len(after), "growth": {}}
    problems = []
    for f in FIELDS:
        b = statistics.median(s[f] for s in base)
        e = statistics.median(s[f] for s in end)
        peak = max(s[f] for s in after)
        out["growth"][f] = {"baseline": b, "end": e, "max": peak}
        if f in ("rss", "pss"):
            frac = (e - b) / b if b else 0.0
            out["growth"][f]["fraction"] = round(frac, 4)
            if f == "rss" and frac > rss_tol:
                problems.append(f"RSS grew {frac:.1%} (> {rss_tol:.0%})")
        else:
            ceiling = max(s[f] for s in base)
            if e > b or peak > ceiling:
                problems.append(f"{f} grew from {b} to {e} (max {peak})")
    out["ok"] = not problems
    out["reason"] = "; ".join(problems) or "no growth"
    return out


def soak_one(
    executor: str, seconds: float, source: str, warmup: float, rss_tol: float
) -> dict[str, Any]:
    """Run ``executor`` epoch after epoch for ``seconds``; sample the tree after an epoch."""
    import numpy as np

    # The samples go into an array allocated before the run: a list that grew by a dict per
    # epoch would itself show as growth (a new allocator arena is a new mapping).
    cols = ("t_ms", "epoch", *FIELDS, "processes")
    table = np.zeros((_MAX_SAMPLES, len(cols)), dtype=np.int64)
    every = max(0.2, seconds / (_MAX_SAMPLES - 10))
    n = 0
    t0 = time.monotonic()
    last = -every
    batches = 0
    with _loader(executor, source) as loader:
        epoch = 0
        while time.monotonic() - t0 < seconds:
            loader.set_epoch(epoch)
            for batch in loader:
                # touch the data, as a trainer would, and drop the batch
                for v in batch.values():
                    if isinstance(v, np.ndarray) and v.dtype != object:
                        float(v.reshape(-1)[:64].astype(np.float64).sum())
                batches += 1
                del batch
            now = time.monotonic() - t0
            if now - last >= every and n < _MAX_SAMPLES:
                got = sample_tree()
                table[n] = (int(now * 1000), epoch, *(got[f] for f in FIELDS), got["processes"])
                n += 1
                last = now
            epoch += 1
        ran_as = loader.stats.get("executor")
    samples = [dict(zip(cols, row)) for row in table[:n].tolist()]
    for row in samples:
        row["t"] = row.pop("t_ms") / 1000
    result: dict[str, Any] = {
        "executor": executor,
        "ran_as": ran_as,
        "seconds": round(time.monotonic() - t0, 1),
        "epochs": epoch,
        "batches": batches,
        "warmup_s": round(warmup * seconds, 1),
        "samples": samples,
    }
    result.update(verdict(samples, warmup * seconds, rss_tol))
    return result


_MAX_SAMPLES = 1000


def _summary(r: dict[str, Any]) -> str:
    if "growth" not in r:
        return f"{r['executor']}: {'ok' if r['ok'] else 'FAILED'} ({r['reason']})"
    g = r["growth"]
    mb = 1 << 20
    return (
        f"{r['executor']:9s} {r['seconds']:7.1f} s  {r['epochs']:5d} epochs "
        f"{r['batches']:7d} batches  RSS {g['rss']['baseline'] / mb:7.1f} -> "
        f"{g['rss']['end'] / mb:7.1f} MiB ({g['rss']['fraction']:+.2%})  PSS "
        f"{g['pss']['baseline'] / mb:7.1f} -> {g['pss']['end'] / mb:7.1f} MiB "
        f"({g['pss']['fraction']:+.2%})  fds {g['fds']['baseline']:.0f}->{g['fds']['end']:.0f} "
        f"threads {g['threads']['baseline']:.0f}->{g['threads']['end']:.0f} "
        f"maps {g['maps']['baseline']:.0f}->{g['maps']['end']:.0f}  "
        f"{'ok' if r['ok'] else 'FAILED: ' + r['reason']}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--executor", choices=(*EXECUTORS, "all"), default="all")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--minutes", type=float, help="per executor")
    g.add_argument("--seconds", type=float, help="per executor (default 40)")
    p.add_argument("--warmup", type=float, default=0.3, help="fraction of the run (0.3)")
    p.add_argument("--rss-tol", type=float, default=0.05, help="allowed RSS growth (0.05)")
    p.add_argument("--json", help="write the samples and verdicts here")
    p.add_argument("--data", help="dataset source (default: small JPEG shards made in a tmp dir)")
    a = p.parse_args(argv)
    seconds = a.minutes * 60 if a.minutes is not None else (a.seconds or 40.0)
    results = []
    with tempfile.TemporaryDirectory(prefix="m5soak-") as tmp:
        source = a.data or make_dataset(Path(tmp) / "data")
        if a.executor != "all":
            results.append(soak_one(a.executor, seconds, source, a.warmup, a.rss_tol))
        else:  # each executor in a fresh process: one run's memory never shows in the next
            for ex in EXECUTORS:
                out = Path(tmp) / f"{ex}.json"
                cmd = [sys.executable, __file__, "--executor", ex, "--seconds", str(seconds)]
                cmd += ["--warmup", str(a.warmup), "--rss-tol", str(a.rss_tol)]
                cmd += ["--json", str(out), "--data", source]
                subprocess.run(cmd, check=False)
                results.append(json.loads(out.read_text())["results"][0])
        if a.executor != "all":
            print(_summary(results[0]), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps({"results": results}, indent=1))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
