"""The Loader end to end: batches, workers, failures, skipping, shared memory, epochs, state."""

from __future__ import annotations

import logging
import os
import signal
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

import m5stream as m5
from tests.e2e import fns
from tests.helpers import make_tar_dataset, our_memfd_mappings, sample_bytes, wait_gone


@pytest.fixture(scope="module")
def tar_ds(tmp_path_factory: pytest.TempPathFactory) -> m5.Dataset:
    return m5.dataset(make_tar_dataset(tmp_path_factory.mktemp("tar"), shards=6, per_shard=20))


def _indices(loader: m5.Loader) -> list[list[int]]:
    return [b["__index__"].tolist() for b in loader]


@pytest.mark.parametrize("nw", [0, 2])
def test_batches_carry_exact_bytes_and_keys(tar_ds: m5.Dataset, nw: int) -> None:
    with m5.Loader(tar_ds, 16, shuffle=True, seed=1, num_workers=nw, output="numpy") as lo:
        n = 0
        for b in lo:
            idx = b["__index__"]
            assert idx.dtype == np.int64
            assert b["__key__"] == [f"s{i:06d}" for i in idx.tolist()]
            assert b["bin"] == [sample_bytes(i) for i in idx.tolist()]
            assert b["cls"] == [str(i).encode() for i in idx.tolist()]
            n += len(idx)
        assert n == 120 and lo.stats["samples"] == 120 and lo.stats["batches"] == 8


def test_order_does_not_depend_on_workers_or_prefetch(tar_ds: m5.Dataset) -> None:
    runs = []
    for nw, pf in [(0, None), (1, 1), (3, 2), (3, 7)]:
        with m5.Loader(
            tar_ds,
            7,
            shuffle="block",
            block_size=30,
            seed=4,
            num_workers=nw,
            prefetch=pf,
            output="numpy",
        ) as lo:
            runs.append(_indices(lo))
    assert all(r == runs[0] for r in runs)
    assert sorted(i for b in runs[0] for i in b) == list(range(120))


def test_random_transforms_are_keyed_by_sample_not_worker(tar_ds: m5.Dataset) -> None:
    out = {}
    for nw in (0, 3):
        with m5.Loader(
            tar_ds,
            10,
            shuffle=True,
            seed=9,
            num_workers=nw,
            transform=fns.RandomJitter(),
            output="numpy",
        ) as lo:
            lo.set_epoch(2)
            out[nw] = {
                i: n.tolist() for b in lo for i, n in zip(b["__index__"].tolist(), b["noise"])
            }
    assert out[0] == out[3]
    assert len({tuple(v) for v in out[0].values()}) == 120


def test_torch_output_is_tensors(tar_ds: m5.Dataset) -> None:
    import torch

    with m5.Loader(tar_ds, 8, num_workers=1, transform=fns.Big(10), output="torch") as lo:
        b = next(iter(lo))
        assert isinstance(b["x"], torch.Tensor) and b["x"].shape == (8, 10)
        assert isinstance(b["__index__"], torch.Tensor) and b["__index__"].dtype == torch.int64
        assert b["__index__"].tolist() == list(range(8))


def test_worker_exception_reraised_with_traceback_and_key(tar_ds: m5.Dataset) -> None:
    with m5.Loader(tar_ds, 8, num_workers=2, transform=fns.FailOn(13), output="numpy") as lo:
        with pytest.raises(m5.WorkerError) as e:
            _indices(lo)
    err = e.value
    assert err.key == "s000013" and err.index == 13 and err.cause_type == "KeyError"
    assert "in __call__" in err.worker_traceback and "fns.py" in err.worker_traceback
    assert "s000013" in str(err) and "Worker traceback" in str(err)


def test_inline_and_worker_paths_raise_the_same_error(tar_ds: m5.Dataset) -> None:
    with m5.Loader(tar_ds, 8, num_workers=0, transform=fns.FailOn(3), output="numpy") as lo:
        with pytest.raises(m5.WorkerError) as e:
            _indices(lo)
    assert e.value.key == "s000003"


def _truncate_member(shard: Path, member: str) -> None:
    with tarfile.open(shard) as tf:
        m = tf.getmember(member)
    data = bytearray(shard.read_bytes())
    # overwrite the member's header magic so a re-scan would fail, and truncate the file
    shard.write_bytes(bytes(data[: m.offset_data + 5]))


@pytest.fixture
def damaged_ds(tmp_path: Path) -> m5.Dataset:
    ds = m5.dataset(make_tar_dataset(tmp_path, shards=3, per_shard=10))
    _truncate_member(tmp_path / "shard-00002.tar", "s000027.bin")
    return ds  # manifest made before the damage: samples 27, 28, 29 are now unreadable


@pytest.mark.parametrize("nw", [0, 2])
def test_corrupt_sample_raises_m5_error_naming_it(damaged_ds: m5.Dataset, nw: int) -> None:
    with m5.Loader(damaged_ds, 5, num_workers=nw, output="numpy") as lo:
        with pytest.raises(m5.CorruptData) as e:
            _indices(lo)
    assert e.value.key == "s000027" and "shard-00002.tar" in str(e.value)


@pytest.mark.parametrize("nw", [0, 2])
def test_on_error_skip_counts_records_and_logs_once(
    damaged_ds: m5.Dataset, nw: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="m5stream"):
        with m5.Loader(damaged_ds, 5, num_workers=nw, on_error="skip", output="numpy") as lo:
            got = [i for b in _indices(lo) for i in b]
            state = lo.state_dict()
            stats = lo.stats
    assert got == [i for i in range(30) if i not in (27, 28, 29)]
    assert stats["skipped"] == 3
    assert [r[1:3] for r in state["skipped"]] == [[27, "s000027"], [28, "s000028"], [29, "s000029"]]
    assert state["skipped_count"] == 3 and all(r[0] == 0 for r in state["skipped"])
    logged = [r for r in caplog.records if "skipped sample" in r.getMessage()]
    assert len(logged) == 3 and "s000027" in logged[0].getMessage()


def test_sigkilled_worker_becomes_an_error_within_5s(tar_ds: m5.Dataset) -> None:
    lo = m5.Loader(tar_ds, 4, num_workers=2, transform=fns.Slow(0.2), output="numpy")
    try:
        it = iter(lo)
        next(it)
        victim = lo.worker_pids[1]
        os.kill(victim, signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(m5.WorkerDied, match="SIGKILL"):
            for _ in it:
                pass
        assert time.monotonic() - t0 < 5.0
        assert lo.worker_pids == []  # the pool was torn down
        # the loader is usable again: a new iteration starts fresh workers where it stopped
        step = lo.step
        assert next(iter(lo))["__index__"].tolist() == [4 * step + i for i in range(4)]
        assert len(lo.worker_pids) == 2 and victim not in lo.worker_pids
    finally:
        lo.close()


@pytest.mark.parametrize("inline_start", [False, True])
def test_ring_grows_for_big_batches_and_data_stays_exact(
    tar_ds: m5.Dataset, inline_start: bool
) -> None:
    """Without inline_start the workers' first batches do not fit the 1 MiB initial slots:
    they come through the pipe and the ring grows once. With it, the trainer's first batch
    sizes the ring before it is made: no batch comes through the pipe, the ring never grows."""
    big = 300_000  # 8 x 300 kB = 2.4 MB per batch > the 1 MiB initial slots
    with m5.Loader(
        tar_ds,
        8,
        num_workers=2,
        # slow enough that the workers are up long before the epoch ends
        transform=fns.Big(big, delay=0.05 if inline_start else 0.0),
        output="numpy",
        inline_start=inline_start,
    ) as lo:
        for b in lo:
            expect = (b["__index__"] % 251).astype(np.uint8)
            assert b["x"].shape == (8, big)
            assert (b["x"] == expect[:, None]).all()
        st = lo.stats
    assert st["batches"] == 15
    if inline_start:
        assert st["ring_grows"] == 0 and st["inline_batches"] == 0
        assert 1 <= st["startup_batches"] < 15
    else:
        assert st["ring_grows"] == 1 and 1 <= st["inline_batches"] <= 4
        assert st["startup_batches"] == 0


def test_zero_copy_batches_stay_valid_while_held(tar_ds: m5.Dataset) -> None:
    with m5.Loader(
        tar_ds,
        8,
        num_workers=2,
        transform=fns.Big(1000),
        output="numpy",
        prefetch=2,
        inline_start=False,  # batches in slots from the first one
    ) as lo:
        it = iter(lo)
        held = next(it)
        snapshot = held["x"].copy()
        for _ in range(4):
            next(it)
        assert np.array_equal(held["x"], snapshot)  # its slot was not reused
        assert our_memfd_mappings()


def test_holding_every_slot_is_a_clear_error(tar_ds: m5.Dataset) -> None:
    with m5.Loader(
        tar_ds,
        4,
        num_workers=1,
        transform=fns.Big(100),
        output="numpy",
        prefetch=1,
        inline_start=False,  # every batch in a slot
    ) as lo:
        kept = []
        with pytest.raises(m5.SlotsExhausted, match="copy=True"):
            for b in lo:
                kept.append(b)
        assert len(kept) == 3  # prefetch + 2 slots
        kept.clear()
    with m5.Loader(
        tar_ds, 4, num_workers=1, transform=fns.Big(100), output="numpy", prefetch=1, copy=True
    ) as lo:
        kept = list(lo)
        assert len(kept) == 30
        assert all((b["x"] == (b["__index__"] % 251)[:, None]).all() for b in kept)


def test_epochs_set_epoch_and_auto_advance(tar_ds: m5.Dataset) -> None:
    with m5.Loader(tar_ds, 40, shuffle=True, seed=2, output="numpy") as lo:
        e0 = _indices(lo)
        assert lo.epoch == 0 and lo.step == 3
        e1 = _indices(lo)  # iterating again moves on to epoch 1
        assert lo.epoch == 1 and e1 != e0
        lo.set_epoch(1)  # same epoch, already complete: nothing more
        assert _indices(lo) == []
        lo.set_epoch(0)
        assert _indices(lo) == e0
    assert len(m5.Loader(tar_ds, 40, output="numpy")) == 3
    assert len(m5.Loader(tar_ds, 50, output="numpy")) == 3
    assert len(m5.Loader(tar_ds, 50, drop_last=True, output="numpy")) == 2


def test_state_is_small_json_and_checks_what_changed(tmp_path: Path) -> None:
    import json

    pattern = make_tar_dataset(tmp_path, shards=2, per_shard=10)
    ds = m5.dataset(pattern)
    with m5.Loader(ds, 4, shuffle=True, seed=1, output="numpy") as lo:
        it = iter(lo)
        next(it)
        state = json.loads(json.dumps(lo.state_dict()))
    assert len(json.dumps(state)) < 1000
    assert state["step"] == 1 and state["epoch"] == 0 and state["version"] == 1
    with pytest.raises(m5.StateMismatch, match="seed: saved 1, loader 2"):
        m5.Loader(ds, 4, shuffle=True, seed=2, output="numpy").load_state_dict(state)
    with pytest.raises(m5.StateMismatch, match="global_batch_size: saved 4, loader 8"):
        m5.Loader(
            ds, 4, shuffle=True, seed=1, world_size=2, rank=0, output="numpy"
        ).load_state_dict(state)
    make_tar_dataset(tmp_path, shards=2, per_shard=11)  # the data changed
    changed = m5.dataset(pattern)
    with pytest.raises(m5.StateMismatch, match="dataset changed") as e:
        m5.Loader(changed, 4, shuffle=True, seed=1, output="numpy").load_state_dict(state)
    assert "samples 20 -> 22" in str(e.value) and 'on_change="new_epoch"' in str(e.value)
    # accepting the change on purpose: the new data starts at the next epoch's first step
    lo2 = m5.Loader(changed, 4, shuffle=True, seed=1, output="numpy")
    lo2.load_state_dict(state, on_change="new_epoch")
    assert (lo2.epoch, lo2.step) == (1, 0)
    fresh = m5.Loader(changed, 4, shuffle=True, seed=1, output="numpy")
    fresh.set_epoch(1)
    want = [b["__index__"].tolist() for b in fresh]
    assert [b["__index__"].tolist() for b in lo2] == want and len(want) == 6
    with pytest.raises(m5.ConfigError, match="on_change"):
        lo2.load_state_dict(state, on_change="ignore")


def test_bad_arguments() -> None:
    ds = m5.dataset("synthetic://10")
    with pytest.raises(m5.ConfigError):
        m5.Loader(ds, 0)
    with pytest.raises(m5.ConfigError):
        m5.Loader(ds, 2, on_error="ignore")
    with pytest.raises(m5.ConfigError):
        m5.Loader(ds, 2, rank=2, world_size=2)


def test_rank_and_world_size_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    lo = m5.Loader(m5.dataset("synthetic://10"), 2, output="numpy")
    assert (lo.rank, lo.world_size) == (1, 2)
    assert _indices(lo) == [[2, 3], [6, 7], [9]]  # rank 1's part of each global batch of 4
    lo.close()


def test_wait_gone_helper_sees_exits() -> None:
    assert wait_gone([os.getpid()], timeout=0.1) == {os.getpid()}


def test_stopping_early_gives_every_slot_back(tar_ds: m5.Dataset) -> None:
    with m5.Loader(
        tar_ds,
        4,
        num_workers=2,
        transform=fns.Big(100),
        output="numpy",
        prefetch=4,
        inline_start=False,  # batches in flight from the first iteration
    ) as lo:
        for _ in range(5):
            it = iter(lo)
            next(it)
            next(it)
            it.close()  # abandon with batches in flight and some already received
        # every slot is usable again: a full pass needs them all without SlotsExhausted
        lo.set_epoch(1)
        assert sum(len(b) for b in _indices(lo)) == 120
        rings = lo._executor.rings
        assert rings is not None and len(rings.free) == rings.num_slots
