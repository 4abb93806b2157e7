"""Mixtures through the Loader: the batches are the schedule's, exactly (sources, indices and
bytes), with every executor, every world size and across resumes and re-weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import m5stream as m5
from m5stream.plan.mixture import MixtureSchedule, WeightSegment, source_seed
from m5stream.sampling import Order, rank_bounds
from tests.e2e.mixfns import js_to_xn, pq_to_xn, tar_to_xn
from tests.e2e.test_resume import EPOCHS, LoaderNode
from tests.helpers import make_jsonl_dataset, make_parquet_dataset, make_tar_dataset
from tests.resume_harness import check_resume

G = 12
W = {"tar": 0.5, "pq": 0.3, "js": 0.2}
FNS = {"tar": tar_to_xn, "pq": pq_to_xn, "js": js_to_xn}
NAMES = ["tar", "pq", "js"]


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> dict[str, m5.Dataset]:
    root = tmp_path_factory.mktemp("mix")
    return {
        "tar": m5.dataset(make_tar_dataset(root / "tar", shards=3, per_shard=20)),  # 60
        "pq": m5.dataset(
            make_parquet_dataset(root / "pq", files=2, per_file=25, row_group=10),
            columns=["id", "title"],
        ),  # 50
        "js": m5.dataset(make_jsonl_dataset(root / "js", files=2, per_file=15)),  # 30
    }


def make_mix(
    src: dict[str, m5.Dataset], names: list[str] = NAMES, weights: dict[str, float] = W, **kw: Any
) -> m5.Mixture:
    return m5.mix(
        {n: m5.source(src[n], transform=FNS[n]) for n in names},
        weights={n: weights[n] for n in names},
        **kw,
    )


def reference(
    src: dict[str, m5.Dataset],
    segments: list[WeightSegment],
    steps: int,
    *,
    names: list[str] = NAMES,
    granularity: str = "sample",
    seed: int = 17,
    shuffle: bool | str = True,
) -> list[list[tuple[str, int]]]:
    """(source, index) of every position of global steps 0 .. steps-1, straight from the
    segments: the k-th draw of a source is position k mod len of its own shuffle (keyed by the
    seed and its name) at pass k div len."""
    orders = {
        n: Order(src[n].manifest.counts, shuffle=shuffle, seed=source_seed(seed, n)) for n in names
    }
    sched = MixtureSchedule(
        names,
        {n: len(src[n]) for n in names},
        segments,
        G,
        granularity,
        seed,
        orders,  # type: ignore[arg-type]
    )
    out = []
    for t in range(steps):
        sid, k = sched.batch_sources(t)
        row = []
        for s, kk in zip(sid.tolist(), k.tolist()):
            name = names[s]
            p, pos = divmod(kk, len(src[name]))
            row.append((name, int(orders[name].indices(p, np.array([pos]))[0])))
        out.append(row)
    return out


def pairs(batch: dict[str, Any]) -> list[tuple[str, int]]:
    return list(zip(batch["__source__"], batch["__index__"].tolist()))


@pytest.mark.parametrize("nw", [0, 2])
def test_batches_are_the_schedule_with_exact_bytes(src: dict[str, m5.Dataset], nw: int) -> None:
    mix = make_mix(src)
    with m5.Loader(mix, G, shuffle=True, seed=17, num_workers=nw, output="numpy", copy=True) as lo:
        assert lo.steps_per_epoch == 12  # ceil(140 / 12): every step a full global batch
        got = [b for _ in range(2) for b in lo]  # two epochs: the draws continue across them
        assert len(got) == 24
        ref = reference(src, [WeightSegment(0, W)], 24)
        assert [pairs(b) for b in got] == ref
        counts = dict.fromkeys(NAMES, 0)
        for t, b in enumerate(got, 1):
            for name, _ in pairs(b):
                counts[name] += 1
            for name in NAMES:  # the bound holds after every global batch
                assert abs(counts[name] - W[name] * G * t) < 2, (t, counts)
        for b in got[:3] + got[-2:]:
            for j, (name, i) in enumerate(pairs(b)):
                want = FNS[name](src[name][i])
                assert b["x"][j] == want["x"] and int(b["n"][j]) == want["n"]
                assert b["__key__"][j] == src[name][i]["__key__"]
        st = lo.stats["sources"]
        assert {n: st[n]["samples"] for n in NAMES} == counts
        assert all(st[n]["bytes"] > 0 and st[n]["read_s"] > 0 for n in NAMES)
        assert all(st[n]["weight"] == pytest.approx(W[n]) for n in NAMES)


def test_batch_granularity_takes_each_global_batch_from_one_source(
    src: dict[str, m5.Dataset],
) -> None:
    mix = make_mix(src, granularity="batch", epoch_samples=240)
    with m5.Loader(mix, G // 2, rank=1, world_size=2, shuffle=True, seed=17) as lo:
        got = [pairs(b) for b in lo]
    ref = reference(src, [WeightSegment(0, W)], 20, granularity="batch")
    lo_, hi = rank_bounds(G, 2, 1)
    assert got == [r[lo_:hi] for r in ref]
    assert all(len({n for n, _ in r}) == 1 for r in ref)
    per = {n: sum(r[0][0] == n for r in ref) for n in NAMES}
    assert all(abs(per[n] - W[n] * 20) < 2 for n in NAMES), per


class MixNode(LoaderNode):
    def ids(self, batch: dict[str, Any]) -> list[Any]:
        return [f"{s}:{i}" for s, i in pairs(batch)]


@pytest.mark.parametrize("granularity", ["sample", "batch"])
def test_mixture_resume_matrix(src: dict[str, m5.Dataset], granularity: str) -> None:
    """The shared harness: 20+ cut points, resumed into other num_workers and world sizes."""
    mix = make_mix(src, granularity=granularity)
    check_resume(
        lambda nw, r, ws: MixNode(mix, nw, r, ws, shuffle=True, seed=17),
        configs=[(0, 1), (2, 2), (1, 4), (0, 3)],
        num_samples=len(mix),
        global_batch=G,
        epochs=EPOCHS,
        drop_last=False,
        exactly_once=False,
    )


def _run(lo: m5.Loader, n: int) -> list[list[tuple[str, int]]]:
    out: list[list[tuple[str, int]]] = []
    while len(out) < n:
        for b in lo:
            out.append(pairs(b))
            if len(out) == n:
                break
    return out


@pytest.mark.parametrize("cut", [5, 12, 17])
def test_reweight_at_resume_then_resume_again(src: dict[str, m5.Dataset], cut: int) -> None:
    """A re-weight at a cut point (a new segment), then a second resume from a state saved
    after it, into other workers and world sizes: equal to the segments applied directly."""
    w1 = {"tar": 0.1, "pq": 0.2, "js": 0.7}
    mix = make_mix(src)
    with m5.Loader(mix, G, shuffle=True, seed=17) as lo:
        _run(lo, cut)
        state = json.loads(json.dumps(lo.state_dict()))
    with m5.Loader(mix, G // 2, rank=0, world_size=2, num_workers=2, shuffle=True, seed=17) as lo:
        lo.load_state_dict(state, weights=w1)
        after = _run(lo, 6)
        state2 = json.loads(json.dumps(lo.state_dict()))
    assert state2["mixture"]["schedule"]["segments"] == [[0, W], [cut, w1]]
    ref = reference(src, [WeightSegment(0, W), WeightSegment(cut, w1)], cut + 16)
    assert after == [r[:6] for r in ref[cut : cut + 6]]
    got: list[list[list[tuple[str, int]]]] = [[], [], []]
    for r in range(3):
        with m5.Loader(mix, G // 3, rank=r, world_size=3, shuffle=True, seed=17) as lo:
            lo.load_state_dict(state2)  # the saved schedule, re-weight included
            got[r] = _run(lo, 10)
    assert [a + b + c for a, b, c in zip(*got)] == ref[cut + 6 : cut + 16]


def test_adding_and_removing_sources_needs_reweight(src: dict[str, m5.Dataset]) -> None:
    two = make_mix(src, names=["tar", "pq"], weights={"tar": 0.5, "pq": 0.5})
    with m5.Loader(two, G, shuffle=True, seed=17) as lo:
        _run(lo, 4)
        state = lo.state_dict()
    with m5.Loader(make_mix(src), G, shuffle=True, seed=17) as lo:
        with pytest.raises(m5.StateMismatch, match=r"epoch_samples: saved 110, loader 140"):
            lo.load_state_dict(state, on_change="reweight")
    three = make_mix(src, epoch_samples=110)
    with m5.Loader(three, G, shuffle=True, seed=17) as lo:
        with pytest.raises(m5.StateMismatch, match=r"added \['js'\].*on_change=\"reweight\""):
            lo.load_state_dict(state)
        lo.load_state_dict(state, on_change="reweight")
        after = _run(lo, 3)
        segs = lo.state_dict()["mixture"]["schedule"]["segments"]
    assert segs == [[0, {"tar": 0.5, "pq": 0.5}], [4, W]]
    ref = reference(src, [WeightSegment(0, {"tar": 0.5, "pq": 0.5}), WeightSegment(4, W)], 7)
    assert after == ref[4:7]
    one = make_mix(src, names=["pq"], weights={"pq": 1.0}, epoch_samples=110)
    with m5.Loader(one, G, shuffle=True, seed=17) as lo:
        lo.load_state_dict(state, on_change="reweight")
        after = _run(lo, 2)
    assert all(n == "pq" for r in after for n, _ in r)


def test_changed_source_is_a_state_mismatch_naming_it(
    src: dict[str, m5.Dataset], tmp_path: Path
) -> None:
    with m5.Loader(make_mix(src), G, shuffle=True, seed=17) as lo:
        _run(lo, 2)
        state = lo.state_dict()
    other = dict(src)
    other["js"] = m5.dataset(make_jsonl_dataset(tmp_path / "js2", files=2, per_file=15))
    (tmp_path / "js2" / "part-1.jsonl").write_text('{"id": 1, "text": "changed", "score": 0}\n')
    other["js"] = m5.dataset(str(tmp_path / "js2" / "*.jsonl"))
    with m5.Loader(make_mix(other), G, shuffle=True, seed=17) as lo:
        with pytest.raises(m5.StateMismatch, match=r"mixture source\(s\) 'js' \(fingerprint"):
            lo.load_state_dict(state)


def test_mixture_errors(src: dict[str, m5.Dataset]) -> None:
    with pytest.raises(m5.ConfigError, match=r"unknown mixture source\(s\) \['img'\]"):
        m5.mix({"tar": src["tar"]}, weights={"tar": 1.0, "img": 0.5})
    with pytest.raises(m5.ConfigError, match=r"'pq': weight -0.1 must be finite and >= 0"):
        m5.mix({"tar": src["tar"], "pq": src["pq"]}, weights={"tar": 1.0, "pq": -0.1})
    with pytest.raises(m5.ConfigError, match="weights are all zero"):
        m5.mix({"tar": src["tar"], "pq": src["pq"]}, weights={"tar": 0, "pq": 0.0})
    with pytest.raises(m5.ConfigError, match=r"\['pq'\] have no weight"):
        m5.mix({"tar": src["tar"], "pq": src["pq"]}, weights={"tar": 1.0})
    raw = m5.mix({"tar": src["tar"], "js": src["js"]}, weights={"tar": 1, "js": 1})
    with pytest.raises(m5.ConfigError) as e:
        m5.Loader(raw, G)
    msg = str(e.value)
    assert "'tar' also has ['bin', 'cls']" in msg and "'js' also has ['id', 'score', 'text']" in msg
    assert "granularity='batch'" in msg
    with m5.Loader(
        m5.mix(
            {"tar": src["tar"], "js": src["js"]}, weights={"tar": 1, "js": 1}, granularity="batch"
        ),
        G,
    ) as lo:
        fields = {frozenset(k for k in b if not k.startswith("__")) for b in lo}
    assert fields == {frozenset({"bin", "cls"}), frozenset({"id", "text", "score"})}
    with m5.Loader(make_mix(src), G) as lo:
        st = lo.state_dict()
        with pytest.raises(m5.ConfigError, match=r"unknown mixture source\(s\) \['img'\]"):
            lo.load_state_dict(st, weights={"tar": 1, "pq": 1, "js": 1, "img": 1})
    with m5.Loader(src["tar"], G) as lo, pytest.raises(m5.ConfigError, match="apply to mixtures"):
        lo.load_state_dict(lo.state_dict(), weights={"tar": 1.0})


def test_torch_sample_mode_reads_the_mixture(src: dict[str, m5.Dataset]) -> None:
    torch = pytest.importorskip("torch")
    from m5stream.torch import IterableDataset

    mix = make_mix(src)
    ds = IterableDataset(mix, batch_size=G, shuffle=True, seed=17, unit="sample")
    dl = torch.utils.data.DataLoader(ds, batch_size=G, num_workers=2, collate_fn=list)
    got = [[(s["__source__"], s["__index__"]) for s in b] for b in dl]
    assert got == reference(src, [WeightSegment(0, W)], 12)
