"""Images straight from S3 objects (one object per image) against the same files on local disk,
and raw objects against s3torchconnector, on SeaweedFS over loopback.

Starts its own SeaweedFS (``weed mini``, free loopback ports), uploads two photo corpora made
from the photographs bundled with scikit-image and scikit-learn, one object per image, and
writes the same files to a local directory:

* ``33k``: long side 400-600 px, JPEG quality 70-85 (~33 KB);
* ``150k``: long side 900-1,100 px, quality 88-95 (~150 KB).

Side by side, alternating, ``--repeats`` times, 2 workers on every side, batch 64:

(1) imagenet-train (decode, RandomResizedCrop(224), flip, normalise), shuffled: the m5
    ``Loader`` over ``s3://bucket/<corpus>/`` against the m5 ``Loader`` over the local
    directory. img/s of the second epoch of one loader (steady) and of the first (from
    ``Loader(...)``: start-up and the first GETs included).
(2) no transform, the ``33k`` objects' bytes: the m5 ``Loader`` against
    ``s3torchconnector.S3IterableDataset.from_prefix`` in a ``DataLoader(num_workers=2)``
    reading each object's bytes. Objects/s over one epoch (m5: its second epoch).

The server shares the 2 cores with the loaders: its CPU per request is part of every S3
figure (``--server-cpu`` prints what it used per GET, the floor under (1)).

    python benchmarks/s3_objects.py [--repeats 5] [--images 1000]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch.utils.data
from _common import environment, seaweed

KEY, SECRET, BUCKET = "bench-key", "bench-secret-key", "m5-objects"
CORPORA = {"33k": (400, 600, 70, 85), "150k": (900, 1100, 88, 95)}
BATCH = 64


def photos(name: str, n: int) -> list[tuple[str, bytes]]:
    from image_pipeline import _sources
    from PIL import Image

    lo, hi, qlo, qhi = CORPORA[name]
    rng = np.random.default_rng(11)
    src = _sources()
    out = []
    for i in range(n):
        im = src[i % len(src)]
        w, h = im.size
        cw, ch = int(rng.integers(w * 6 // 10, w + 1)), int(rng.integers(h * 6 // 10, h + 1))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        s = int(rng.integers(lo, hi + 1)) / max(cw, ch)
        img = im.crop((x, y, x + cw, y + ch)).resize((round(cw * s), round(ch * s)), Image.BICUBIC)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(qlo, qhi + 1)))
        out.append((f"{name}/{i:05d}.jpg", buf.getvalue()))
    return out


def m5_epochs(source: str, transform: Any, epochs: int = 2) -> tuple[float, float]:
    """(first-epoch img/s from Loader(...), last-epoch img/s) of one loader."""
    import m5stream as m5

    t0 = time.perf_counter()
    lo = m5.Loader(
        source, BATCH, transform=transform, shuffle=True, seed=0, num_workers=2, output="numpy"
    )
    rates = []
    start = t0
    for _ in range(epochs):
        n = 0
        for b in lo:
            n += len(b["__index__"])
        now = time.perf_counter()
        rates.append(n / (now - start))
        start = now
    lo.close()
    return rates[0], rates[-1]


def _read(obj: Any) -> bytes:
    return obj.read()  # type: ignore[no-any-return]


def _collate(items: list[Any]) -> list[Any]:
    return items


def s3tc_epoch(endpoint: str, prefix: str) -> float:
    from s3torchconnector import S3ClientConfig, S3IterableDataset

    ds = S3IterableDataset.from_prefix(
        f"s3://{BUCKET}/{prefix}",
        region="us-east-1",
        endpoint=endpoint,
        transform=_read,
        s3client_config=S3ClientConfig(force_path_style=True),
    )
    dl = torch.utils.data.DataLoader(ds, batch_size=BATCH, num_workers=2, collate_fn=_collate)
    t0 = time.perf_counter()
    n = sum(len(b) for b in dl)
    return n / (time.perf_counter() - t0)


def proc_cpu(pid: int) -> float:
    """CPU seconds process ``pid`` has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get_cost(server: Any, client: Any, keys: list[str], rounds: int = 3) -> tuple[float, float]:
    """(server, client) CPU seconds per GET: every key fetched ``rounds`` times, 64 at a time
    through the CRT client - the S3 work a loader cannot avoid, without any decoding."""
    s0, c0 = proc_cpu(server.proc.pid), time.process_time()
    for _ in range(rounds):
        for i in range(0, len(keys), BATCH):
            client.get_many([(BUCKET, k, None) for k in keys[i : i + BATCH]])
    n = rounds * len(keys)
    return (proc_cpu(server.proc.pid) - s0) / n, (time.process_time() - c0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--images", type=int, default=1000)
    a = ap.parse_args()
    server, c, tmp = seaweed("m5bench-objects-", KEY, SECRET, BUCKET)
    from m5stream.bench.presets import resolve_transform

    med = statistics.median
    try:
        print(f"# images from S3 objects vs local files, median of {a.repeats}; {environment()}")
        for name in CORPORA:
            items = photos(name, a.images)
            local = tmp / "local" / name
            local.mkdir(parents=True)
            for key, data in items:
                (local / Path(key).name).write_bytes(data)
            for key, data in items:
                c.put(BUCKET, key, data)
            mean_kb = sum(len(d) for _, d in items) / len(items) / 1e3
            train = resolve_transform("imagenet-train").transform
            rows: dict[str, list[tuple[float, float]]] = {"s3": [], "local": []}
            for r in range(a.repeats):
                order = ("s3", "local") if r % 2 == 0 else ("local", "s3")
                for side in order:
                    src = f"s3://{BUCKET}/{name}/" if side == "s3" else str(local / "*.jpg")
                    rows[side].append(m5_epochs(src, train))
            s3_first, s3_steady = (med(x[i] for x in rows["s3"]) for i in (0, 1))
            lo_first, lo_steady = (med(x[i] for x in rows["local"]) for i in (0, 1))
            ratio = med(s[1] / lo[1] for s, lo in zip(rows["s3"], rows["local"]))
            ratio_first = med(s[0] / lo[0] for s, lo in zip(rows["s3"], rows["local"]))
            print(
                f"(1) {name} ({mean_kb:.0f} KB, {a.images} objects) imagenet-train, 2 workers: "
                f"S3 {s3_steady:.0f} img/s vs local {lo_steady:.0f} -> {ratio:.2f}x steady; "
                f"first epoch {s3_first:.0f} vs {lo_first:.0f} -> {ratio_first:.2f}x"
            )
            # the floor: the local run keeps both cores busy, so an image costs 2 / rate
            # CPU-s there; from S3 it costs at least that plus the server's CPU per GET
            srv, cli = get_cost(server, c, [k for k, _ in items])
            per_image = 2.0 / lo_steady
            print(
                f"    floor: server {srv * 1e3:.2f} ms CPU per GET, CRT client "
                f"{cli * 1e3:.2f} ms; local {per_image * 1e3:.2f} ms CPU per image -> at most "
                f"{per_image / (per_image + srv):.2f}x local with a free client, "
                f"{per_image / (per_image + srv + cli):.2f}x with this client's GET cost"
            )
            if name != "33k":
                continue
            m5_raw, s3tc = [], []
            for r in range(a.repeats):
                sides = ("m5", "s3tc") if r % 2 == 0 else ("s3tc", "m5")
                for side in sides:
                    if side == "m5":
                        m5_raw.append(m5_epochs(f"s3://{BUCKET}/{name}/", None)[1])
                    else:
                        s3tc.append(s3tc_epoch(server.endpoint, f"{name}/"))
            ratio = med(m / t for m, t in zip(m5_raw, s3tc))
            print(
                f"(2) {name} raw objects, no transform, 2 workers: m5 {med(m5_raw):.0f} "
                f"objects/s vs s3torchconnector {med(s3tc):.0f} -> {ratio:.2f}x"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
