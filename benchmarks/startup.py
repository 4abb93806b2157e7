"""Start-up: time from ``Loader(...)`` to the first batch, and the first epoch against steady.

A training script's view: every measurement is a fresh interpreter running this file as its
``__main__``, which imports torch at module level (as a training script does) before the clock
starts. The corpus: 8 tar shards of ~9 MB, 2,000 photos with a long side of 400-600 px, made
once from the photographs bundled with scikit-image and scikit-learn. The job: the
``imagenet-train`` preset (decode, RandomResizedCrop(224), flip, normalise), batch 64,
shuffled, four epochs on one loader.

Side by side, alternating, ``--repeats`` times each:

* ``m5 w=0``: ``Loader(source, 64, transform=..., num_workers=0)``;
* ``m5 w=2``: the same with 2 workers (workers started at ``Loader(...)``, first batches made
  in the trainer while they start);
* ``m5 w=2 fresh``: ``w=2`` with an empty ``M5STREAM_CACHE`` (tar indexes not built yet);
* ``m5 w=2 no-inline``: ``w=2, inline_start=False`` (every batch from a worker);
* ``torch w=2``: ``DataLoader(num_workers=2, persistent_workers=True)`` over a map-style
  dataset reading the same samples, the preset's Pillow twin.

Per run: first batch (s from the ``Loader``/``DataLoader`` call, the source string resolved
inside it), first-epoch img/s (from that call to the end of epoch 1), steady img/s (median of
epochs 2-4). Medians over the repeats; the ratio first-epoch / steady per run, then median.

The floor under the 2-worker first-epoch ratio, measured in the same run (``floor``): what two
workers must spend that an inline loader does not, and that no overlap hides once both cores
are busy - the CPU seconds of one fresh interpreter importing what a worker imports (the
forkserver does it once; the two workers fork from it), plus first-touching the ring's pages
(its slot count from the loader, a batch's bytes each). With ``T`` the steady epoch time of
``m5 w=2``, the ratio can be at most ``T / (T + cpu / cores)``.

    python benchmarks/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch  # noqa: F401 - at module level, as in a training script: workers must not redo it

BATCH = 64
EPOCHS = 4
MODES = ("m5 w=0", "m5 w=2", "m5 w=2 fresh", "m5 w=2 no-inline", "torch w=2")


def corpus() -> str:
    """8 tar shards of ~9 MB (2,000 photos, long side 400-600 px), made once."""
    import numpy as np
    from PIL import Image

    from m5stream._cache import cache_dir
    from m5stream.demo import write_tar_shard

    root = cache_dir("bench-startup-v1")
    pattern = str(root / "shard-{000..007}.tar")
    if (root / "COMPLETE").exists():
        return pattern
    sys.path.insert(0, str(Path(__file__).parent))
    from image_pipeline import _sources

    rng = np.random.default_rng(2027)
    src = _sources()
    for s in range(8):
        samples, keys = [], []
        for j in range(250):
            i = s * 250 + j
            im = src[i % len(src)]
            w, h = im.size
            cw, ch = int(rng.integers(w * 6 // 10, w + 1)), int(rng.integers(h * 6 // 10, h + 1))
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            scale = int(rng.integers(400, 601)) / max(cw, ch)
            out = im.crop((x, y, x + cw, y + ch)).resize(
                (round(cw * scale), round(ch * scale)), Image.BICUBIC
            )
            buf = io.BytesIO()
            out.save(buf, "JPEG", quality=int(rng.integers(70, 90)))
            samples.append({"jpg": buf.getvalue(), "cls": str(i % 10).encode()})
            keys.append(f"{i:06d}")
        write_tar_shard(str(root / f"shard-{s:03d}.tar"), samples, keys)
    (root / "COMPLETE").write_text("ok\n")
    return pattern


def _epochs(make: Any) -> dict[str, float]:
    """Run ``EPOCHS`` epochs of the loader ``make()`` returns (timed from the call)."""
    t0 = time.perf_counter()
    loader = make()
    first = None
    marks = []
    n = 0
    for _ in range(EPOCHS):
        for batch in loader:
            if first is None:
                first = time.perf_counter() - t0
            n += len(batch["__index__"]) if isinstance(batch, dict) else len(batch)
        marks.append((time.perf_counter(), n))
    close = getattr(loader, "close", None)
    if close is not None:
        close()
    first_epoch = marks[0][1] / (marks[0][0] - t0)
    steady = statistics.median(
        (marks[e][1] - marks[e - 1][1]) / (marks[e][0] - marks[e - 1][0]) for e in range(1, EPOCHS)
    )
    assert first is not None
    return {"first_batch_s": first, "first_epoch": first_epoch, "steady": steady}


def child(mode: str, source: str) -> dict[str, float]:
    if mode.startswith("torch"):
        import torch.utils.data

        import m5stream as m5
        from m5stream.bench.peers import _collate, _MapDataset
        from m5stream.bench.presets import peer_imagenet_train

        def make_torch() -> Any:
            ds = _MapDataset(m5.dataset(source), peer_imagenet_train)
            return torch.utils.data.DataLoader(
                ds,  # type: ignore[arg-type]
                batch_size=BATCH,
                shuffle=True,
                num_workers=2,
                persistent_workers=True,
                collate_fn=_collate,
            )

        return _epochs(make_torch)
    import m5stream as m5
    from m5stream.bench.presets import resolve_transform

    tr = resolve_transform("imagenet-train").transform
    opts: dict[str, Any] = {"num_workers": 0 if "w=0" in mode else 2}
    if "no-inline" in mode:
        opts["inline_start"] = False
    return _epochs(
        lambda: m5.Loader(source, BATCH, transform=tr, shuffle=True, seed=0, output="torch", **opts)
    )


def floor(source: str) -> dict[str, float]:
    """CPU seconds of the start-up work two workers add (see the module docstring)."""
    import mmap
    import resource

    import numpy as np

    import m5stream as m5
    from m5stream.bench.presets import resolve_transform

    def children_cpu() -> float:
        u = resource.getrusage(resource.RUSAGE_CHILDREN)
        return u.ru_utime + u.ru_stime

    from _m5stream_forkserver import WORKER_THREAD_ENV

    # the environment the forkserver imports in: one compute thread, unless the user set it
    env = {**{name: "1" for name in WORKER_THREAD_ENV}, **os.environ}
    c0 = children_cpu()
    subprocess.run(
        [sys.executable, "-c", "import numpy, numpy.random, m5stream.workers.worker"],
        check=True,
        env=env,
    )
    imports = children_cpu() - c0
    tr = resolve_transform("imagenet-train").transform
    with m5.Loader(source, BATCH, transform=tr, seed=0, output="numpy", num_workers=2) as lo:
        next(iter(lo))  # the first batch sizes the ring
        # the ring the loader made (private: no public API says how big it is)
        ring_made = lo._executor._ensure_pool()[1].ring  # type: ignore[attr-defined]
        nbytes = ring_made.num_slots * ring_made.slot_bytes
    t0 = time.process_time()
    ring = mmap.mmap(-1, nbytes, flags=mmap.MAP_SHARED)
    np.frombuffer(ring, dtype=np.uint8)[::4096] = 1  # one write per page: the first touch
    touch = time.process_time() - t0
    ring.close()
    return {"imports_cpu_s": imports, "ring_cpu_s": touch, "ring_bytes": float(nbytes)}


def run(mode: str, source: str) -> dict[str, float]:
    env = dict(os.environ)
    tmp = None
    if "fresh" in mode:
        tmp = tempfile.mkdtemp(prefix="m5-startup-cache-")
        env["M5STREAM_CACHE"] = tmp
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--source", source],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        if tmp is not None:
            subprocess.run(["rm", "-rf", tmp], check=False)
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--source", help=argparse.SUPPRESS)
    p.add_argument("--json", help="write every run here")
    a = p.parse_args()
    if a.child:
        print(json.dumps(floor(a.source) if a.child == "floor" else child(a.child, a.source)))
        return
    source = corpus()
    modes = a.modes.split(",")
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    floors: list[dict[str, float]] = []
    for r in range(a.repeats):
        for m in modes if r % 2 == 0 else list(reversed(modes)):
            runs[m].append(run(m, source))
            print(f"  {r}: {m:18s} {runs[m][-1]}", file=sys.stderr)
        floors.append(run("floor", source))
    med = statistics.median
    base = med(x["first_batch_s"] for x in runs.get("m5 w=0", [])) if "m5 w=0" in runs else None
    print(
        f"\n{'mode':18s} {'first batch s':>14s} {'÷ w=0':>7s} {'epoch 1 img/s':>14s} "
        f"{'steady img/s':>13s} {'epoch1/steady':>14s}"
    )
    for m, xs in runs.items():
        fb = med(x["first_batch_s"] for x in xs)
        ratio = med(x["first_epoch"] / x["steady"] for x in xs)
        rel = f"{fb / base:.2f}" if base else "-"
        print(
            f"{m:18s} {fb:14.3f} {rel:>7s} {med(x['first_epoch'] for x in xs):14.0f} "
            f"{med(x['steady'] for x in xs):13.0f} {ratio:14.2f}"
        )
    if "m5 w=2" in runs:
        cpu = med(f["imports_cpu_s"] + f["ring_cpu_s"] for f in floors)
        steady_epoch = 2000 / med(x["steady"] for x in runs["m5 w=2"])
        cores = os.cpu_count() or 1
        print(
            f"\nfloor: the workers' imports {med(f['imports_cpu_s'] for f in floors):.3f} CPU-s"
            f" + the ring's first touch ({med(f['ring_bytes'] for f in floors) / 1e6:.0f} MB) "
            f"{med(f['ring_cpu_s'] for f in floors):.3f} CPU-s, against a steady epoch of "
            f"{steady_epoch:.3f} s on {cores} cores -> epoch1/steady at most "
            f"{steady_epoch / (steady_epoch + cpu / cores):.2f} for m5 w=2"
        )
    if a.json:
        Path(a.json).write_text(json.dumps({"runs": runs, "floor": floors}, indent=1))


if __name__ == "__main__":
    main()
