"""Every stateful component through the shared resume harness (tests/resume_harness.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import m5stream as m5
from tests.helpers import make_parquet_dataset, make_tar_dataset
from tests.resume_harness import check_resume

GLOBAL_BATCH = 24
EPOCHS = 2
MATRIX = [(nw, ws) for nw in (0, 1, 3) for ws in (1, 2, 4)]


class LoaderNode:
    """m5.Loader driven the way a training loop without set_epoch drives it."""

    def __init__(self, ds: m5.Dataset, nw: int, rank: int, ws: int, **kw: Any) -> None:
        # the harness checks exactly-once coverage: no even-batches padding of the last step
        kw.setdefault("even_batches", False)
        self.loader = m5.Loader(
            ds, GLOBAL_BATCH // ws, num_workers=nw, rank=rank, world_size=ws, output="numpy", **kw
        )
        self.it: Any = None

    def reset(self, state: dict[str, Any] | None) -> None:
        if state is not None:
            # the state must survive a JSON round trip (it goes into checkpoints)
            self.loader.load_state_dict(json.loads(json.dumps(state)))
        self.it = None

    def next(self) -> list[int]:
        while True:
            if self.it is None:
                lo = self.loader
                if lo.epoch >= EPOCHS - 1 and lo.step >= lo.steps_per_epoch:
                    raise StopIteration
                self.it = iter(lo)
            try:
                return self.ids(next(self.it))
            except StopIteration:
                self.it = None

    def ids(self, batch: dict[str, Any]) -> list[Any]:
        """What the harness compares of a batch."""
        ids: list[Any] = batch["__index__"].tolist()
        return ids

    def get_state(self) -> dict[str, Any]:
        return self.loader.state_dict()

    def shutdown(self) -> None:
        self.loader.close()


@pytest.fixture(scope="module")
def tar_ds(tmp_path_factory: pytest.TempPathFactory) -> m5.Dataset:
    root = tmp_path_factory.mktemp("resume")
    return m5.dataset(make_tar_dataset(root, shards=10, per_shard=25))  # 250 samples


@pytest.mark.parametrize(
    ("shuffle", "reads"),
    [("global", "threads"), ("block", "threads"), ("none", "threads"), ("block", "workers")],
)
def test_loader_resume_matrix_drop_last(tar_ds: m5.Dataset, shuffle: str, reads: str) -> None:
    """Untransformed tar in the natural or block order takes the block path (threads map
    whole shards ahead); ``columnar_reads="workers"`` keeps the worker processes."""
    kw = {"shuffle": shuffle, "seed": 11, "drop_last": True, "block_size": 40}
    kw["columnar_reads"] = reads
    assert (m5.Loader(tar_ds, 8, **kw).executor_kind == "threads") == (
        shuffle != "global" and reads == "threads"
    )
    check_resume(
        lambda nw, r, ws: LoaderNode(tar_ds, nw, r, ws, **kw),
        configs=MATRIX,
        num_samples=len(tar_ds),
        global_batch=GLOBAL_BATCH,
        epochs=EPOCHS,
        drop_last=True,
    )


def test_loader_resume_matrix_keep_last(tar_ds: m5.Dataset) -> None:
    kw = {"shuffle": True, "seed": 5, "drop_last": False}
    check_resume(
        lambda nw, r, ws: LoaderNode(tar_ds, nw, r, ws, **kw),
        configs=MATRIX,
        num_samples=len(tar_ds),
        global_batch=GLOBAL_BATCH,
        epochs=EPOCHS,
        drop_last=False,
    )


@pytest.fixture(scope="module")
def parquet_ds(tmp_path_factory: pytest.TempPathFactory) -> m5.Dataset:
    root = tmp_path_factory.mktemp("resume-pq")
    # 250 rows in 4 files of row groups of 16: batches straddle row groups and files
    for i, n in enumerate((70, 64, 80, 36)):
        make_parquet_dataset(root / f"f{i}", files=1, per_file=n, row_group=16)
    return m5.dataset(str(root) + "/**/*.parquet", columns=["id", "title"])


@pytest.mark.parametrize("shuffle", ["none", "block"])
def test_loader_resume_matrix_parquet_blocks(parquet_ds: m5.Dataset, shuffle: str) -> None:
    """The block path (threads decode row groups ahead; batches sliced in the trainer)."""
    assert m5.Loader(parquet_ds, 8, shuffle=shuffle).executor_kind == "threads"
    kw = {"shuffle": shuffle, "seed": 4, "drop_last": False, "block_size": 40}
    check_resume(
        lambda nw, r, ws: LoaderNode(parquet_ds, nw, r, ws, **kw),
        configs=MATRIX,
        num_samples=len(parquet_ds),
        global_batch=GLOBAL_BATCH,
        epochs=EPOCHS,
        drop_last=False,
    )


class TorchBatchNode:
    """m5stream.torch.IterableDataset in batch mode inside a StatefulDataLoader."""

    def __init__(self, ds: m5.Dataset, nw: int, rank: int, ws: int) -> None:
        from torchdata.stateful_dataloader import StatefulDataLoader

        from m5stream.torch import IterableDataset

        self.ids = IterableDataset(
            ds,
            GLOBAL_BATCH // ws,
            shuffle=True,
            seed=3,
            drop_last=True,
            num_workers=nw,
            rank=rank,
            world_size=ws,
        )
        self.dl = StatefulDataLoader(self.ids, batch_size=None, num_workers=0)
        self.epoch = 0
        self.it: Any = None

    def reset(self, state: dict[str, Any] | None) -> None:
        if state is not None:
            self.dl.load_state_dict(state["dl"])
            self.epoch = state["epoch"]

    def next(self) -> list[int]:
        while True:
            if self.it is None:
                if self.epoch >= EPOCHS:
                    raise StopIteration
                self.ids.set_epoch(self.epoch)
                self.it = iter(self.dl)
            try:
                return next(self.it)["__index__"].tolist()
            except StopIteration:
                self.it = None
                self.epoch += 1

    def get_state(self) -> dict[str, Any]:
        return {"dl": self.dl.state_dict(), "epoch": self.epoch}

    def shutdown(self) -> None:
        self.it = None
        self.ids.close()


class TorchSampleNode(TorchBatchNode):
    """The IterableDataset in sample mode: torch workers, torch batching, StatefulDataLoader.

    torchdata requires the same number of torch workers on resume, so ``nw`` is not used:
    every configuration runs 2 torch workers (only ``world_size`` changes across resume).
    """

    def __init__(self, ds: m5.Dataset, nw: int, rank: int, ws: int) -> None:
        from torchdata.stateful_dataloader import StatefulDataLoader

        from m5stream.torch import IterableDataset

        self.ids = IterableDataset(
            ds,
            GLOBAL_BATCH // ws,
            shuffle=True,
            seed=3,
            drop_last=True,
            rank=rank,
            world_size=ws,
            unit="sample",
        )
        self.dl = StatefulDataLoader(self.ids, batch_size=GLOBAL_BATCH // ws, num_workers=2)
        self.epoch = 0
        self.it = None


@pytest.mark.parametrize("node", [TorchBatchNode, TorchSampleNode])
def test_torch_dataset_resume(tar_ds: m5.Dataset, node: type) -> None:
    check_resume(
        lambda nw, r, ws: node(tar_ds, nw, r, ws),
        configs=[(0, 1), (2, 2), (1, 4)],
        num_samples=len(tar_ds),
        global_batch=GLOBAL_BATCH,
        epochs=EPOCHS,
        drop_last=True,
    )
