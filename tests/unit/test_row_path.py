"""The row path (``workers.task.load_samples``): samples read in storage order, handed back
in the batch's order, failures those of the batch's order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import m5stream as m5
from m5stream.workers.task import load_samples
from tests.helpers import make_parquet_dataset


class FailOn:
    def __init__(self, *indices: int) -> None:
        self.indices = set(indices)

    def __call__(self, s: dict[str, Any]) -> dict[str, Any]:
        if s["__index__"] in self.indices:
            raise m5.CorruptData(f"bad sample {s['__index__']}", key=s["__key__"])
        return s


@pytest.fixture()
def ds(tmp_path: Path) -> m5.Dataset:
    return m5.dataset(make_parquet_dataset(tmp_path, files=2, per_file=100, row_group=25))


def test_a_shuffled_batch_decodes_each_row_group_once(
    ds: m5.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    from m5stream.formats import parquet

    decoded: list[tuple[str, int]] = []
    real = parquet.ParquetReader.decode_table

    def spy(self: Any, unit: int, fetched: Any = None) -> Any:
        decoded.append((self.shard.key, unit))
        return real(self, unit, fetched)

    monkeypatch.setattr(parquet.ParquetReader, "decode_table", spy)
    idx = np.random.default_rng(3).permutation(200)[:64]
    res = load_samples(ds, FailOn(), idx, seed=0, epoch=0, on_error="raise")
    assert [int(s["id"]) for s in res.samples] == idx.tolist()  # the batch's order
    groups = {(f"part-{i // 100:03d}.parquet", (i % 100) // 25) for i in idx.tolist()}
    assert sorted(decoded) == sorted(groups)  # each touched row group once


def test_failures_are_those_of_the_batch_order(ds: m5.Dataset) -> None:
    idx = np.array([150, 7, 120, 3, 60, 199], dtype=np.int64)
    tf = FailOn(120, 3)  # 3 comes first in storage order, 120 first in the batch
    res = load_samples(ds, tf, idx, seed=0, epoch=0, on_error="raise")
    assert res.error is not None and res.error.index == 120
    assert "bad sample 120" in str(res.error.to_exception(None))
    res = load_samples(ds, tf, idx, seed=0, epoch=0, on_error="skip")
    assert [r[0] for r in res.skipped] == [120, 3]
    assert [int(s["id"]) for s in res.samples] == [150, 7, 60, 199]


def test_decoded_row_groups_are_kept_within_the_process_budget(
    ds: m5.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random access keeps decoded row groups up to the budget (each decoded once over two
    shuffled passes), and never holds more than the budget."""
    from m5stream.formats import parquet

    decoded: list[int] = []
    real = parquet.ParquetReader.decode_table

    def spy(self: Any, unit: int, fetched: Any = None) -> Any:
        decoded.append(unit)
        return real(self, unit, fetched)

    monkeypatch.setattr(parquet.ParquetReader, "decode_table", spy)
    monkeypatch.setattr(parquet, "_BLOCKS", parquet._BlockCache(64 << 20))
    order = np.random.default_rng(1).permutation(200).tolist() * 2
    assert [int(ds[i]["id"]) for i in order] == order
    assert len(decoded) == 8  # 2 files x 4 row groups, once each
    one = parquet._BLOCKS._bytes // 8
    small = parquet._BlockCache(one * 4 + one // 2)  # room for 4 of the 8
    monkeypatch.setattr(parquet, "_BLOCKS", small)
    decoded.clear()
    ds.close()  # the readers' own last block goes too
    assert [int(ds[i]["id"]) for i in order] == order
    assert small._bytes <= small.limit and len(small._items) == 4
    assert 8 < len(decoded) < len(order)
