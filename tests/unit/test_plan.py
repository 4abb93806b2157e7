"""The pure plan: a step's indices, runs and units, and the torch workers' steps, against
the sampling functions they are defined by."""

from __future__ import annotations

import numpy as np
import pytest

from m5stream.config import LoaderConfig
from m5stream.plan import IndexRun, Plan, UnitPlanner
from m5stream.plan.units import compact_indices
from m5stream.sampling import Order, batch_indices

COUNTS = np.array([10, 7, 13, 5], dtype=np.int64)  # 35 samples


def _plan(epoch: int = 0, **kw: object) -> Plan:
    return Plan.for_epoch(LoaderConfig.build(4, **kw), COUNTS, epoch)


@pytest.mark.parametrize("shuffle", [False, "block", True])
@pytest.mark.parametrize(("ws", "rank"), [(1, 0), (2, 1), (3, 2)])
def test_indices_are_the_sampling_functions(shuffle: object, ws: int, rank: int) -> None:
    p = _plan(2, shuffle=shuffle, seed=9, world_size=ws, rank=rank, block_size=8)
    order = Order(COUNTS, shuffle=shuffle, seed=9, block_size=8)
    assert p.steps == -(-35 // (4 * ws))
    for step in range(p.steps):
        want = batch_indices(order, 2, step, batch_size=4, world_size=ws, rank=rank, even=ws > 1)
        assert p.indices(step).tolist() == want.tolist()
        b = p.batch(step)
        got = b.array() if isinstance(b, IndexRun) else b
        assert got.tolist() == want.tolist()


def test_natural_order_steps_are_runs_except_a_padded_last_step() -> None:
    p = _plan(world_size=2, rank=0)  # global batch 8: 5 steps, the last has 3 samples
    assert [p.run(s) for s in range(4)] == [IndexRun(8 * s, 4) for s in range(4)]
    assert p.run(4) is None  # 3 samples over 2 ranks: padded with the epoch's first
    assert p.indices(4).tolist() == [32, 33]
    assert _plan(world_size=2, rank=1).indices(4).tolist() == [34, 0]


def test_rank_batches_without_padding() -> None:
    # 35 samples, global batch 12: the last step has 11 -> every rank gets a part
    assert _plan(world_size=3, rank=2, even_batches=False).rank_batches() == 3
    # global batch 34 (ws=... via batch 17 x 2): last step of 1 sample, rank 1's part empty
    p = Plan.for_epoch(LoaderConfig.build(17, world_size=2, rank=1, even_batches=False), COUNTS, 0)
    assert p.steps == 2 and p.rank_batches() == 1


def test_worker_steps_round_robin_from_any_start() -> None:
    p = _plan()  # 9 steps
    assert list(p.worker_steps(0, 2, 0)) == [0, 2, 4, 6, 8]
    assert list(p.worker_steps(1, 2, 1)) == [1, 3, 5, 7]
    assert list(p.worker_steps(1, 3, 4)) == [4, 7]  # resumed at a step of its own
    assert list(p.worker_steps(0, 3, 0)) == [0, 3, 6]


class _Locator:
    """Segments and units over COUNTS, with shards of units of 4 samples."""

    offsets = np.concatenate(([0], np.cumsum(COUNTS)))

    def locate_many(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        shards = np.searchsorted(self.offsets, idx, side="right") - 1
        return shards, idx - self.offsets[shards]

    def units_of(self, shards: np.ndarray, locals_: np.ndarray) -> np.ndarray:
        return locals_ // 4

    def segments(self, start: int, count: int) -> list[tuple[int, int, int, int]]:
        idx = np.arange(start, start + count)
        shards, locals_ = self.locate_many(idx)
        out: list[tuple[int, int, int, int]] = []
        for s, loc in zip(shards.tolist(), locals_.tolist()):
            u = loc // 4
            if out and out[-1][:2] == (s, u):
                out[-1] = (s, u, out[-1][2], out[-1][3] + 1)
            else:
                out.append((s, u, loc, 1))
        return out


def test_unit_planner_gives_each_steps_units_in_first_use_order() -> None:
    planner = UnitPlanner(_plan(), _Locator(), 1)
    first = planner.plan_next()  # step 1: samples 4..7 = shard 0 unit 1
    assert first.step == 1 and first.segments == [(0, 1, 4, 4)] and first.needs == [(0, 1)]
    second = planner.plan_next()  # samples 8..11: shard 0 unit 2, shard 1 unit 0
    assert second.needs == [(0, 2), (1, 0)]
    assert second.indices.tolist() == [8, 9, 10, 11]
    shuffled = UnitPlanner(_plan(shuffle=True, seed=3), _Locator(), 0).plan_next()
    idx = shuffled.indices
    shards, locals_ = _Locator().locate_many(idx)
    pairs = list(dict.fromkeys(zip(shards.tolist(), (locals_ // 4).tolist())))
    assert shuffled.needs == pairs
    assert not planner.exhausted
    planner.next_step = 9
    assert planner.exhausted


def test_compact_indices() -> None:
    assert compact_indices(np.arange(5, 9)) == IndexRun(5, 4)
    assert isinstance(compact_indices(np.array([1, 3])), np.ndarray)
    assert isinstance(compact_indices(np.array([4])), np.ndarray)
