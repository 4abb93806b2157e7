"""Local checkpoints: round trip with the loader position, ordering, incomplete ones ignored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import m5stream as m5
from m5stream import checkpoint


def test_round_trip_restores_state_and_loader_position(tmp_path: Path) -> None:
    ds = m5.dataset("synthetic://40")
    lo = m5.Loader(ds, 4, shuffle=True, seed=2, output="numpy")
    it = iter(lo)
    for _ in range(3):
        next(it)
    fut = checkpoint.save(
        str(tmp_path / "ck" / "step-3"), {"w": torch.arange(5.0), "step": 3}, loader=lo, step=3
    )
    assert fut.result(30) == str(tmp_path / "ck" / "step-3")
    want = [b["__index__"].tolist() for b in it]
    assert checkpoint.latest(str(tmp_path / "ck")) == str(tmp_path / "ck" / "step-3")
    lo2 = m5.Loader(ds, 4, shuffle=True, seed=2, output="numpy")
    state = checkpoint.load(str(tmp_path / "ck" / "step-3"), loader=lo2)
    assert torch.equal(state["w"], torch.arange(5.0)) and state["step"] == 3
    assert [b["__index__"].tolist() for b in lo2] == want
    manifest = json.loads((tmp_path / "ck" / "step-3" / "MANIFEST.json").read_text())
    assert set(manifest["files"]) == {"state.pt", "loader.json"} and manifest["step"] == 3


def test_latest_picks_the_newest_complete_one(tmp_path: Path) -> None:
    root = tmp_path / "ck"
    for step in (5, 10, 20):
        checkpoint.save(str(root / f"s{step}"), {"step": step}, step=step, blocking=True)
    assert checkpoint.latest(str(root)) == str(root / "s20")
    (root / "s20" / "MANIFEST.json").unlink()  # killed before the manifest was written
    assert checkpoint.latest(str(root)) == str(root / "s10")
    with open(root / "s10" / "state.pt", "ab") as f:  # a file that does not match
        f.write(b"x")
    assert checkpoint.latest(str(root)) == str(root / "s5")
    with pytest.raises(m5.CorruptData, match="does not match its manifest"):
        checkpoint.load(str(root / "s10"))
    with pytest.raises(m5.NotFound, match="not a complete checkpoint"):
        checkpoint.load(str(root / "s20"))
    assert checkpoint.latest(str(tmp_path / "nothing-here")) is None


def test_async_saves_snapshot_the_tensors_and_run_in_order(tmp_path: Path) -> None:
    w = torch.zeros(1000)
    futs = []
    for step in range(1, 6):
        w += 1  # the training loop changes the tensor right after save() returns
        futs.append(checkpoint.save(str(tmp_path / f"s{step}"), {"w": w}, step=step))
    checkpoint.wait()
    assert all(f.done() for f in futs)
    for step in range(1, 6):
        got = checkpoint.load(str(tmp_path / f"s{step}"))["w"]
        assert torch.equal(got, torch.full((1000,), float(step)))
