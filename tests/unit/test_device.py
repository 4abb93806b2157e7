"""Device feeding on this CPU-only machine: static shapes (the XLA contract), the CPU path,
exact state under prefetch, and clear errors for missing backends."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import m5stream as m5
from m5stream.torch import DeviceLoader, StaticShapes
from m5stream.transforms import Tokenize


def text_dataset(tmp_path: Path, n: int = 37) -> m5.Dataset:
    # batches of 8 in order: tokens (+1 EOS) up to 18, then up to 56, then up to 110
    lengths = [10 + i if i < 8 else 40 + i if i < 16 else 70 + i % 40 for i in range(n)]
    lines = [json.dumps({"txt": "x" * ln}) for ln in lengths]
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    return m5.dataset(str(tmp_path / "t.jsonl"))


def test_static_shapes_come_only_from_the_buckets(tmp_path: Path) -> None:
    ds = text_dataset(tmp_path)
    ss = StaticShapes(8, buckets={"tokens": [32, 64, 128]})
    shapes = set()
    valid = 0
    seen = []
    with m5.Loader(ds, 8, transform=Tokenize("txt"), output="numpy") as lo:
        for b in lo:
            out = ss(b)
            shapes |= {(k, v.shape) for k, v in out.items() if isinstance(v, np.ndarray)}
            n = int(out["__valid__"].sum())
            valid += n
            lengths = out["tokens_length"][:n]
            for row, ln, tok in zip(out["tokens"][:n], lengths, b["tokens"]):
                assert ln == len(tok) and np.array_equal(row[:ln], tok) and not row[ln:].any()
            assert (out["__index__"][n:] == -1).all() and not out["tokens_length"][n:].any()
            seen.extend(out["__index__"][:n].tolist())
    assert valid == 37 and sorted(seen) == list(range(37))  # the last batch (5) was padded
    widths = {s[1] for k, s in shapes if k == "tokens"}
    assert widths == {32, 64, 128}
    assert {s for k, s in shapes if k == "__valid__"} == {(8,)}
    assert {s for k, s in shapes if k == "__index__"} == {(8,)}
    with pytest.raises(m5.ConfigError, match="more than the largest bucket 16"):
        StaticShapes(8, buckets={"tokens": [16]})(
            {"__index__": np.arange(1), "tokens": [np.zeros(17)]}
        )


def test_cpu_device_loader_and_exact_state_under_prefetch(tmp_path: Path) -> None:
    ds = m5.dataset("synthetic://60")
    lo = m5.Loader(ds, 6, shuffle=True, seed=5, num_workers=2, output="torch")
    dl = lo.to("cpu", static_shapes=StaticShapes(6))
    it = iter(dl)
    got = [next(it)["__index__"].tolist() for _ in range(4)]
    state = dl.state_dict()
    assert state["step"] == 4  # the batches handed out, whatever was fetched behind them
    rest = [b["__index__"].tolist() for b in it]
    lo.close()
    lo2 = m5.Loader(ds, 6, shuffle=True, seed=5, output="torch")
    dl2 = DeviceLoader(lo2, "cpu")
    dl2.load_state_dict(state)
    assert [b["__index__"].tolist() for b in dl2] == rest
    assert len(got + rest) == 10 and all(isinstance(b, list) for b in got)


def test_missing_backends_are_clear_errors() -> None:
    lo = m5.Loader(m5.dataset("synthetic://8"), 2)
    with pytest.raises(m5.ConfigError, match="device 'xla' needs torch_xla"):
        DeviceLoader(lo, "xla")
    if not torch.cuda.is_available():
        with pytest.raises(m5.ConfigError, match="CUDA is not available"):
            DeviceLoader(lo, "cuda:0")
    with pytest.raises(m5.ConfigError, match="unsupported device 'tpu'"):
        DeviceLoader(lo, "tpu")
