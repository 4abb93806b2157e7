"""Random access to samples of every local format, and their errors."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

import m5stream as m5
from tests.helpers import (
    make_jsonl_dataset,
    make_parquet_dataset,
    make_tar_dataset,
    sample_bytes,
)


def test_raw_files_one_sample_each(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.JPG").write_bytes(b"jpeg-a")
    (tmp_path / "sub" / "b.png").write_bytes(b"png-b")
    (tmp_path / "noext").write_bytes(b"raw")
    (tmp_path / ".hidden").write_bytes(b"skip me")
    ds = m5.dataset(str(tmp_path))
    assert ds.manifest.format == "raw" and len(ds) == 3
    got = [ds[i] for i in range(3)]
    assert [s["__key__"] for s in got] == ["a.JPG", "noext", "sub/b.png"]
    assert got[0]["jpg"] == b"jpeg-a" and got[1]["data"] == b"raw" and got[2]["png"] == b"png-b"
    assert [s["__index__"] for s in got] == [0, 1, 2]


def test_tar_samples_group_members_by_key(tmp_path: Path) -> None:
    ds = m5.dataset(make_tar_dataset(tmp_path, shards=3, per_shard=5))
    for i in (0, 4, 5, 14):
        s = ds[i]
        assert s["__key__"] == f"s{i:06d}"
        assert s["bin"] == sample_bytes(i)
        assert s["cls"] == str(i).encode()


def test_tar_index_is_cached_and_invalidated(tmp_path: Path) -> None:
    pattern = make_tar_dataset(tmp_path, shards=1, per_shard=3)
    assert len(m5.dataset(pattern)) == 3
    make_tar_dataset(tmp_path, shards=1, per_shard=5)  # same path, new content
    assert len(m5.dataset(pattern)) == 5


def test_corrupt_tar_names_the_shard(tmp_path: Path) -> None:
    pattern = make_tar_dataset(tmp_path, shards=2, per_shard=3)
    shard = tmp_path / "shard-00001.tar"
    raw = bytearray(shard.read_bytes())
    raw[512 * 2 + 3] ^= 0x55
    shard.write_bytes(bytes(raw))
    with pytest.raises(m5.CorruptData) as e:
        m5.dataset(pattern)
    assert isinstance(e.value, ValueError)
    assert "shard-00001.tar" in str(e.value) and "byte 1024" in str(e.value)


def test_tar_truncated_after_indexing_names_key_and_range(tmp_path: Path) -> None:
    pattern = make_tar_dataset(tmp_path, shards=1, per_shard=4)
    ds = m5.dataset(pattern)
    shard = tmp_path / "shard-00000.tar"
    with tarfile.open(shard) as tf:
        last = tf.getmembers()[-2]  # s000003.bin
    data = shard.read_bytes()
    shard.write_bytes(data[: last.offset_data + 10])
    with pytest.raises(m5.CorruptData) as e:
        ds[3]
    msg = str(e.value)
    assert "key=s000003" in msg and "shard-00000.tar" in msg and "byte_range=" in msg
    assert e.value.index == 3


def test_tar_block_equals_reading_each_sample(tmp_path: Path) -> None:
    from m5stream.demo import write_tar_shard
    from m5stream.formats.tar import TarBlock

    ds = m5.dataset(make_tar_dataset(tmp_path, shards=1, per_shard=9))
    reader = ds.format.open(ds.manifest.shard(0), ds.manifest.options)
    block = reader.decode_unit(0)
    assert isinstance(block, TarBlock) and block.num_rows == 9
    rows = [reader.read(i) for i in range(9)]  # the row path, sample by sample
    keys, cols = block.take_range(2, 5)
    assert list(keys) == [k for k, _ in rows[2:7]]
    assert cols == {
        "bin": [f["bin"] for _, f in rows[2:7]],
        "cls": [f["cls"] for _, f in rows[2:7]],
    }
    pick = np.array([8, 0, 3, 3])
    keys, cols = block.take(pick)
    assert list(keys) == [rows[i][0] for i in pick] and cols["bin"] == [
        rows[i][1]["bin"] for i in pick
    ]
    assert block.row(4) == rows[4]
    # samples with different fields: no block (the loader reads such a shard row by row)
    write_tar_shard(str(tmp_path / "mixed.tar"), [{"a": b"1"}, {"b": b"2"}], ["k0", "k1"])
    mixed = m5.dataset(str(tmp_path / "mixed.tar"))
    r = mixed.format.open(mixed.manifest.shard(0), mixed.manifest.options)
    with pytest.raises(ValueError, match="different fields"):
        r.decode_unit(0)
    # a shard cut short after it was indexed: CorruptData naming it, as the row path does
    shard = tmp_path / "shard-00000.tar"
    shard.write_bytes(shard.read_bytes()[:3000])
    with pytest.raises(m5.CorruptData, match=r"shard-00000\.tar"):
        ds.format.open(ds.manifest.shard(0), ds.manifest.options).decode_unit(0)


def test_jsonl_lines_and_projection(tmp_path: Path) -> None:
    ds = m5.dataset(make_jsonl_dataset(tmp_path, files=2, per_file=3))
    assert ds.manifest.format == "jsonl" and len(ds) == 6
    s = ds[4]
    assert s["id"] == 4 and s["text"] == "row 4" and s["score"] == 1.0
    assert s["__key__"] == "part-1.jsonl:2"
    proj = m5.dataset(str(tmp_path / "*.jsonl"), columns=["text"])
    assert set(proj[1]) == {"text", "__key__", "__index__"}


def test_jsonl_blank_lines_crlf_and_bad_json(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'{"a": 1}\r\n\r\n{"a": 2}\n{not json}\n[1, 2]')
    ds = m5.dataset(str(p))
    assert len(ds) == 4
    assert ds[0]["a"] == 1 and ds[1]["a"] == 2 and ds[1]["__key__"] == "x.jsonl:3"
    with pytest.raises(m5.CorruptData, match=r"invalid JSON.*key=x.jsonl:4"):
        ds[2]
    with pytest.raises(m5.CorruptData, match="not an object"):
        ds[3]


def test_parquet_rows_row_groups_and_projection(tmp_path: Path) -> None:
    root = make_parquet_dataset(tmp_path, files=2, per_file=25, row_group=10)
    ds = m5.dataset(root)
    assert ds.manifest.format == "parquet" and len(ds) == 50
    for i in (0, 9, 10, 24, 25, 49):
        s = ds[i]
        assert int(s["id"]) == i and int(s["label"]) == i % 7
        assert s["title"] == f"title {i}" and s["image"] == sample_bytes(i)
    assert isinstance(ds[3]["id"], np.integer)
    proj = m5.dataset(root, columns=["image", "label"])
    assert set(proj[30]) == {"image", "label", "__key__", "__index__"}
    assert proj[30]["__key__"] == "part-001.parquet#5"
    with pytest.raises(m5.ConfigError, match=r"\['nope'\] not in the Parquet schema"):
        m5.dataset(root, columns=["nope"])


def test_corrupt_parquet_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(m5.CorruptData, match="corrupt Parquet file") as e:
        m5.dataset(str(tmp_path))
    assert "bad.parquet" in str(e.value)


def test_synthetic_source() -> None:
    ds = m5.dataset("synthetic://25?shard_size=10&shape=2x3")
    assert len(ds) == 25 and ds.manifest.counts.tolist() == [10, 10, 5]
    s = ds[23]
    assert s["value"] == 23 and s["image"].shape == (2, 3) and (s["image"] == 23 % 16).all()
    with pytest.raises(m5.ConfigError):
        m5.dataset("synthetic://abc")


def test_dataset_pickles_without_open_files(tmp_path: Path) -> None:
    import pickle

    ds = m5.dataset(make_tar_dataset(tmp_path, shards=2, per_shard=2))
    ds[0]
    again = pickle.loads(pickle.dumps(ds))
    assert again[3]["cls"] == b"3" and again.fingerprint == ds.fingerprint
    assert json.loads(ds.manifest.to_json())["format"] == "tar"


def test_reading_one_dataset_from_many_threads(tmp_path: Path) -> None:
    """A consumer's thread pool (grain's prefetch, a user's) reads ds[i] at once from several
    threads: every sample is exact (a shared Parquet reader crashed pyarrow before)."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.helpers import make_parquet_dataset

    ds = m5.dataset(make_parquet_dataset(tmp_path / "pq", files=2, per_file=300, row_group=7))
    order = np.random.default_rng(0).permutation(len(ds)).tolist() * 3
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: (i, int(ds[i]["id"]), ds[i]["title"]), order))
    assert got == [(i, i, f"title {i}") for i in order]
