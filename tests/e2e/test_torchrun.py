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
TORCH_SCRIPT = Path(__file__).with_name("ddp_torch_script.py")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun(nproc: int, out: Path, *args: str, script: Path = SCRIPT) -> list[dict[str, Any]]:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={nproc}",
        "--master_addr=127.0.0.1",
        f"--master_port={_port()}",
        str(script),
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


def test_torchrun_sample_mode_takes_ranks_from_the_environment(tmp_path: Path) -> None:
    """``m5stream.torch.IterableDataset`` in torch workers, no ``rank`` given: each rank
    must read its share of every global step, as the Loader does under torchrun."""
    source, n, per_rank, ws, save_at = "synthetic://2000?shard_size=250", 2000, 16, 2, 5
    ranks = torchrun(
        ws,
        tmp_path / "out",
        "--source",
        source,
        "--batch-size",
        str(per_rank),
        "--save-at",
        str(save_at),
        script=TORCH_SCRIPT,
    )
    assert [r["env_rank"] for r in ranks] == ["0", "1"]
    g = per_rank * ws
    steps = -(-n // g)
    # the reference: global step t is positions [t*g, (t+1)*g), padded (even_batches) with
    # the epoch's first positions to a multiple of world_size, split in contiguous halves
    order = Order([250] * 8, shuffle=True, seed=11)
    expected: list[list[list[int]]] = [[], []]
    for t in range(steps):
        pos = np.arange(t * g, min((t + 1) * g, n))
        pos = np.concatenate((pos, np.arange((-len(pos)) % ws)))
        idx = order.indices(0, pos).tolist()
        half = len(idx) // ws
        for r in range(ws):
            expected[r].append(idx[r * half : (r + 1) * half])
    mine = [{i for b in r["plain"] for i in b} for r in ranks]
    assert not mine[0] & mine[1]  # disjoint
    assert [len(r["plain"]) for r in ranks] == [steps, steps]  # equal counts: no DDP hang
    flat = [i for r in ranks for b in r["plain"] for i in b]
    pad = (-(n - (steps - 1) * g)) % ws  # the last step's padding (zero here: 16 over 2)
    assert sorted(flat) == sorted([*range(n), *order.indices(0, np.arange(pad)).tolist()])
    for t in range(steps):
        got = ranks[0]["plain"][t] + ranks[1]["plain"][t]
        assert got == expected[0][t] + expected[1][t]
    # StatefulDataLoader: the same batches, and a fresh one resumes exactly after save_at
    for r, rank in enumerate(ranks):
        assert rank["full"] == expected[r]
        assert rank["resumed"] == expected[r][save_at:]
