"""The XLA path, really run: ``DeviceLoader(..., static_shapes=...)`` on torch_xla's CPU device.

torch_xla pins its own torch, so these tests run in a venv of their own (``.ci/run`` builds
``.venv-xla`` and runs ``tests/xla`` there with ``PJRT_DEVICE=CPU``); in the main venv the
module is skipped. One epoch of variable-length token batches goes to the device: the batches
equal the CPU path's (``StaticShapes`` applied on the host), the graphs compiled are exactly
one per bucket the epoch used (torch_xla's ``UncachedCompile`` counter), a second epoch
compiles none, and ``state_dict`` resumes with exactly the remaining batches.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

torch_xla = pytest.importorskip("torch_xla")

import torch  # noqa: E402 - after the skip: only the XLA venv gets here
import torch_xla.debug.metrics as met  # noqa: E402

import m5stream as m5  # noqa: E402
from m5stream.device import DeviceLoader, StaticShapes  # noqa: E402
from m5stream.transforms import Tokenize  # noqa: E402

BATCH = 8
BUCKETS = [32, 64, 128]


@pytest.fixture(autouse=True)
def _cpu_device() -> None:
    if os.environ.get("PJRT_DEVICE") != "CPU":
        pytest.skip("run with PJRT_DEVICE=CPU (as .ci/run does)")


def text_dataset(tmp_path: Path, n: int = 45) -> m5.Dataset:
    # tokens are the UTF-8 bytes + EOS: batches of 8 (in order) need buckets 32, 64 and 128,
    # the first two twice each; the last batch has 5 rows and is padded to 8
    lengths = [5 + (i * 7) % 26 if i < 16 else 40 + i % 20 if i < 32 else 70 + i for i in range(n)]
    lines = [json.dumps({"txt": "y" * ln}) for ln in lengths]
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    return m5.dataset(str(tmp_path / "t.jsonl"))


def loader(ds: m5.Dataset, output: str = "torch") -> m5.Loader:
    return m5.Loader(ds, BATCH, transform=Tokenize("txt"), output=output, shuffle=False)


def step(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """A model's step: masked mean of an embedding of the tokens (one graph per shape)."""
    emb = torch.sin(
        batch["tokens"].float().unsqueeze(-1)
        * torch.arange(1, 5).float().to(batch["tokens"].device)
    )
    width = batch["tokens"].shape[1]
    pos = torch.arange(width, device=batch["tokens"].device)
    mask = (pos[None, :] < batch["tokens_length"][:, None]) & batch["__valid__"][:, None]
    return (emb * mask.unsqueeze(-1)).sum() / mask.sum().clamp(min=1)


def cpu_batches(ds: m5.Dataset, ss: StaticShapes) -> list[dict[str, np.ndarray]]:
    with loader(ds, "numpy") as lo:
        return [{k: v for k, v in ss(b).items() if isinstance(v, np.ndarray)} for b in lo]


def assert_same(dev: dict[str, torch.Tensor], ref: dict[str, np.ndarray]) -> None:
    assert set(dev) == set(ref), (sorted(dev), sorted(ref))
    for k, v in ref.items():
        got = dev[k].cpu().numpy()
        assert got.dtype == v.dtype and got.shape == v.shape, (k, got.dtype, got.shape, v.shape)
        assert np.array_equal(got, v), k


def test_one_epoch_compiles_one_graph_per_bucket(tmp_path: Path) -> None:
    ds = text_dataset(tmp_path)
    ss = StaticShapes(BATCH, buckets={"tokens": BUCKETS})
    ref = cpu_batches(ds, ss)
    used = sorted({b["tokens"].shape[1] for b in ref})
    assert len(ref) == 6 and used == BUCKETS  # the epoch needs every bucket
    device = torch_xla.device()
    met.clear_all()
    with loader(ds) as lo:
        dl = DeviceLoader(lo, device, static_shapes=ss)
        losses = []
        for i, batch in enumerate(dl):
            assert batch["tokens"].device.type == "xla"
            assert_same(batch, ref[i])
            losses.append(step(batch))
            torch_xla.sync()
        assert len(losses) == len(ref)
        values = [float(x.cpu()) for x in losses]
        compiled = met.counter_value("UncachedCompile")
        assert compiled == len(used), met.short_metrics_report()
        # a second epoch: the same shapes, so no graph is compiled again
        for batch in dl:
            step(batch)
            torch_xla.sync()
        assert met.counter_value("UncachedCompile") == compiled
    expected = [float(step({k: torch.from_numpy(v) for k, v in b.items()})) for b in ref]
    assert np.allclose(values, expected, rtol=1e-5, atol=1e-6)


def test_state_dict_resumes_exactly_on_xla(tmp_path: Path) -> None:
    ds = text_dataset(tmp_path)
    ss = StaticShapes(BATCH, buckets={"tokens": BUCKETS})
    ref = cpu_batches(ds, ss)
    device = torch_xla.device()
    with loader(ds) as lo:
        dl = DeviceLoader(lo, device, static_shapes=ss)
        it = iter(dl)
        for i in range(2):
            assert_same(next(it), ref[i])
        state = dl.state_dict()
        assert state["step"] == 2  # the batches handed out, not those prefetched behind them
        json.dumps(state)
    with loader(ds) as lo2:
        dl2 = DeviceLoader(lo2, device, static_shapes=ss)
        dl2.load_state_dict(state)
        rest = list(dl2)
    assert len(rest) == len(ref) - 2
    for got, want in zip(rest, ref[2:]):
        assert_same(got, want)
