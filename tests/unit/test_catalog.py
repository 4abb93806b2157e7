"""Brace patterns, local listing, manifests and fingerprints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import m5stream as m5
from m5stream.catalog import Manifest, expand_braces
from tests.helpers import make_jsonl_dataset, make_tar_dataset


def test_brace_ranges_keep_padding() -> None:
    assert expand_braces("shard-{00000..00003}.tar") == [
        "shard-00000.tar",
        "shard-00001.tar",
        "shard-00002.tar",
        "shard-00003.tar",
    ]
    assert expand_braces("x{8..11}") == ["x8", "x9", "x10", "x11"]
    assert expand_braces("x{3..1}") == ["x3", "x2", "x1"]
    assert expand_braces("x{0..6..3}") == ["x0", "x3", "x6"]


def test_brace_alternatives_nested_and_repeated() -> None:
    assert expand_braces("{train,val}/p{0..1}") == ["train/p0", "train/p1", "val/p0", "val/p1"]
    assert expand_braces("a{b,c{d,e}}f") == ["abf", "acdf", "acef"]
    assert expand_braces("plain") == ["plain"]
    assert expand_braces("{x}") == ["{x}"]


def test_dataset_from_pattern_directory_and_glob(tmp_path: Path) -> None:
    pattern = make_tar_dataset(tmp_path / "d", shards=3, per_shard=4)
    a = m5.dataset(pattern)
    b = m5.dataset(str(tmp_path / "d"))
    c = m5.dataset(str(tmp_path / "d" / "*.tar"))
    assert len(a) == len(b) == len(c) == 12
    assert a.manifest.keys == ["shard-00000.tar", "shard-00001.tar", "shard-00002.tar"]
    assert a.fingerprint == b.fingerprint == c.fingerprint
    assert a.manifest.counts.tolist() == [4, 4, 4]
    assert a.manifest.locate(5) == (1, 1)


def test_fingerprint_changes_with_the_data(tmp_path: Path) -> None:
    pattern = make_tar_dataset(tmp_path / "d", shards=2, per_shard=3)
    fp = m5.dataset(pattern).fingerprint
    assert m5.dataset(pattern).fingerprint == fp  # stable
    shard = tmp_path / "d" / "shard-00001.tar"
    st = shard.stat()
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert m5.dataset(pattern).fingerprint != fp


def test_manifest_json_roundtrip(tmp_path: Path) -> None:
    ds = m5.dataset(make_tar_dataset(tmp_path / "d", shards=2, per_shard=3))
    text = ds.manifest.to_json()
    again = Manifest.from_json(text)
    assert again.fingerprint == ds.fingerprint
    assert m5.dataset(again)[4]["cls"] == b"4"
    with pytest.raises(ValueError, match="fingerprint"):
        Manifest.from_json(text.replace('"counts": [3, 3]', '"counts": [3, 4]'))


def test_missing_sources_raise_not_found(tmp_path: Path) -> None:
    with pytest.raises(m5.NotFound) as e:
        m5.dataset(str(tmp_path / "nope-{0..2}.tar"))
    assert isinstance(e.value, FileNotFoundError)
    assert "nope-0.tar" in str(e.value)
    with pytest.raises(m5.NotFound, match="no file matches"):
        m5.dataset(str(tmp_path / "*.tar"))


def test_unsupported_schemes_and_mixed_formats(tmp_path: Path) -> None:
    with pytest.raises(m5.ConfigError, match="glue://DATABASE/TABLE"):
        m5.dataset("glue://db")
    with pytest.raises(m5.ConfigError, match=r"unknown glue:// parameter\(s\) \['bogus'\]"):
        m5.dataset("glue://db/table?bogus=1")
    with pytest.raises(m5.ConfigError, match="where= filters the partitions of glue://"):
        m5.dataset(str(tmp_path), where="a = 1")
    with pytest.raises(m5.ConfigError, match="unsupported URI scheme 'ftp'"):
        m5.dataset("ftp://host/x.tar")
    (tmp_path / "a.tar").write_bytes(b"")
    (tmp_path / "b.parquet").write_bytes(b"")
    with pytest.raises(m5.ConfigError, match="mixes shard formats"):
        m5.dataset(str(tmp_path))
    with pytest.raises(m5.ConfigError, match="unknown format"):
        m5.dataset(str(tmp_path), format="zip")


def test_dataset_from_a_list_keeps_its_order(tmp_path: Path) -> None:
    make_tar_dataset(tmp_path / "d", shards=3, per_shard=4)
    files = [str(tmp_path / "d" / f"shard-{i:05d}.tar") for i in (2, 0, 1)]
    ds = m5.dataset(files)
    assert ds.manifest.keys == ["shard-00002.tar", "shard-00000.tar", "shard-00001.tar"]
    assert ds.manifest.root == str(tmp_path / "d") and ds.manifest.format == "tar"
    assert len(ds) == 12 and ds[0]["cls"] == b"8" and ds[4]["cls"] == b"0"
    assert m5.dataset(tuple(files)).fingerprint == ds.fingerprint
    with m5.Loader(files, 4, output="numpy") as lo:
        assert list(next(iter(lo))["__key__"]) == [f"s{i:06d}" for i in range(8, 12)]
    # the same shards in another order are another dataset; in sorted order, the pattern's
    assert m5.dataset(sorted(files)).fingerprint != ds.fingerprint
    pattern = m5.dataset(str(tmp_path / "d" / "shard-{00000..00002}.tar"))
    assert m5.dataset(sorted(files)).fingerprint == pattern.fingerprint


def test_dataset_from_a_list_across_directories(tmp_path: Path) -> None:
    make_tar_dataset(tmp_path / "a", shards=1, per_shard=2)
    make_tar_dataset(tmp_path / "x" / "b", shards=1, per_shard=3)
    a, b = str(tmp_path / "a" / "shard-00000.tar"), str(tmp_path / "x" / "b" / "shard-00000.tar")
    ds = m5.dataset([b, a])
    assert ds.manifest.root == str(tmp_path)
    assert ds.manifest.keys == ["x/b/shard-00000.tar", "a/shard-00000.tar"]
    assert len(ds) == 5 and ds[3]["__key__"] == "s000000"


def test_bad_list_sources(tmp_path: Path) -> None:
    make_tar_dataset(tmp_path / "t", shards=2, per_shard=2)
    a, b = (str(tmp_path / "t" / f"shard-{i:05d}.tar") for i in (0, 1))
    make_jsonl_dataset(tmp_path / "j", files=1, per_file=2)
    js = str(next((tmp_path / "j").glob("*.jsonl")))
    with pytest.raises(m5.ConfigError, match=r"mixes shard formats \['jsonl', 'tar'\]"):
        m5.dataset([a, js])
    for empty in ([], ()):
        with pytest.raises(m5.ConfigError, match="empty"):
            m5.dataset(empty)
    missing = str(tmp_path / "t" / "nope.tar")
    with pytest.raises(m5.NotFound) as e:
        m5.dataset([a, missing])
    assert missing in str(e.value)
    with pytest.raises(m5.ConfigError, match="more than once") as dup:
        m5.dataset([a, b, os.path.join(str(tmp_path / "t"), ".", os.path.basename(a))])
    assert os.path.basename(a) in str(dup.value)
    with pytest.raises(m5.ConfigError, match="is a directory"):
        m5.dataset([a, str(tmp_path / "t")])
    with pytest.raises(m5.ConfigError, match="mixes local paths and s3://"):
        m5.dataset([a, "s3://bucket/b.tar"])
    with pytest.raises(m5.ConfigError, match="unsupported URI scheme 'ftp'"):
        m5.dataset([a, "ftp://host/x.tar"])
