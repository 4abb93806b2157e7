"""A tiny model trained on CPU from an m5stream dataset, checkpointing asynchronously and
resuming exactly after a crash (AutoResume).

    python examples/train_autoresume.py s3://bucket/data/ s3://bucket/ckpt/ --steps 60 --every 10

Every ``--every`` steps it saves the model, the optimizer and the loader position with
``m5stream.checkpoint.save(..., blocking=False)`` (the upload runs while training goes on).
On start it looks for the newest complete checkpoint under the checkpoint prefix and continues
from it; because the data order is a pure function of the loader state and the model math is
deterministic, the per-step losses of a run that was killed and restarted equal those of an
uninterrupted run bit for bit. ``--log`` appends ``step N loss <float.hex>`` lines (and
``ckpt-start N`` when a checkpoint upload begins, ``ckpt-done N`` when it is complete). The
dataset is Parquet with float columns ``f0``..``f7`` and ``y``; ``--make-data`` writes such
a dataset first.
"""

from __future__ import annotations

import argparse
import io
import sys
import threading
from typing import Any

import numpy as np
import torch

import m5stream as m5
from m5stream import checkpoint

FEATURES = [f"f{i}" for i in range(8)]


def make_data(uri: str, rows: int = 2000, files: int = 4) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from m5stream.storage.s3 import client, parse_s3_uri

    rng = np.random.default_rng(0)
    w = rng.normal(size=8)
    for f in range(files):
        x = rng.normal(size=(rows // files, 8)).astype(np.float32)
        y = (x @ w + rng.normal(scale=0.1, size=len(x))).astype(np.float32)
        table = pa.table({**{n: x[:, i] for i, n in enumerate(FEATURES)}, "y": y})
        buf = io.BytesIO()
        pq.write_table(table, buf, row_group_size=100)
        name = f"part-{f}.parquet"
        if uri.startswith("s3://"):
            bucket, key = parse_s3_uri(uri.rstrip("/") + "/" + name)
            client().put(bucket, key, buf.getvalue())
        else:
            import os

            os.makedirs(uri, exist_ok=True)
            with open(os.path.join(uri, name), "wb") as fh:
                fh.write(buf.getvalue())


def _log_done(log: Any, lock: threading.Lock, fut: Any, step: int) -> None:
    """``ckpt-done N`` once checkpoint ``N`` is complete (its upload's future resolved)."""
    if fut.exception() is None:
        with lock:
            log.write(f"ckpt-done {step}\n")
            log.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("ckpt")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--log", default=None)
    ap.add_argument("--ballast-mb", type=int, default=0, help="extra checkpoint bytes (tests)")
    ap.add_argument("--make-data", action="store_true")
    a = ap.parse_args(argv)
    if a.make_data:
        make_data(a.data)
    torch.set_num_threads(1)  # bit-exact CPU math from run to run
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ds = m5.dataset(a.data, columns=[*FEATURES, "y"])
    loader = m5.Loader(ds, a.batch_size, shuffle=True, seed=0, num_workers=a.workers)
    step = 0
    found = checkpoint.latest(a.ckpt)
    if found is not None:
        state = checkpoint.load(found, loader=loader)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        print(f"resumed from {found} at step {step}", file=sys.stderr)
    log = open(a.log, "a") if a.log else None  # noqa: SIM115 - closed below
    log_lock = threading.Lock()
    ballast = torch.zeros(a.ballast_mb << 18)  # float32: 4 bytes each
    try:
        while step < a.steps:
            for batch in loader:
                x = torch.stack([batch[n] for n in FEATURES], dim=1)
                y = batch["y"].unsqueeze(1)
                loss = torch.nn.functional.mse_loss(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
                if log:
                    with log_lock:  # the upload threads' "ckpt-done" lines share the file
                        log.write(f"step {step} loss {loss.item().hex()}\n")
                        log.flush()
                if step % a.every == 0:
                    fut = checkpoint.save(
                        f"{a.ckpt.rstrip('/')}/step-{step:06d}",
                        {
                            "model": model.state_dict(),
                            "optimizer": opt.state_dict(),
                            "step": step,
                            "ballast": ballast,
                        },
                        loader=loader,
                        step=step,
                    )
                    if log:
                        with log_lock:
                            log.write(f"ckpt-start {step}\n")
                            log.flush()
                        fut.add_done_callback(lambda f, s=step: _log_done(log, log_lock, f, s))
                if step >= a.steps:
                    break
        checkpoint.wait()
    finally:
        loader.close()
        if log:
            log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
