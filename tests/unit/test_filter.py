"""Row filters (``m5.dataset(..., filter=expr)``): exactly pyarrow's rows, read once, cached,
fingerprinted, and a dataset like any other for the Loader (shuffle, resume, mixtures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.parquet as pq
import pytest

import m5stream as m5
from m5stream.formats.parquet import ParquetFormat
from tests.helpers import make_jsonl_dataset, make_parquet_dataset, sample_bytes
from tests.resume_harness import check_resume

EXPR = (pc.field("label") == 3) | (pc.field("id") > 180)


@pytest.fixture(scope="module")
def pq_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("filt")
    make_parquet_dataset(root / "pq", files=3, per_file=70, row_group=16)  # 210 rows
    return root / "pq"


def test_parquet_rows_are_pyarrows(pq_root: Path) -> None:
    want = pds.dataset(str(pq_root), format="parquet").to_table(filter=EXPR)
    ds = m5.dataset(str(pq_root), columns=["id", "title", "image"], filter=EXPR)
    ids = want.column("id").to_pylist()
    assert len(ds) == len(ids) == 30 + 29 - 4  # label 3 (every 7th) or id > 180: pyarrow says
    assert [int(ds[i]["id"]) for i in range(len(ds))] == ids
    s = ds[len(ds) - 1]
    assert s["image"] == sample_bytes(209) and s["title"] == "title 209"
    assert s["__key__"] == "part-002.parquet#69"  # the key names the file's own row
    assert ds.manifest.counts.tolist() == [10, 10, 35]
    assert ds.caps.columnar is False and ds.caps.block_reads is False


def test_selection_reads_only_the_filters_columns(
    pq_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The selection decodes the referenced column chunks only (pyarrow is asked for those
    columns of each row group), and a second build is served from the cache."""
    from m5stream.formats import parquet

    asked: list[list[str] | None] = []
    real = parquet.ParquetReader.decode_table

    def spy(self: Any, unit: int, fetched: Any = None) -> Any:
        asked.append(self.columns)
        return real(self, unit, fetched)

    monkeypatch.setattr(parquet.ParquetReader, "decode_table", spy)
    expr = pc.field("title") == "title 77"
    ds = m5.dataset(str(pq_root), filter=expr)
    assert [int(ds[i]["id"]) for i in range(len(ds))] == [77]
    assert asked[:15] == [["title"]] * 15  # 3 files x 5 row groups, then the read of row 77
    calls = len(asked)
    again = m5.dataset(str(pq_root), filter=expr)
    assert len(asked) == calls  # nothing decoded: the selection came from the cache
    assert again.fingerprint == ds.fingerprint
    assert m5.dataset(str(pq_root), filter=pc.field("id") == 77).fingerprint != ds.fingerprint
    assert m5.dataset(str(pq_root)).fingerprint != ds.fingerprint


def test_filter_errors(pq_root: Path, tmp_path: Path) -> None:
    with pytest.raises(m5.ConfigError, match=r"takes a pyarrow\.compute expression"):
        m5.dataset(str(pq_root), filter="label = 3")
    with pytest.raises(m5.ConfigError, match=r"filter \(nope == 1\) cannot be evaluated") as e:
        m5.dataset(str(pq_root), filter=pc.field("nope") == 1)
    assert "part-000.parquet" in str(e.value)
    from tests.helpers import make_tar_dataset

    tar = make_tar_dataset(tmp_path / "t", shards=1, per_shard=3)
    with pytest.raises(m5.Unsupported, match="filter= is not supported for tar shards"):
        m5.dataset(tar, filter=pc.field("cls") == b"1")


def test_csv_and_jsonl(tmp_path: Path) -> None:
    make_jsonl_dataset(tmp_path / "js", files=2, per_file=20)
    expr = (pc.field("score") >= 2.5) & (pc.field("id") < 30)
    js = m5.dataset(str(tmp_path / "js" / "*.jsonl"), filter=expr)
    assert [js[i]["id"] for i in range(len(js))] == list(range(10, 30))
    assert js[0]["__key__"] == "part-0.jsonl:11"
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    rows = [f'{i},"name, {i}",{"ja_JP" if i % 3 == 0 else "en_US"}' for i in range(40)]
    (csv_dir / "a.csv").write_text("id,name,locale\n" + "\n".join(rows[:25]) + "\n")
    (csv_dir / "b.csv").write_text("id,name,locale\n" + "\n".join(rows[25:]) + "\n")
    cs = m5.dataset(str(csv_dir / "*.csv"), filter=pc.field("locale") == "ja_JP")
    want = pds.dataset(str(csv_dir), format="csv").to_table(filter=pc.field("locale") == "ja_JP")
    assert [int(cs[i]["id"]) for i in range(len(cs))] == want.column("id").to_pylist()
    assert cs[1]["name"] == "name, 3" and cs.manifest.counts.tolist() == [9, 5]


def test_manifest_json_keeps_the_selection(pq_root: Path) -> None:
    ds = m5.dataset(str(pq_root), columns=["id"], filter=EXPR)
    back = m5.Manifest.from_json(ds.manifest.to_json())
    assert back.fingerprint == ds.fingerprint
    assert [r.tolist() for r in back.rows or []] == [r.tolist() for r in ds.manifest.rows or []]
    assert json.loads(ds.manifest.to_json())["options"]["filter"] == str(EXPR)


#: the file ids of the filtered dataset's samples, in order
IDS: list[int] = []


class FilteredNode:
    def __init__(self, ds: m5.Dataset, nw: int, rank: int, ws: int) -> None:
        self.lo = m5.Loader(
            ds,
            10 // ws,
            num_workers=nw,
            rank=rank,
            world_size=ws,
            shuffle=True,
            seed=3,
            even_batches=False,
            output="numpy",
        )
        self.it: Any = None

    def reset(self, state: dict[str, Any] | None) -> None:
        if state is not None:
            self.lo.load_state_dict(json.loads(json.dumps(state)))
        self.it = None

    def next(self) -> list[int]:
        while True:
            if self.it is None:
                if self.lo.epoch >= 1 and self.lo.step >= self.lo.steps_per_epoch:
                    raise StopIteration
                self.it = iter(self.lo)
            try:
                b = next(self.it)
                assert [int(i) for i in b["id"]] == [IDS[i] for i in b["__index__"]]
                return [int(i) for i in b["__index__"]]
            except StopIteration:
                self.it = None

    def get_state(self) -> dict[str, Any]:
        return self.lo.state_dict()

    def shutdown(self) -> None:
        self.lo.close()


def test_resume_over_a_filtered_dataset(pq_root: Path) -> None:
    ds = m5.dataset(str(pq_root), columns=["id"], filter=EXPR)
    IDS[:] = pds.dataset(str(pq_root), format="parquet").to_table(filter=EXPR)["id"].to_pylist()
    check_resume(
        lambda nw, r, ws: FilteredNode(ds, nw, r, ws),
        configs=[(0, 1), (2, 2), (0, 5)],
        num_samples=len(ds),
        global_batch=10,
        epochs=2,
        drop_last=False,
    )


def test_a_filtered_source_in_a_mixture(pq_root: Path, tmp_path: Path) -> None:
    a = m5.dataset(str(pq_root), columns=["id", "label"], filter=pc.field("label") == 3)
    b = m5.dataset(str(pq_root), columns=["id", "label"], filter=pc.field("label") == 5)
    with m5.Loader(m5.mix({"a": a, "b": b}, weights={"a": 1, "b": 3}), 8, seed=1) as lo:
        got = [b for b in lo]
    labels = {(s, int(x)) for bb in got for s, x in zip(bb["__source__"], bb["label"])}
    assert labels == {("a", 3), ("b", 5)}
    assert sum(bb["__source__"].count("a") for bb in got) == len(got) * 2


def test_parquet_format_without_pyarrow_dataset_semantics_differences(tmp_path: Path) -> None:
    """Nulls: a row whose filter value is null is dropped, as pyarrow's filter drops it."""
    t = pa.table({"x": pa.array([1, None, 3, None, 5], pa.int64()), "y": list("abcde")})
    pq.write_table(t, tmp_path / "n.parquet", row_group_size=2)
    ds = m5.dataset(str(tmp_path / "n.parquet"), filter=pc.field("x") > 1)
    assert [ds[i]["y"] for i in range(len(ds))] == ["c", "e"]
    assert ParquetFormat().select_rows(ds.manifest.shard(0), {}, pc.field("x") > 1).tolist() == [
        2,
        4,
    ]
    assert np.array_equal(ds.manifest.rows[0] if ds.manifest.rows else [], [2, 4])
