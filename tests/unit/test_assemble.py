"""Batch assembly rules, and slot write/read against the in-process numpy path."""

from __future__ import annotations

import numpy as np

from m5stream.batches import assemble_rows, read_slot, write_rows


def _samples() -> list[dict]:
    out = []
    for i in range(5):
        out.append(
            {
                "__index__": 10 + i,
                "__key__": f"k{i}",
                "img": np.full((2, 3), i, dtype=np.uint8),
                "label": i,
                "score": i / 2,
                "flag": bool(i % 2),
                "blob": bytes([i]) * (i + 1),
                "text": f"t{i}",
                "ragged": np.arange(i),
            }
        )
    return out


def test_assemble_numpy_rules() -> None:
    b = assemble_rows(_samples())
    assert b["img"].shape == (5, 2, 3) and b["img"].dtype == np.uint8
    assert b["label"].dtype == np.int64 and b["label"].tolist() == [0, 1, 2, 3, 4]
    assert b["score"].dtype == np.float64
    assert b["flag"].dtype == np.bool_
    assert b["blob"] == [bytes([i]) * (i + 1) for i in range(5)]
    assert b["text"] == ["t0", "t1", "t2", "t3", "t4"]
    assert isinstance(b["ragged"], list) and len(b["ragged"][3]) == 3
    assert b["__index__"].tolist() == [10, 11, 12, 13, 14] and b["__index__"].dtype == np.int64
    assert b["__key__"] == ["k0", "k1", "k2", "k3", "k4"]


def _equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k])
        elif k == "ragged":
            assert all(np.array_equal(x, y) for x, y in zip(a[k], b[k]))
        else:
            assert a[k] == b[k]


def test_slot_roundtrip_equals_numpy_path() -> None:
    slot = np.zeros(1 << 16, dtype=np.uint8)
    layout, needed, failures = write_rows(_samples(), slot)
    assert failures == []
    assert 0 < needed <= len(slot)
    kinds = {e.name: e.kind.value for e in layout}
    assert kinds["img"] == "array" and kinds["blob"] == "bytes" and kinds["text"] == "object"
    _equal(read_slot(layout, slot, copy=True), assemble_rows(_samples()))
    view = read_slot(layout, slot, copy=False)
    assert np.shares_memory(view["img"], slot)


def test_batch_too_big_for_slot_travels_inline() -> None:
    slot = np.zeros(64, dtype=np.uint8)
    layout, needed, failures = write_rows(_samples(), slot)
    assert failures == []
    assert needed > 64
    assert {e.kind.value for e in layout} <= {"inline", "object", "index"}
    assert not slot.any()
    _equal(read_slot(layout, None, copy=True), assemble_rows(_samples()))
