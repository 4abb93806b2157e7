"""Column-wise batch pieces: the text kernel against its Python twin, lazy ``Keys``, block
slicing and ``Dataset.segments``."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

import m5stream as m5
from m5stream._native.textcol import values_from_offsets
from m5stream.batches.columns import Keys, TextColumn, arrow_values, values_from_offsets_reference
from tests.helpers import make_parquet_dataset

IMPLS = [values_from_offsets, values_from_offsets_reference]


def _pack(values: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(values) + 1, np.int32)
    offsets[1:] = np.cumsum([len(v) for v in values])
    return offsets, np.frombuffer(b"".join(values), np.uint8)


@pytest.mark.parametrize("impl", IMPLS)
def test_text_values_from_offsets(impl: object) -> None:
    words = ["", "a", "data loader", "x" * 17, "naïve", "日本語のテキスト", "emoji 🙂", "tab\tnl\n"]
    offsets, data = _pack([w.encode() for w in words])
    assert impl(offsets, data) == words  # type: ignore[operator]
    assert impl(offsets, data, text=False) == [w.encode() for w in words]  # type: ignore[operator]
    # a slice whose offsets do not start at 0 (a batch cut out of a block)
    assert impl(offsets[2:6], data) == words[2:5]  # type: ignore[operator]
    assert impl(np.zeros(1, np.int32), data) == []  # type: ignore[operator]


@pytest.mark.parametrize("impl", IMPLS)
def test_text_kernel_errors_match_the_reference(impl: object) -> None:
    offsets, data = _pack([b"ok", b"\xff\xfe bad utf-8"])
    with pytest.raises(UnicodeDecodeError):
        impl(offsets, data)  # type: ignore[operator]
    assert impl(offsets, data, text=False)[1] == b"\xff\xfe bad utf-8"  # type: ignore[operator]
    for bad in ([0, 5, 3], [0, 2, 99], [-1, 2]):
        with pytest.raises(ValueError, match="offsets"):
            impl(np.array(bad, np.int32), data)  # type: ignore[operator]


def test_arrow_values_of_string_binary_and_other_columns() -> None:
    import pyarrow as pa

    texts = ["\u00e9t\u00e9", "", "beta", "\u65e5\u672c"] * 3
    arr = pa.array(texts)
    assert arrow_values(arr) == texts
    assert arrow_values(arr.slice(3, 5)) == texts[3:8]
    assert arrow_values(pa.array([b"\x00\x01", b""])) == [b"\x00\x01", b""]
    assert arrow_values(pa.array([], pa.string())) == []
    assert arrow_values(pa.array(["a", None])) == ["a", None]  # nulls: pyarrow's own path
    assert arrow_values(pa.array(["a", "b"], pa.large_string())) == ["a", "b"]


def test_keys_behave_like_the_list_of_strings() -> None:
    k = Keys.runs([("a.parquet#", range(5, 8)), ("b.parquet#", np.array([9, 2]))])
    want = ["a.parquet#5", "a.parquet#6", "a.parquet#7", "b.parquet#9", "b.parquet#2"]
    assert len(k) == 5
    assert k[0] == want[0] and k[3] == want[3] and k[-1] == want[-1]  # without materialising
    with pytest.raises(IndexError):
        k[5]
    assert k[1:3] == want[1:3]
    assert k == want and want == k and k != want[:-1] and k != "a"
    assert list(k) == want and k.tolist() == want
    assert pickle.loads(pickle.dumps(k)) == want
    assert repr(k) == f"Keys({want!r})"
    assert Keys(want) == k  # what generic code's type(x)(items) makes
    with pytest.raises(TypeError):
        hash(k)


def test_keys_of_whole_objects_are_their_prefix() -> None:
    k = Keys.concat([Keys.runs([("a.jpg", None)]), Keys.runs([("b.jpg", None)])])
    assert len(k) == 2 and k[1] == "b.jpg" and k[-2] == "a.jpg" and k == ["a.jpg", "b.jpg"]


def test_keys_concat_merges_adjacent_ranges() -> None:
    a = Keys.runs([("s#", range(0, 4))])
    b = Keys.runs([("s#", range(4, 6))])
    c = Keys.runs([("t#", range(0, 2))])
    joined = Keys.concat([a, b, c])
    assert joined._parts == [("s#", range(0, 6)), ("t#", range(0, 2))]
    assert joined == [f"s#{i}" for i in range(6)] + ["t#0", "t#1"]
    assert Keys.concat([Keys(["x"]), a]) == ["x", "s#0", "s#1", "s#2", "s#3"]


def test_segments_locate_runs_like_locate_many(tmp_path: Path) -> None:
    # files of 40, 40, 40 rows in row groups of 16 (16, 16, 8)
    ds = m5.dataset(make_parquet_dataset(tmp_path, files=3, per_file=40, row_group=16))
    rng = np.random.default_rng(0)
    for _ in range(200):
        start = int(rng.integers(0, 120))
        count = int(rng.integers(1, 121 - start))
        segs = ds.segments(start, count)
        idx = np.arange(start, start + count)
        shards, locals_ = ds.locate_many(idx)
        units = ds.units_of(shards, locals_)
        flat = [(s, u, lo + i) for s, u, lo, n in segs for i in range(n)]
        assert flat == list(zip(shards.tolist(), units.tolist(), locals_.tolist()))
        assert len(segs) == len(set(zip(shards.tolist(), units.tolist())))
    assert ds.segments(30, 20) == [(0, 1, 30, 2), (0, 2, 32, 8), (1, 0, 0, 10)]
    with pytest.raises(IndexError):
        ds.segments(110, 11)


def test_block_slices_are_writable_copies_and_keys(tmp_path: Path) -> None:
    ds = m5.dataset(make_parquet_dataset(tmp_path, files=1, per_file=40, row_group=16))
    block = ds.block(0, 1, 20)
    assert (block.first, block.num_rows) == (16, 16)
    keys, cols = block.take_range(2, 3)
    assert keys == ["part-000.parquet#18", "part-000.parquet#19", "part-000.parquet#20"]
    assert cols["id"].tolist() == [18, 19, 20] and cols["id"].flags.writeable
    cols["id"][0] = -1  # writable: torch.from_numpy takes it without a warning
    keys, cols = block.take(np.array([5, 0, 3]))
    assert keys == ["part-000.parquet#21", "part-000.parquet#16", "part-000.parquet#19"]
    assert cols["title"] == ["title 21", "title 16", "title 19"]  # a gather: a list
    _, cols = block.take_range(4, 3)  # a run of a text column: offsets and bytes, no copy
    assert isinstance(cols["title"], TextColumn) and cols["title"].data is block.data["title"].data
    assert cols["title"].values() == ["title 20", "title 21", "title 22"]
    offsets, data = cols["title"].parts()
    assert offsets.tolist() == [0, 8, 16, 24] and data.tobytes() == b"title 20title 21title 22"


def test_text_column_slices_concat_and_gathers() -> None:
    import pyarrow as pa

    words = ["a", "", "héllo", "bb", "ccc", "d"]
    col = TextColumn.from_arrow(pa.array(words).slice(1, 5))  # an offset into the buffers
    assert len(col) == 5 and col.values() == words[1:]
    assert col.slice(1, 3).values() == words[2:5] and col.slice(5, 0).values() == []
    assert col.take(np.array([4, 0, 2, 2])) == [words[5], words[1], words[3], words[3]]
    joined = TextColumn.concat(
        [col.slice(0, 2), col.slice(3, 2), TextColumn.from_arrow(pa.array(["z"]))]
    )
    assert joined.values() == ["", "héllo", "ccc", "d", "z"] and joined.parts()[0][0] == 0
    raw = TextColumn.from_arrow(pa.array([b"\x00\xff", b"x"]))
    assert not raw.text and raw.values() == [b"\x00\xff", b"x"]
    assert TextColumn.from_arrow(pa.array([], pa.string())).values() == []
    assert col.slice(1, 2) == TextColumn.from_arrow(pa.array(words[2:4]))
