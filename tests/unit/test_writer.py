"""write_shards: tar and Parquet shards that m5.dataset reads back exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

import m5stream as m5
from tests.helpers import make_tar_dataset, sample_bytes


def _samples(n: int) -> list[dict]:
    return [
        {"__key__": f"item{i:04d}", "bin": sample_bytes(i), "txt": f"text {i}", "cls": i % 3}
        for i in range(n)
    ]


def test_tar_round_trip(tmp_path: Path) -> None:
    pattern = m5.write_shards(_samples(25), str(tmp_path / "out"), shard_size=10)
    assert pattern == f"{tmp_path}/out/shard-{{00000..00002}}.tar"
    ds = m5.dataset(pattern)
    assert ds.manifest.counts.tolist() == [10, 10, 5]
    for i in (0, 13, 24):
        s = ds[i]
        assert s["__key__"] == f"item{i:04d}" and s["bin"] == sample_bytes(i)
        assert s["txt"] == f"text {i}".encode() and s["cls"] == str(i % 3).encode()


def test_parquet_round_trip(tmp_path: Path) -> None:
    pattern = m5.write_shards(_samples(12), str(tmp_path / "pq"), format="parquet", shard_size=5)
    ds = m5.dataset(pattern)
    assert len(ds) == 12 and ds.manifest.format == "parquet"
    assert ds[11]["bin"] == sample_bytes(11) and ds[11]["txt"] == "text 11"
    assert int(ds[11]["cls"]) == 2


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(m5.ConfigError, match="no samples"):
        m5.write_shards([], str(tmp_path / "e"))
    with pytest.raises(m5.ConfigError, match="hold bytes, str or numbers"):
        m5.write_shards([{"__key__": "a", "x": [1, 2]}], str(tmp_path / "f"))
    with pytest.raises(m5.ConfigError, match="dot"):
        m5.write_shards([{"__key__": "a.b", "x": b""}], str(tmp_path / "g"))


def test_reshard_a_dataset(tmp_path: Path) -> None:
    src = m5.dataset(make_tar_dataset(tmp_path / "src", shards=3, per_shard=7))
    pattern = m5.write_shards((src[i] for i in range(len(src))), str(tmp_path / "re"), shard_size=8)
    again = m5.dataset(pattern)
    assert again.manifest.counts.tolist() == [8, 8, 5]
    assert [again[i]["bin"] for i in range(21)] == [sample_bytes(i) for i in range(21)]
