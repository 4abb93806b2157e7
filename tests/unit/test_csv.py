"""The CSV format on local files: headers, delimiters, quoting, typed columns, projection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import m5stream as m5


def test_header_names_quoting_and_types(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text('name,score,n\n"x, y",1.5,1\n"multi\nline",2,2\n')
    (tmp_path / "b.csv").write_text("name,score,n\nz,-3,3\n")
    ds = m5.dataset(str(tmp_path))
    assert ds.manifest.format == "csv" and ds.manifest.counts.tolist() == [2, 1]
    got = [(s["__key__"], s["name"], float(s["score"]), int(s["n"])) for s in ds]
    assert got == [
        ("a.csv#0", "x, y", 1.5, 1),
        ("a.csv#1", "multi\nline", 2.0, 2),
        ("b.csv#0", "z", -3.0, 3),
    ]
    assert isinstance(ds[0]["n"], np.integer)
    proj = m5.dataset(str(tmp_path), columns=["n"])
    assert [dict(s) for s in proj][2] == {"n": 3, "__key__": "b.csv#0", "__index__": 2}


def test_given_names_types_delimiter_and_skipped_header(tmp_path: Path) -> None:
    (tmp_path / "t.tsv").write_text("junk header\n7\t2024-01-02\tq\n8\t2024-01-03\tr\n")
    opts = {
        "delimiter": "\t",
        "header": 1,
        "column_names": ["id", "day", "tag"],
        "column_types": {"id": "bigint", "day": "date", "tag": "varchar(4)"},
    }
    ds = m5.dataset(str(tmp_path / "t.tsv"), format="csv", options=opts)
    assert len(ds) == 2
    import datetime

    assert (int(ds[1]["id"]), ds[1]["day"], ds[1]["tag"]) == (8, datetime.date(2024, 1, 3), "r")


def test_bad_options_and_malformed_files(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b\n1,2\n3\n")
    with pytest.raises(m5.CorruptData, match="malformed CSV") as e:
        m5.dataset(str(tmp_path / "x.csv"))
    assert e.value.uri.endswith("x.csv")
    with pytest.raises(m5.ConfigError, match="one character"):
        m5.dataset(str(tmp_path / "x.csv"), options={"delimiter": ";;"})
    with pytest.raises(m5.ConfigError, match="unknown CSV option"):
        m5.dataset(str(tmp_path / "x.csv"), options={"sep": ";"})
    with pytest.raises(m5.ConfigError, match="column type 'map<string,int>'"):
        m5.dataset(
            str(tmp_path / "x.csv"),
            options={"column_names": ["a", "b"], "column_types": {"a": "map<string,int>"}},
        )
