"""Run under torchrun by tests/e2e/test_torchrun.py: one rank of a DDP-style loop over
``m5stream.torch.IterableDataset`` in sample mode (torch workers, torch batching).

No rank is passed to the dataset: it must come from the environment torchrun sets up (or
torch.distributed, initialised here). Every batch is followed by an all_reduce, so unequal
batch counts between ranks would hang. Writes, per rank, the ``__index__`` of every batch of
a plain ``DataLoader`` epoch, then of a ``StatefulDataLoader`` epoch and of a fresh
``StatefulDataLoader`` resumed from the state saved after batch ``--save-at``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import m5stream as m5
from m5stream.torch import IterableDataset


def _dataset(source: str, batch_size: int) -> IterableDataset:
    return IterableDataset(m5.dataset(source), batch_size=batch_size, shuffle=True, seed=11)


def _run(dl: Any, save_at: int = -1) -> tuple[list[list[int]], dict[str, Any] | None]:
    batches: list[list[int]] = []
    state = None
    for b in dl:
        batches.append(b["__index__"].tolist())
        t = torch.ones(1)
        dist.all_reduce(t)  # a rank with fewer batches would leave the others hanging here
        if len(batches) == save_at:
            state = dl.state_dict()
    return batches, state


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--source", required=True)
    ap.add_argument("--batch-size", type=int, required=True)
    ap.add_argument("--save-at", type=int, required=True)
    a = ap.parse_args()
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    plain, _ = _run(DataLoader(_dataset(a.source, a.batch_size), a.batch_size, num_workers=2))
    stateful = StatefulDataLoader(_dataset(a.source, a.batch_size), a.batch_size, num_workers=2)
    full, state = _run(stateful, a.save_at)
    assert state is not None
    fresh = StatefulDataLoader(_dataset(a.source, a.batch_size), a.batch_size, num_workers=2)
    fresh.load_state_dict(state)
    resumed, _ = _run(fresh)
    Path(a.out, f"rank{rank}.json").write_text(
        json.dumps(
            {
                "plain": plain,
                "full": full,
                "resumed": resumed,
                "env_rank": os.environ["RANK"],
            }
        )
    )
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
