"""Pure sampling functions: coverage, rank slicing, drop_last, block locality, golden orders."""

from __future__ import annotations

import numpy as np
import pytest

from m5stream.errors import ConfigError
from m5stream.sampling import Order, batch_indices, batch_run, rank_bounds, steps_per_epoch


def test_steps_per_epoch() -> None:
    assert steps_per_epoch(100, 10, False) == 10
    assert steps_per_epoch(101, 10, False) == 11
    assert steps_per_epoch(101, 10, True) == 10
    assert steps_per_epoch(5, 10, True) == 0
    with pytest.raises(ConfigError):
        steps_per_epoch(5, 0, True)


def test_rank_bounds_are_array_split_parts() -> None:
    for n in range(0, 23):
        for ws in (1, 2, 3, 4):
            parts = [rank_bounds(n, ws, r) for r in range(ws)]
            expect = np.array_split(np.arange(n), ws)
            assert [list(range(lo, hi)) for lo, hi in parts] == [e.tolist() for e in expect]


@pytest.mark.parametrize("mode", ["none", "global", "block"])
@pytest.mark.parametrize("ws", [1, 2, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_every_sample_once_per_epoch_across_ranks(mode: str, ws: int, drop_last: bool) -> None:
    counts = np.array([13, 0, 29, 7, 50])
    order = Order(counts, shuffle=mode, seed=5, block_size=11)
    n, b = order.num_samples, 4
    seen: list[int] = []
    for step in range(steps_per_epoch(n, b * ws, drop_last)):
        for r in range(ws):
            idx = batch_indices(order, 2, step, batch_size=b, world_size=ws, rank=r)
            assert len(idx) <= b
            seen.extend(idx.tolist())
    expect_count = (n // (b * ws)) * b * ws if drop_last else n
    assert len(seen) == expect_count
    assert len(set(seen)) == len(seen)
    if not drop_last:
        assert sorted(seen) == list(range(n))


def test_rank_slices_of_the_global_batch() -> None:
    order = Order(np.array([100]), shuffle=True, seed=1)
    glob = batch_indices(order, 0, 3, batch_size=8, world_size=1)
    parts = [batch_indices(order, 0, 3, batch_size=2, world_size=4, rank=r) for r in range(4)]
    assert np.concatenate(parts).tolist() == glob.tolist()


def test_no_shuffle_keeps_manifest_order() -> None:
    order = Order(np.array([3, 4]), shuffle=False)
    assert order.indices(7, np.arange(7)).tolist() == list(range(7))


def test_epochs_and_seeds_change_the_order() -> None:
    order = Order(np.array([50]), shuffle=True, seed=1)
    e0 = order.indices(0, np.arange(50)).tolist()
    assert e0 != order.indices(1, np.arange(50)).tolist()
    assert e0 != Order(np.array([50]), shuffle=True, seed=2).indices(0, np.arange(50)).tolist()
    assert e0 == Order(np.array([50]), shuffle=True, seed=1).indices(0, np.arange(50)).tolist()


def test_block_shuffle_keeps_batches_within_few_shards() -> None:
    counts = np.full(64, 100)
    order = Order(counts, shuffle="block", seed=3, block_size=200)
    offsets = np.concatenate(([0], np.cumsum(counts)))
    for step in range(0, 6400 // 50, 7):
        idx = batch_indices(order, 1, step, batch_size=50)
        shards = set(np.searchsorted(offsets, idx, side="right") - 1)
        assert len(shards) <= 3  # a block of 200 spans at most 3 shards of 100


def test_golden_order_is_pinned() -> None:
    # Changing these numbers breaks every saved checkpoint: bump the state version instead.
    g = Order(np.array([20]), shuffle="global", seed=17)
    assert g.indices(0, np.arange(20)).tolist() == GOLDEN_GLOBAL_E0
    assert g.indices(1, np.arange(20)).tolist() == GOLDEN_GLOBAL_E1
    b = Order(np.array([6, 4, 10]), shuffle="block", seed=17, block_size=5)
    assert b.indices(0, np.arange(20)).tolist() == GOLDEN_BLOCK_E0


def test_bad_shuffle_mode() -> None:
    with pytest.raises(ConfigError):
        Order(np.array([3]), shuffle="sideways")


GOLDEN_GLOBAL_E0 = [10, 2, 6, 1, 9, 13, 5, 11, 19, 16, 14, 8, 12, 15, 18, 17, 3, 4, 7, 0]
GOLDEN_GLOBAL_E1 = [10, 18, 11, 5, 1, 13, 17, 8, 16, 0, 4, 7, 19, 12, 14, 9, 15, 3, 6, 2]
# shards visited 1, 2, 0; blocks of 5 permuted in place
GOLDEN_BLOCK_E0 = [9, 6, 8, 10, 7, 11, 13, 15, 14, 12, 0, 19, 18, 17, 16, 5, 2, 3, 4, 1]


def test_even_batches_pad_the_last_step_with_the_epochs_first_positions() -> None:
    order = Order([7, 6], shuffle=True, seed=4)  # 13 samples
    for ws, b in ((2, 3), (4, 2), (3, 5)):
        g = b * ws
        steps = -(-13 // g)
        first = order.indices(1, np.arange(ws, dtype=np.int64))
        for r in range(ws):
            sizes = [
                len(batch_indices(order, 1, s, batch_size=b, world_size=ws, rank=r, even=True))
                for s in range(steps)
            ]
            assert sizes[:-1] == [b] * (steps - 1)
            assert sizes[-1] == -(-(13 - (steps - 1) * g) // ws)  # the same on every rank
        last = np.concatenate(
            [
                batch_indices(order, 1, steps - 1, batch_size=b, world_size=ws, rank=r, even=True)
                for r in range(ws)
            ]
        )
        rest = 13 - (steps - 1) * g
        pad = (-rest) % ws
        want = order.indices(1, np.arange((steps - 1) * g, 13, dtype=np.int64))
        assert last.tolist() == want.tolist() + first[:pad].tolist()


@pytest.mark.parametrize("even", [False, True])
@pytest.mark.parametrize("ws", [1, 2, 3, 4])
def test_batch_run_is_batch_indices_as_a_run(ws: int, even: bool) -> None:
    order = Order(np.array([7, 13, 10]), shuffle=False)  # 30 samples
    runs = 0
    for bs in (1, 4, 7):
        for step in range(steps_per_epoch(30, bs * ws, drop_last=False)):
            for r in range(ws):
                kw = dict(batch_size=bs, world_size=ws, rank=r, even=even)
                idx = batch_indices(order, 0, step, **kw)
                run = batch_run(order, step, **kw)
                if run is None:  # only the padded last step is not a run
                    assert even and step == steps_per_epoch(30, bs * ws, False) - 1
                    continue
                runs += 1
                assert idx.tolist() == list(range(run[0], run[0] + run[1]))
    assert runs > 0
    for mode in (True, "block"):
        shuffled = Order(np.array([7, 13, 10]), shuffle=mode, seed=1)
        assert batch_run(shuffled, 0, batch_size=4) is None
