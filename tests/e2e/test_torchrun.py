"""Multi-process ranks through ``torchrun`` (CPU, gloo): disjoint, exactly-once, equal batch
counts, and a resume on a different world size that continues the same global order."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from m5stream.sampling import Order

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("ddp_script.py")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun(nproc: int, out: Path, *args: str) -> list[dict[str, Any]]:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={nproc}",
        "--master_addr=127.0.0.1",
        f"--master_port={_port()}",
        str(SCRIPT),
        str(out),
        *args,
    ]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    return [json.loads((out / f"rank{i}.json").read_text()) for i in range(nproc)]


def test_torchrun_ranks_then_resume_on_one_process(tmp_path: Path) -> None:
    n, per_rank = 203, 8  # 13 steps of 16; the last has 11 samples: not even over 2 ranks
    ranks = torchrun(2, tmp_path / "two", "--batch-size", str(per_rank), "--save-at", "5")
    assert [r["env_rank"] for r in ranks] == ["0", "1"]
    counts = [len(r["batches"]) for r in ranks]
    assert counts == [13, 13] and [r["len"] for r in ranks] == [13, 13]  # equal: no DDP hang
    flat = [i for r in ranks for b in r["batches"] for i in b]
    assert not set(ranks[0]["batches"][0]) & set(ranks[1]["batches"][0])  # disjoint
    # exactly once, plus the one sample that pads the uneven last step (the epoch's first)
    order = Order([50, 50, 50, 50, 3], shuffle=True, seed=11).indices(0, np.arange(n))
    assert sorted(flat) == sorted([*range(n), int(order[0])])
    # the global batch of each step is rank 0's part then rank 1's, in the global order
    for step in range(12):
        got = ranks[0]["batches"][step] + ranks[1]["batches"][step]
        assert got == order[step * 16 : (step + 1) * 16].tolist()

    # resume the state rank 0 saved after 5 batches on ONE process with twice the batch
    state = ranks[0]["state"]
    assert state["step"] == 5 and state["global_batch_size"] == 16
    (tmp_path / "state.json").write_text(json.dumps(state))
    one = torchrun(
        1,
        tmp_path / "one",
        "--batch-size",
        str(2 * per_rank),
        "--resume",
        str(tmp_path / "state.json"),
    )[0]
    assert one["batches"] == [order[s * 16 : (s + 1) * 16].tolist() for s in range(5, 13)]
