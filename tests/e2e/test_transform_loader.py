"""Transforms inside the Loader: fused images written into slots, skipping bad images, packed
text batches - the same batches with and without workers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import m5stream as m5
from m5stream import transforms as T
from tests.images import make_image_tar

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _train() -> T.Compose:
    return T.Compose(
        [
            T.DecodeImage("jpg"),
            T.RandomResizedCrop(96),
            T.RandomHorizontalFlip(),
            T.Normalize(MEAN, STD),
            T.Cast({"cls": "int64"}),
        ]
    )


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> m5.Dataset:
    return m5.dataset(make_image_tar(tmp_path_factory.mktemp("img"), shards=2, per_shard=12))


def _run(ds: m5.Dataset, nw: int, tf: T.Compose, **kw: object) -> list[dict]:
    with m5.Loader(
        ds, 8, transform=tf, num_workers=nw, shuffle=True, seed=3, output="numpy", copy=True, **kw
    ) as lo:
        lo.set_epoch(1)
        return list(lo)


def test_worker_slots_and_inline_path_give_identical_tensors(images: m5.Dataset) -> None:
    inline = _run(images, 0, _train())
    workers = _run(images, 2, _train())
    assert len(inline) == len(workers) == 3
    for a, b in zip(inline, workers):
        assert a["jpg"].shape == (8, 3, 96, 96) and a["jpg"].dtype == np.float32
        assert np.array_equal(a["jpg"], b["jpg"])  # bit-identical
        assert a["__index__"].tolist() == b["__index__"].tolist()
        assert a["cls"].tolist() == [i % 10 for i in a["__index__"].tolist()]


def test_eval_pipeline_equals_direct_calls(images: m5.Dataset) -> None:
    tf = T.Compose([T.DecodeImage(), T.Resize(80), T.CenterCrop(64), T.ToCHW()])
    batches = _run(images, 2, tf)
    for b in batches:
        for row, i in zip(b["jpg"], b["__index__"].tolist()):
            assert np.array_equal(row, tf(images[i])["jpg"])


def test_corrupt_images_in_workers(tmp_path: Path) -> None:
    ds = m5.dataset(make_image_tar(tmp_path, shards=1, per_shard=16, corrupt=(5, 11)))
    with pytest.raises(m5.CorruptData, match="Premature end") as e:
        _run(ds, 2, _train())
    assert e.value.key in ("img00005", "img00011")
    for nw in (0, 2):
        with m5.Loader(
            ds, 8, transform=_train(), num_workers=nw, on_error="skip", output="numpy", copy=True
        ) as lo:
            got = [(b["__index__"].tolist(), b["jpg"].shape[0]) for b in lo]
            assert lo.stats["skipped"] == 2
            assert [r[1] for r in lo.state_dict()["skipped"]] == [5, 11]
        assert got == [([0, 1, 2, 3, 4, 6, 7], 7), ([8, 9, 10, 12, 13, 14, 15], 7)]


def test_packed_text_batches_resume_exactly(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    with open(root / "docs.jsonl", "w") as f:
        for i in range(60):
            f.write(json.dumps({"text": "x" * (i % 13 + 1)}) + "\n")
    ds = m5.dataset(str(root / "docs.jsonl"))
    tok, pack = T.Compose([T.Tokenize("text")]), T.PackTokens(16)

    def run(nw: int, state: dict | None = None, stop: int | None = None) -> tuple[list, dict]:
        with m5.Loader(
            ds,
            6,
            transform=tok,
            batch_transform=pack,
            num_workers=nw,
            shuffle=True,
            seed=1,
            output="numpy",
        ) as lo:
            if state:
                lo.load_state_dict(state)
            out = []
            for b in lo:
                out.append(
                    (b["input_ids"].tolist(), b["position_ids"].tolist(), b["__index__"].tolist())
                )
                if stop is not None and len(out) == stop:
                    break
            return out, lo.state_dict()

    full, _ = run(0)
    assert full == run(2)[0]
    assert len(full) == 10 and all(len(r) == 16 for b in full for r in b[0])
    first, state = run(2, stop=4)
    rest, _ = run(0, state=state)
    assert first + rest == full
    seq = [t for i in full[0][2] for t in [*([120] * (i % 13 + 1)), 257]]
    assert [t for row in full[0][0] for t in row][: len(seq)] == seq
