"""m5stream.torch.IterableDataset inside torch DataLoaders, both ways."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import m5stream as m5
from m5stream.torch import IterableDataset
from tests.helpers import make_tar_dataset


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> m5.Dataset:
    return m5.dataset(make_tar_dataset(tmp_path_factory.mktemp("t"), shards=4, per_shard=13))


def _reference(ds: m5.Dataset, epoch: int = 0) -> list[list[int]]:
    with m5.Loader(ds, 8, shuffle=True, seed=3, output="numpy") as lo:
        lo.set_epoch(epoch)
        return [b["__index__"].tolist() for b in lo]


def test_batch_mode_with_m5_workers(ds: m5.Dataset) -> None:
    ids = IterableDataset(ds, 8, shuffle=True, seed=3, num_workers=2)
    try:
        got = [b["__index__"].tolist() for b in torch.utils.data.DataLoader(ids, batch_size=None)]
        assert got == _reference(ds)
        b = next(iter(torch.utils.data.DataLoader(ids, batch_size=None)))
        assert isinstance(b["__index__"], torch.Tensor)
    finally:
        ids.close()


@pytest.mark.parametrize("workers", [1, 3])
def test_sample_mode_with_torch_workers(ds: m5.Dataset, workers: int) -> None:
    ids = IterableDataset(ds, 8, shuffle=True, seed=3)
    ids.set_epoch(1)
    dl = torch.utils.data.DataLoader(ids, batch_size=8, num_workers=workers)
    got = [b["__index__"].tolist() for b in dl]
    assert got == _reference(ds, epoch=1)
    b = next(iter(dl))
    assert b["__key__"][0] == f"s{b['__index__'][0].item():06d}"
    assert isinstance(b["bin"], list) and isinstance(b["bin"][0], bytes)


def test_bad_unit(tmp_path: Path) -> None:
    with pytest.raises(m5.ConfigError):
        IterableDataset("synthetic://4", 2, unit="row")
