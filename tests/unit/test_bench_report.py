"""The pure parts of ``m5stream bench``: bottleneck naming, peers that are absent or cannot
read a source, and the report text."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

import m5stream as m5
from m5stream.bench.peers import run_peer
from m5stream.bench.presets import resolve_transform
from m5stream.bench.report import bottleneck


def stages(**kw: float) -> dict[str, float]:
    base = dict.fromkeys(
        ["listing", "first_batch", "fetch", "decode", "transform", "collate", "handoff"], 0.0
    )
    base["trainer_wait"] = 0.0
    base.update(kw)
    return base


def test_bottleneck_names_the_limiting_stage() -> None:
    # the trainer hardly waits: the loader is not the problem
    b = bottleneck(stages(trainer_wait=0.5, decode=15.0), seconds=10, workers=2)
    assert b["stage"] == "trainer" and "not the problem" in b["suggestion"]
    # workers busy decoding while the trainer waits
    b = bottleneck(stages(trainer_wait=9, decode=16, fetch=1, collate=0.5), seconds=10, workers=2)
    assert b["stage"] == "decode" and "more workers" in b["suggestion"]
    assert b["reason"].startswith("decode took 91%")
    b = bottleneck(stages(trainer_wait=9, fetch=12, decode=2), seconds=10, workers=2)
    assert b["stage"] == "fetch" and "requests in flight" in b["suggestion"]
    # idle workers, a waiting trainer, a slow hand-off: the trainer's side limits
    b = bottleneck(stages(trainer_wait=6, fetch=1, handoff=3), seconds=10, workers=2)
    assert b["stage"] == "handoff"
    assert bottleneck(stages(), seconds=0, workers=2)["stage"] == "unknown"


def test_peers_absent_or_not_applicable_are_skipped_with_a_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ds = m5.dataset("synthetic://16")
    raw = resolve_transform("raw")
    kw: dict[str, Any] = dict(batch_size=4, workers=0, max_batches=1, max_seconds=None)
    got, _ = run_peer("webdataset", ds, raw, progress=False, **kw)
    assert got == {
        "status": "skipped",
        "reason": "webdataset reads tar shards; this source is synthetic",
    }
    got, _ = run_peer("s3torchconnector", ds, raw, progress=False, **kw)
    assert got["status"] == "skipped" and "s3:// raw sources" in got["reason"]
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "webdataset" else real(n, *a)
    )
    got, _ = run_peer("webdataset", ds, raw, progress=False, **kw)
    assert got == {"status": "skipped", "reason": "webdataset is not installed"}
    got, m = run_peer("torch", ds, raw, progress=False, **kw)
    assert got["status"] == "ok" and got["samples"] == 4 and m is not None


def test_unknown_transform_and_artifact_files(tmp_path: Any) -> None:
    with pytest.raises(m5.ConfigError, match="unknown transform 'x'"):
        resolve_transform("x")
    from m5stream.transforms import Compose, Resize

    path = tmp_path / "t.json"
    Compose([Resize(32)]).save(path)
    p = resolve_transform(str(path))
    assert p.name == "t.json" and p.peer_fn is None and p.transform is not None
    with pytest.raises(m5.ConfigError, match="does not exist"):
        resolve_transform(str(tmp_path / "missing.json"))


def _result(startup: dict[str, Any]) -> dict[str, Any]:
    """A bench result as :func:`run_bench` makes it, with the given ``startup``."""
    return {
        "interrupted": False,
        "environment": {"pil": "Pillow 11.0"},
        "source": {"uri": "d/x.tar", "format": "tar", "shards": 2, "samples": 64, "bytes": 9e6},
        "config": {"transform": "raw", "batch_size": 8, "workers": 2, "executor": "processes"},
        "result": {"samples": 120, "seconds": 1.5, "samples_per_s": 80.0, "mb_per_s": 1.0},
        "stages": stages(listing=0.125, first_batch=0.5),
        "startup": startup,
        "workers": {"count": 2, "utilisation": 0.5},
        "memory": {"peak_tree_pss_bytes": 1e8, "peak_tree_rss_bytes": 2e8},
        "bottleneck": {"stage": "decode", "reason": "decode took 50%", "suggestion": ""},
    }


STARTUP = {
    "first_batch_from_loader_s": 0.75,
    "loader_init_s": 0.25,
    "epochs": [{"end_from_loader_s": t, "batches": 8, "samples": 64} for t in (2.0, 3.0, 4.0)],
    "first_epoch_samples_per_s": 32.0,
    "steady_samples_per_s": 64.0,
    "first_epoch_ratio": 0.5,
    "first_epoch_ratio_note": None,
    "startup_batches": None,
}


def test_report_gives_the_first_batch_and_the_first_epoch_ratio() -> None:
    from m5stream.bench.report import format_report

    text = format_report(_result(STARTUP))
    assert (
        "start-up    first batch 0.750s after Loader(...) (which took 0.250s; "
        "listing 0.125s apart, before it)"
    ) in text
    assert (
        "first epoch 32 samples/s with start-up, steady 64 (epochs 2-3, median): "
        "first-epoch ratio 0.50"
    ) in text
    assert "executor; Pillow" in text and "inline while" not in text  # startup_batches absent
    two = {**STARTUP, "epochs": STARTUP["epochs"][:2], "startup_batches": 3}
    text = format_report(_result(two))
    assert "steady 64 (epoch 2): first-epoch ratio 0.50" in text
    assert "processes executor (3 batches made inline while the workers started); Pillow" in text


def test_report_says_why_the_ratio_is_absent() -> None:
    from m5stream.bench.report import format_report

    short = {
        **STARTUP,
        "epochs": [],
        "first_epoch_samples_per_s": None,
        "steady_samples_per_s": None,
        "first_epoch_ratio": None,
        "first_epoch_ratio_note": "run ended within epoch 1",
        "startup_batches": 0,
    }
    text = format_report(_result(short))
    assert (
        "first-epoch ratio: n/a (run ended within epoch 1; use --epochs 2+ or a longer "
        "--batches/--seconds)"
    ) in text
    assert "inline while" not in text  # 0 batches made inline: not shown
    none = format_report(_result({**short, "first_batch_from_loader_s": None}))
    assert "start-up    no batch delivered" in none
