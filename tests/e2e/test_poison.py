"""Poison samples: a sample whose transform kills its worker (``os.abort()``, SIGABRT) is found
by bisecting its batch on replacement workers, then skipped and recorded (``on_error="skip"``)
or raised as CorruptData naming it (``"raise"``); the batches are an undisturbed run's minus
that sample, a resumed loader skips it without crashing, and the hunt costs O(log batch)."""

from __future__ import annotations

import math
import os
import signal
import time
from typing import Any

import numpy as np
import pytest

import m5stream as m5
from tests.e2e import fns
from tests.helpers import make_tar_dataset, sample_bytes

KW: dict[str, Any] = dict(shuffle=True, seed=5, num_workers=2, output="numpy", copy=True)
Digest = tuple[list[int], list[bytes], list[bytes]]


def _digest(batch: dict[str, Any]) -> Digest:
    return batch["__index__"].tolist(), list(batch["bin"]), list(batch["cls"])


def _without(batches: list[Digest], *bad: int) -> list[Digest]:
    """``batches`` without the samples ``bad`` (a batch left empty is not delivered)."""
    out = []
    for idx, bins, cls in batches:
        keep = [p for p, i in enumerate(idx) if i not in bad]
        if keep:
            out.append(([idx[p] for p in keep], [bins[p] for p in keep], [cls[p] for p in keep]))
    return out


def _record(index: int) -> list[Any]:
    key = f"s{index:06d}"
    return [
        index,
        key,
        f"CorruptData: sample {key!r} crashed the decoder: its worker was killed by SIGABRT, "
        "twice, while processing it alone (a poison sample found by bisecting its batch)",
    ]


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> m5.Dataset:
    return m5.dataset(make_tar_dataset(tmp_path_factory.mktemp("tar"), shards=4, per_shard=16))


@pytest.fixture(scope="module")
def undisturbed(ds: m5.Dataset) -> list[list[Digest]]:
    """Two epochs of batches of 8, with the same transform path and no sample crashing."""
    with m5.Loader(ds, 8, transform=fns.AbortOn(), **KW) as lo:
        return [[_digest(b) for b in lo] for _ in range(2)]


def test_skip_finds_the_key_and_delivers_the_rest_exactly(
    ds: m5.Dataset, undisturbed: list[list[Digest]]
) -> None:
    bad = undisturbed[0][3][0][5]
    t0 = time.monotonic()
    with m5.Loader(
        ds, 8, transform=fns.AbortOn(bad), on_error="skip", max_worker_restarts=1, **KW
    ) as lo:
        got = [_digest(b) for b in lo]
        assert time.monotonic() - t0 < 10.0
        stats, state = lo.stats, lo.state_dict()
        pids = lo.worker_pids
        # the second epoch leaves the known poison sample out: no worker dies again
        again = [_digest(b) for b in lo]
        assert lo.worker_pids == pids
        assert lo.stats["worker_restarts"] == stats["worker_restarts"]
        final = lo.state_dict()
    assert got == _without(undisturbed[0], bad)
    assert again == _without(undisturbed[1], bad)
    assert [g[0] for g in got] == [[i for i in u[0] if i != bad] for u in undisturbed[0]]
    assert stats["skipped"] == 1 and stats["samples"] == 63
    assert state["skipped"] == [[0, *_record(bad)]]
    assert final["skipped"] == [[0, *_record(bad)], [1, *_record(bad)]]
    # two deaths of the task, then one per halving (8 -> 4 -> 2 -> 1) and one more alone
    assert stats["poison_kills"] == stats["worker_restarts"] == 2 + 3 + 1
    assert stats["poison_tasks"] == 2 * 3 + 1  # both halves at each level, the one sample again


def test_finding_a_poison_sample_gives_its_restart_back(
    ds: m5.Dataset, undisturbed: list[list[Digest]]
) -> None:
    """With a budget of 1, the poison sample is found and one unrelated kill still heals; a
    second one spends the budget."""
    bad = undisturbed[0][1][0][0]
    want = _without(undisturbed[0], bad)
    with m5.Loader(
        ds, 8, transform=fns.AbortOn(bad), on_error="skip", max_worker_restarts=1, **KW
    ) as lo:
        got = []
        for i, b in enumerate(lo):
            got.append(_digest(b))
            # after step 2 a step is still to be sent, so the kill is seen (one after step 4
            # could find every later batch already made, and never count)
            if i == 2:
                os.kill(lo.worker_pids[0], signal.SIGKILL)
        stats = lo.stats
        assert got == want
        assert stats["worker_restarts"] == stats["poison_kills"] + 1
        lo.load_state_dict({**lo.state_dict(), "step": 2})
        got = []
        with pytest.raises(m5.WorkerDied, match="max_worker_restarts=1 were spent this epoch"):
            for b in lo:
                got.append(_digest(b))
                os.kill(lo.worker_pids[len(got) % 2], signal.SIGKILL)
        assert got == want[2 : 2 + len(got)]


def test_raise_names_the_key_and_the_signal_within_seconds(
    ds: m5.Dataset, undisturbed: list[list[Digest]]
) -> None:
    bad = undisturbed[0][2][0][3]
    got = []
    with m5.Loader(ds, 8, transform=fns.AbortOn(bad), max_worker_restarts=3, **KW) as lo:
        t0 = time.monotonic()
        with pytest.raises(m5.CorruptData) as info:
            for b in lo:
                got.append(_digest(b))
        assert time.monotonic() - t0 < 5.0
        # iterating again raises it at once: the sample is known, no worker runs it again
        pids, restarts = lo.worker_pids, lo.stats["worker_restarts"]
        with pytest.raises(m5.CorruptData) as again:
            next(iter(lo))
        assert str(again.value) == str(info.value)
        assert (lo.worker_pids, lo.stats["worker_restarts"]) == (pids, restarts)
    assert got == undisturbed[0][:2]
    err = info.value
    assert (err.key, err.index) == (f"s{bad:06d}", bad)
    assert str(err) == (
        f"sample 's{bad:06d}' crashed the decoder: its worker was killed by SIGABRT, twice, "
        f"while processing it alone (a poison sample found by bisecting its batch) "
        f"[key=s{bad:06d} index={bad}]"
    )


def test_without_restarts_a_crash_is_worker_died_at_once(
    ds: m5.Dataset, undisturbed: list[list[Digest]]
) -> None:
    bad = undisturbed[0][2][0][3]
    # inline_start=False: a sample that crashes its decoder in the trainer's own start-up
    # batches takes the trainer down, as with num_workers=0 (the default is off only with
    # max_worker_restarts); here every batch is a worker's
    opts = dict(on_error="skip", inline_start=False, **KW)
    with m5.Loader(ds, 8, transform=fns.AbortOn(bad), **opts) as lo:
        with pytest.raises(m5.WorkerDied, match=r"SIGABRT.*with max_worker_restarts >= 1"):
            for _ in lo:
                pass


def test_two_poison_samples_in_one_batch(ds: m5.Dataset, undisturbed: list[list[Digest]]) -> None:
    first, second = undisturbed[0][5][0][1], undisturbed[0][5][0][6]
    fn = fns.AbortOn(second, first)
    with m5.Loader(ds, 8, transform=fn, on_error="skip", max_worker_restarts=1, **KW) as lo:
        got = [_digest(b) for b in lo]
        stats, state = lo.stats, lo.state_dict()
    assert got == _without(undisturbed[0], first, second)
    assert state["skipped"] == [[0, *_record(first)], [0, *_record(second)]]
    assert stats["skipped"] == 2
    # positions 1 and 6: the task twice; [0:4], [0:2], [1:2] twice; [4:8], [6:8], [6:7] twice
    assert stats["poison_kills"] == stats["worker_restarts"] == 2 + 4 + 4
    with m5.Loader(ds, 8, transform=fn, max_worker_restarts=1, **KW) as lo:
        with pytest.raises(m5.CorruptData) as info:
            for _ in lo:
                pass
    assert info.value.index == first  # the first in the batch's order, as a plain error is


def test_bisection_runs_log_batch_tasks(ds: m5.Dataset) -> None:
    with m5.Loader(ds, 32, transform=fns.AbortOn(), **KW) as lo:
        want = [_digest(b) for b in lo]
    bad = want[1][0][17]
    with m5.Loader(
        ds, 32, transform=fns.AbortOn(bad), on_error="skip", max_worker_restarts=1, **KW
    ) as lo:
        got = [_digest(b) for b in lo]
        stats = lo.stats
    assert got == _without(want, bad)
    levels = math.ceil(math.log2(32))
    assert stats["poison_tasks"] == 2 * levels + 1  # not 32
    assert stats["poison_kills"] == 2 + levels + 1


@pytest.mark.parametrize("saved_at", [1, 5], ids=["before-the-skip", "after-the-skip"])
def test_a_resumed_loader_skips_it_the_same_way(
    ds: m5.Dataset, undisturbed: list[list[Digest]], saved_at: int
) -> None:
    bad = undisturbed[0][3][0][5]
    opts: dict[str, Any] = dict(on_error="skip", max_worker_restarts=1, **KW)
    with m5.Loader(ds, 8, transform=fns.AbortOn(bad), **opts) as lo:
        first = []
        for b in lo:
            first.append(_digest(b))
            if len(first) == saved_at:
                break
        state = lo.state_dict()
    with m5.Loader(ds, 8, transform=fns.AbortOn(bad), **opts) as lo:
        lo.load_state_dict(state)
        rest = [[_digest(b) for b in lo] for _ in range(2)]
        stats, final = lo.stats, lo.state_dict()
    assert first + rest[0] == _without(undisturbed[0], bad)
    assert rest[1] == _without(undisturbed[1], bad)
    assert final["skipped"] == [[0, *_record(bad)], [1, *_record(bad)]]
    # from before the skip the hunt runs again (and finds the same sample); from after it
    # the state's record keeps the sample from any worker: nothing dies
    assert stats["worker_restarts"] == (6 if saved_at == 1 else 0)


def test_with_a_batch_transform_the_good_samples_are_transformed_together(
    ds: m5.Dataset, undisturbed: list[list[Digest]]
) -> None:
    bad = undisturbed[0][4][0][2]
    with m5.Loader(
        ds,
        8,
        transform=fns.AbortOn(bad),
        batch_transform=fns.join_bins,
        on_error="skip",
        max_worker_restarts=1,
        **KW,
    ) as lo:
        got = [(b["__index__"].tolist(), b["bins"].tobytes(), b["n"].tolist()) for b in lo]
        stats = lo.stats
    want = [[i for i in u[0] if i != bad] for u in undisturbed[0]]
    assert [g[0] for g in got] == want
    assert [g[1] for g in got] == [b"".join(sample_bytes(i) for i in w) for w in want]
    assert [g[2] for g in got] == [[len(w)] for w in want]
    assert stats["skipped"] == 1 and stats["poison_tasks"] == 7


def test_a_batch_of_only_poison_is_skipped_and_a_break_before_it_is_clean(
    ds: m5.Dataset,
) -> None:
    with m5.Loader(ds, 1, transform=fns.AbortOn(), **KW) as lo:
        want = [[_digest(b) for b in lo] for _ in range(2)]
    bad = want[1][1][0][0]  # the second batch of epoch 1: sent ahead while batch 0 is taken
    with m5.Loader(
        ds, 1, transform=fns.AbortOn(bad), on_error="skip", max_worker_restarts=1, **KW
    ) as lo:
        got = [_digest(b) for b in lo]
        # the task of one sample died twice; once more alone, reporting its key
        assert lo.stats["poison_kills"] == 3 and lo.stats["poison_tasks"] == 1
        it = iter(lo)
        head = [_digest(next(it))]
        it.close()  # stops the iteration with the known-poison step made ahead
        tail = [_digest(b) for b in lo]
        assert lo.state_dict()["skipped"] == [[0, *_record(bad)], [1, *_record(bad)]]
    assert got == _without(want[0], bad)
    assert head + tail == _without(want[1], bad)


def test_a_bisected_batch_joins_by_the_field_rules() -> None:
    from m5stream.batches import assemble_rows
    from m5stream.workers.bisect import join_batches

    samples = [
        {"__index__": i, "__key__": f"k{i}", "x": np.full((2, 3), i, np.uint8), "v": i * 0.5}
        for i in range(5)
    ]
    samples[4]["x"] = np.zeros(4, np.uint8)  # another shape: the whole batch has a list
    samples[1]["extra"] = b"only here"
    whole = assemble_rows(samples)
    joined = join_batches([assemble_rows(samples[:2]), assemble_rows(samples[2:])])
    assert joined is not None
    assert list(joined) == list(whole)
    assert joined["__index__"].tolist() == whole["__index__"].tolist()
    assert joined["__key__"] == whole["__key__"]
    assert [a.tolist() for a in joined["x"]] == [a.tolist() for a in whole["x"]]
    assert joined["v"].dtype == whole["v"].dtype and joined["v"].tolist() == whole["v"].tolist()
    assert joined["extra"] == whole["extra"] == [None, b"only here", None, None, None]
    same = join_batches([assemble_rows(samples[:2]), assemble_rows(samples[2:4])])
    assert same is not None and same["x"].shape == (4, 2, 3)
    assert join_batches([]) is None
