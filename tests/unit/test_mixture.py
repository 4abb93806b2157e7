"""The mixture schedule: the count bound, monotone exact sums, seeking equals walking,
re-weight segments, per-source passes, batch granularity, state, errors and a golden schedule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from m5stream.errors import ConfigError
from m5stream.plan import MixtureSchedule, WeightSegment

WEIGHTS = {
    "2-skew": [0.999, 0.001],
    "2-uneven": [0.7, 0.3],
    "3-thirds": [1 / 3, 1 / 3, 1 / 3],
    "3-uneven": [0.6, 0.3, 0.1],
    "7-uneven": [0.5, 0.2, 0.1, 0.08, 0.07, 0.03, 0.02],
    "7-heavy": [0.9] + [0.1 / 6] * 6,
    "7-skew": [0.994] + [0.001] * 6,
}
WALK = ("2-skew", "3-thirds", "7-uneven", "7-heavy")


def names(n: int) -> list[str]:
    return [f"src{i}" for i in range(n)]


def make(
    weights: list[float],
    *,
    batch: int = 8,
    sizes: list[int] | None = None,
    granularity: str = "sample",
    seed: int = 7,
) -> MixtureSchedule:
    ns = names(len(weights))
    sz = sizes or [1000 + 37 * i for i in range(len(weights))]
    return MixtureSchedule(
        ns,
        dict(zip(ns, sz)),
        [WeightSegment(0, dict(zip(ns, weights)))],
        batch,
        granularity,  # type: ignore[arg-type]
        seed,
    )


def norm(weights: list[float]) -> np.ndarray:
    w = np.array(weights, dtype=np.float64)
    return w / w.sum()


def check_counts(c: np.ndarray, n: np.ndarray, w: np.ndarray, bound: float = 2.0) -> float:
    """``c[i, s]``: counts after ``n[i]`` units; returns the largest deviation."""
    assert (c.sum(axis=1) == n).all()
    dev = np.abs(c - n[:, None].astype(np.float64) * w[None, :])
    assert dev.max() <= bound, dev.max()
    return float(dev.max())


@pytest.mark.parametrize("key", list(WEIGHTS))
def test_every_sample_count_is_within_bound_monotone_and_exact(key: str) -> None:
    w = norm(WEIGHTS[key])
    m = make(WEIGHTS[key], batch=1)  # one unit per step: every n checked
    n = np.arange(0, 400_001, dtype=np.int64)
    c = m.unit_counts_array(n)
    assert (c[0] == 0).all()
    d = np.diff(c, axis=0)
    assert ((d == 0) | (d == 1)).all()  # monotone, one unit at a time
    check_counts(c, n, w)
    # any window of W consecutive samples is within 4 of w * W
    for width in (1, 7, 64, 1000):
        win = c[width:] - c[:-width]
        assert np.abs(win - width * w[None, :]).max() < 4


@pytest.mark.parametrize("key", list(WEIGHTS))
def test_steps_and_random_seeks(key: str) -> None:
    w = norm(WEIGHTS[key])
    m = make(WEIGHTS[key], batch=8)
    steps = np.arange(0, 100_001, dtype=np.int64)
    check_counts(m.counts_array(steps), steps * 8, w)
    rng = np.random.default_rng(1)
    far = np.concatenate(
        (
            rng.integers(0, 10**5, 500),
            rng.integers(0, 10**6, 500),
            rng.integers(0, 10**9, 200),
            [10**6, 10**6 + 1, 10**9],
        )
    ).astype(np.int64)
    c = m.counts_array(far)
    check_counts(c, far * 8, w)
    for i in range(0, len(far), 97):  # the scalar path is the vectorised one
        assert m.counts_at(int(far[i])) == dict(zip(m.sources, c[i].tolist()))


@pytest.mark.parametrize("key", WALK)
@pytest.mark.parametrize("batch", [8, 5])
def test_seeking_equals_walking(key: str, batch: int) -> None:
    m = make(WEIGHTS[key], batch=batch)
    s = len(m.sources)
    steps = 10_000 if batch == 8 else 3_000
    seek = m.counts_array(np.arange(steps + 1))
    running = np.zeros(s, dtype=np.int64)
    for t in range(steps):
        src, k = m.batch_sources(t)
        assert len(src) == len(k) == batch
        for sid in np.unique(src).tolist():
            ks = k[src == sid]  # the source's draws, consecutive, in position order
            assert (ks == running[sid] + np.arange(len(ks))).all()
        running += np.bincount(src, minlength=s)
        assert (running == seek[t + 1]).all()


def test_rank_slices_stay_close_to_weights() -> None:
    ws = WEIGHTS["7-uneven"]
    w = norm(ws)
    m = make(ws, batch=64)
    for t in range(0, 2000, 13):
        src, _ = m.batch_sources(t)
        for part in np.split(src, 4):  # 4 ranks of 16
            got = np.bincount(part, minlength=7)
            assert np.abs(got - 16 * w).max() < 4


def test_reweight_segments_are_continuous_and_bounded_per_segment() -> None:
    ns = names(3)
    sizes = dict(zip(ns, [50, 70, 90]))
    w0 = {"src0": 0.999, "src1": 0.001}
    w1 = {"src0": 1.0, "src1": 1.0, "src2": 1.0}
    w2 = {"src0": 0.1, "src2": 0.9}
    base = MixtureSchedule(ns, sizes, [WeightSegment(0, w0)], 8, "sample", 3)
    m1 = base.with_weights(1000, w1)
    m2 = m1.with_weights(2500, w2)
    direct = MixtureSchedule(
        ns,
        sizes,
        [WeightSegment(0, w0), WeightSegment(1000, w1), WeightSegment(2500, w2)],
        8,
        "sample",
        3,
    )
    assert m2 == direct
    steps = np.arange(0, 6001, dtype=np.int64)
    c = m2.counts_array(steps)
    # the past is untouched by a re-weight
    assert (c[:1001] == base.counts_array(steps[:1001])).all()
    assert (c[:2501] == m1.counts_array(steps[:2501])).all()
    d = np.diff(c, axis=0)
    assert (d >= 0).all() and (d.sum(axis=1) == 8).all()  # continuous at the boundaries
    assert (c.sum(axis=1) == steps * 8).all()
    for lo, hi, w in ((0, 1000, w0), (1000, 2500, w1), (2500, 6001, w2)):
        wv = norm([w.get(s, 0.0) for s in ns])
        rel = c[lo:hi] - c[lo]
        check_counts(rel, (steps[lo:hi] - lo) * 8, wv)
    assert (c[2500:, 1] == c[2500, 1]).all()  # absent from the last segment: frozen
    for t in (999, 1000, 2499, 2500, 2501):
        src, _ = m2.batch_sources(t)
        after = c[t].copy()
        after += np.bincount(src, minlength=3)
        assert (after == c[t + 1]).all()
    assert m2.weights(2500) == pytest.approx({"src0": 0.1, "src1": 0.0, "src2": 0.9})


@pytest.mark.parametrize("size", [1, 3, 13, 64])
def test_each_pass_covers_the_source_once_and_passes_differ(size: int) -> None:
    m = make([0.5, 0.3, 0.2], batch=4, sizes=[size, size + 5, 2 * size + 1])
    need = {sid: 2 * m.sizes[s] + 3 for sid, s in enumerate(m.sources)}
    drawn: dict[int, list[int]] = {sid: [] for sid in need}
    t = 0
    while any(len(drawn[sid]) < need[sid] for sid in need):
        src, idx = m.draw_indices(t)
        for sid in need:
            drawn[sid].extend(idx[src == sid].tolist())
        t += 1
    for sid, name in enumerate(m.sources):
        n = m.sizes[name]
        got = drawn[sid][: need[sid]]
        assert got == m.sample_indices(name, np.arange(need[sid])).tolist()
        for p in range(2):
            assert sorted(got[p * n : (p + 1) * n]) == list(range(n))
        for j in range(min(3, n)):
            assert m.source_index(name, 2 * n + j) == (2, j)
        if n >= 8:
            assert got[:n] != got[n : 2 * n]
            assert got[2 * n :] != got[:3]


def test_source_permutations_follow_the_name_not_the_list_position() -> None:
    a = MixtureSchedule(["x", "y"], {"x": 100, "y": 80}, [WeightSegment(0, {"x": 1})], 4)
    b = MixtureSchedule(["y", "x"], {"x": 100, "y": 80}, [WeightSegment(0, {"x": 1})], 4)
    k = np.arange(250)
    assert (a.sample_indices("x", k) == b.sample_indices("x", k)).all()
    c = MixtureSchedule(["x", "y"], {"x": 100, "y": 80}, [WeightSegment(0, {"x": 1})], 4, seed=1)
    assert (a.sample_indices("x", k) != c.sample_indices("x", k)).any()
    assert (a.sample_indices("x", k[:80]) != a.sample_indices("y", k[:80])).any()


@pytest.mark.parametrize("key", ["2-skew", "3-thirds", "7-uneven", "7-heavy"])
def test_batch_granularity(key: str) -> None:
    ws = WEIGHTS[key]
    w = norm(ws)
    m = make(ws, batch=6, granularity="batch")
    steps = np.arange(0, 100_001, dtype=np.int64)
    bc = m.unit_counts_array(steps)
    d = np.diff(bc, axis=0)
    assert ((d == 0) | (d == 1)).all()
    check_counts(bc, steps, w)  # within 2 batches of weight x batches so far
    assert (m.counts_array(steps) == bc * 6).all()
    running = np.zeros(len(ws), dtype=np.int64)
    for t in range(3000):
        src, k = m.batch_sources(t)
        assert (src == src[0]).all()
        assert (k == running[src[0]] + np.arange(6)).all()
        running[src[0]] += 6
        assert m.counts_at(t + 1) == dict(zip(m.sources, running.tolist()))


def test_state_round_trips_through_json() -> None:
    m = make(WEIGHTS["7-uneven"], batch=8).with_weights(100, {"src3": 2.0, "src5": 1.0})
    state = json.loads(json.dumps(m.to_state()))
    assert state["segments"][1] == [100, {"src3": 2.0, "src5": 1.0}]
    r = MixtureSchedule.from_state(state)
    assert r == m
    for t in (0, 99, 100, 12345):
        for x, y in zip(r.draw_indices(t), m.draw_indices(t)):
            assert (x == y).all()
    with pytest.raises(ConfigError, match="version"):
        MixtureSchedule.from_state(state | {"version": 99})


def test_golden_schedule() -> None:
    m = MixtureSchedule(
        ["web", "code", "books"],
        {"web": 10, "code": 7, "books": 5},
        [WeightSegment(0, {"web": 0.6, "code": 0.3, "books": 0.1})],
        global_batch=8,
        seed=2024,
    )
    got = [tuple(a.tolist() for a in (*m.batch_sources(t), m.draw_indices(t)[1])) for t in range(4)]
    assert got == GOLDEN


#: (source ids, draw numbers, sample indices within the source) of global batches 0..3
GOLDEN: list[tuple[list[int], list[int], list[int]]] = [
    ([0, 1, 0, 2, 0, 0, 1, 0], [0, 0, 1, 0, 2, 3, 1, 4], [9, 1, 0, 4, 3, 7, 6, 6]),
    ([1, 0, 0, 1, 0, 2, 0, 0], [2, 5, 6, 3, 7, 1, 8, 9], [3, 2, 4, 4, 5, 1, 8, 1]),
    ([1, 0, 1, 0, 0, 1, 0, 2], [4, 10, 5, 11, 12, 6, 13, 2], [5, 4, 2, 8, 7, 0, 0, 2]),
    ([0, 0, 1, 0, 1, 0, 0, 1], [14, 15, 7, 16, 8, 17, 18, 9], [5, 1, 3, 2, 4, 3, 9, 1]),
]


def test_errors() -> None:
    ns = ["a", "b"]
    sizes = {"a": 3, "b": 4}

    def mk(*segs: WeightSegment, **kw: object) -> MixtureSchedule:
        args: dict = {"sources": ns, "sizes": sizes, "segments": list(segs), "global_batch": 4}
        args.update(kw)
        return MixtureSchedule(**args)

    with pytest.raises(ConfigError, match="'c'"):
        mk(WeightSegment(0, {"a": 1, "c": 1}))
    with pytest.raises(ConfigError, match=r"'b'.*negative"):
        mk(WeightSegment(0, {"a": 1, "b": -0.5}))
    with pytest.raises(ConfigError, match="all weights zero"):
        mk(WeightSegment(0, {"a": 0, "b": 0}))
    with pytest.raises(ConfigError, match="all weights zero"):
        mk(WeightSegment(0, {}))
    with pytest.raises(ConfigError, match=r"'a'.*not finite"):
        mk(WeightSegment(0, {"a": float("nan")}))
    with pytest.raises(ConfigError, match="step 0"):
        mk(WeightSegment(5, {"a": 1}))
    with pytest.raises(ConfigError, match="increasing"):
        mk(WeightSegment(0, {"a": 1}), WeightSegment(10, {"b": 1}), WeightSegment(10, {"a": 1}))
    with pytest.raises(ConfigError, match="increasing"):
        mk(WeightSegment(0, {"a": 1}), WeightSegment(10, {"b": 1})).with_weights(3, {"a": 1})
    with pytest.raises(ConfigError, match="at least one source"):
        MixtureSchedule([], {}, [WeightSegment(0, {})], 4)
    with pytest.raises(ConfigError, match="at least one weight segment"):
        mk()
    with pytest.raises(ConfigError, match="'b' has no size"):
        mk(WeightSegment(0, {"a": 1}), sizes={"a": 3})
    with pytest.raises(ConfigError, match="'z'"):
        mk(WeightSegment(0, {"a": 1}), sizes={"a": 3, "b": 4, "z": 1})
    with pytest.raises(ConfigError, match="'a': size"):
        mk(WeightSegment(0, {"a": 1}), sizes={"a": 0, "b": 4})
    with pytest.raises(ConfigError, match="twice"):
        mk(WeightSegment(0, {"a": 1}), sources=["a", "a"])
    with pytest.raises(ConfigError, match="global_batch"):
        mk(WeightSegment(0, {"a": 1}), global_batch=0)
    with pytest.raises(ConfigError, match="granularity"):
        mk(WeightSegment(0, {"a": 1}), granularity="token")
    m = mk(WeightSegment(0, {"a": 1}))
    with pytest.raises(IndexError):
        m.counts_at(-1)
    with pytest.raises(KeyError):
        m.source_index("c", 0)


def test_random_weights_stay_within_bound() -> None:
    rng = np.random.default_rng(0)
    n = np.arange(0, 20_001, dtype=np.int64)
    for trial in range(40):
        s = int(rng.integers(2, 12))
        raw = [rng.random(s), rng.random(s) ** 6, np.exp(rng.normal(0, 3, s))][trial % 3]
        m = make(raw.tolist(), batch=1)
        c = m.unit_counts_array(n)
        assert (np.diff(c, axis=0) >= 0).all()
        check_counts(c, n, norm(raw.tolist()))


@pytest.mark.parametrize("granularity", ["sample", "batch"])
def test_draw_positions_equal_batch_sources_at_any_positions(granularity: str) -> None:
    """The order's per-position draws (what a plan asks for: any positions, any steps, in any
    order) are the per-batch ones, across segment boundaries."""
    sched = MixtureSchedule(
        ["a", "b", "c"],
        {"a": 50, "b": 7, "c": 1000},
        [WeightSegment(0, {"a": 1, "b": 2, "c": 3}), WeightSegment(9, {"a": 0.999, "c": 0.001})],
        12,
        granularity,  # type: ignore[arg-type]
        seed=5,
    )
    steps = [0, 1, 8, 9, 10, 31, 10**6]
    want = {t: sched.batch_sources(t) for t in steps}
    pos = np.array([t * 12 + j for t in steps for j in range(12)], dtype=np.int64)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(pos))
    src, k = sched.draw_positions(pos[perm])
    inv = np.argsort(perm)
    src, k = src[inv], k[inv]
    for i, t in enumerate(steps):
        assert src[i * 12 : (i + 1) * 12].tolist() == want[t][0].tolist()
        assert k[i * 12 : (i + 1) * 12].tolist() == want[t][1].tolist()


def test_mixture_order_continues_draws_across_epochs() -> None:
    from m5stream.plan.mixture import MixtureOrder

    sched = MixtureSchedule(["a", "b"], {"a": 5, "b": 3}, [WeightSegment(0, {"a": 1, "b": 1})], 4)
    order = MixtureOrder(sched, {"a": 0, "b": 5}, epoch_steps=3)
    assert order.num_samples == 12
    whole = [order.indices(e, np.arange(12)).tolist() for e in range(3)]
    for e in range(3):
        for t in range(3):
            src, idx = sched.draw_indices(e * 3 + t)
            assert whole[e][t * 4 : (t + 1) * 4] == (np.array([0, 5])[src] + idx).tolist()
    with pytest.raises(IndexError):
        order.indices(0, np.array([12]))
    gone = MixtureOrder(sched, {"a": 0}, epoch_steps=3)
    with pytest.raises(ConfigError, match=r"draws mixture source\(s\) \['b'\]"):
        gone.indices(0, np.arange(12))
