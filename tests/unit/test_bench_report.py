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
