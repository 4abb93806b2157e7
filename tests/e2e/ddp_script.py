"""Run under torchrun by tests/e2e/test_torchrun.py: one rank of a DDP-style data loop.

Ranks come from torch.distributed (gloo); every batch is followed by an all_reduce, so unequal
batch counts between ranks would hang (the test's timeout catches that). Writes, per rank,
the ``__index__`` of every batch and the loader state after batch ``--save-at``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import m5stream as m5


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--batch-size", type=int, required=True)
    ap.add_argument("--save-at", type=int, default=-1)
    ap.add_argument("--resume", default=None)
    a = ap.parse_args()
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    ds = m5.dataset("synthetic://203?shard_size=50")
    lo = m5.Loader(ds, a.batch_size, shuffle=True, seed=11, num_workers=1, output="numpy")
    assert (lo.rank, lo.world_size) == (rank, dist.get_world_size())
    if a.resume:
        lo.load_state_dict(json.loads(Path(a.resume).read_text()))
    batches, state = [], None
    for i, b in enumerate(lo):
        batches.append(b["__index__"].tolist())
        t = torch.ones(1)
        dist.all_reduce(t)  # a rank with fewer batches would leave the others hanging here
        if i + 1 == a.save_at:
            state = lo.state_dict()
    lo.close()
    Path(a.out, f"rank{rank}.json").write_text(
        json.dumps(
            {"batches": batches, "len": len(lo), "state": state, "env_rank": os.environ["RANK"]}
        )
    )
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
