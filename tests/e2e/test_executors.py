"""Every executor delivers the same batches: the choice is made once, shown in stats, and
the user's override runs the same plan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import m5stream as m5
from tests.e2e import fns
from tests.helpers import make_parquet_dataset, make_tar_dataset


def _epoch(lo: m5.Loader) -> list[tuple[list[int], list[str]]]:
    return [(b["__index__"].tolist(), list(b["__key__"])) for b in lo]


@pytest.mark.parametrize("fmt", ["parquet", "tar"])
@pytest.mark.parametrize("shuffle", [False, "block"])
def test_inline_threads_processes_give_identical_batches(
    tmp_path: Path, fmt: str, shuffle: object
) -> None:
    if fmt == "parquet":
        src = make_parquet_dataset(tmp_path / "pq", files=3, per_file=30, row_group=8)
    else:
        src = make_tar_dataset(tmp_path / "tar", shards=3, per_shard=30)
    ds = m5.dataset(src)
    kw = dict(shuffle=shuffle, seed=4, block_size=16, output="numpy", copy=True)
    got = {}
    for executor, nw in (("inline", 0), ("threads", 2), ("processes", 2)):
        with m5.Loader(ds, 7, num_workers=nw, executor=executor, **kw) as lo:
            assert lo.executor_kind == executor
            got[executor] = _epoch(lo)
            assert lo.stats["executor"] == executor
            assert lo.stats["samples"] == len(ds)
            assert (lo.worker_pids != []) == (executor == "processes")
    assert got["inline"] == got["threads"] == got["processes"]
    with m5.Loader(ds, 7, num_workers=2, **kw) as lo:
        assert lo.executor_kind == "threads"  # the automatic choice for these formats
        assert _epoch(lo) == got["inline"]


def test_a_python_transform_runs_in_processes_and_a_forced_threads_is_refused(
    tmp_path: Path,
) -> None:
    ds = m5.dataset(make_tar_dataset(tmp_path / "tar", shards=2, per_shard=10))

    def tf(s: dict) -> dict:
        return {**s, "n": np.int64(len(s["bin"]))}

    with m5.Loader(ds, 4, transform=fns.PidAfter(0), num_workers=2) as lo:
        assert lo.executor_kind == "processes"
    # a nested function cannot reach a worker: said when the Loader is made, not later
    with pytest.raises(m5.ConfigError, match="cannot be sent to worker processes"):
        m5.Loader(ds, 4, transform=tf, num_workers=2)
    assert m5.Loader(ds, 4, transform=tf).executor_kind == "inline"
    with pytest.raises(m5.ConfigError, match="a per-sample or batch transform"):
        m5.Loader(ds, 4, transform=tf, executor="threads")
