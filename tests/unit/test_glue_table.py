"""Pure parts of the Glue layer: table -> format and options, partition value typing."""

from __future__ import annotations

import datetime
import decimal
from typing import Any

import pytest

import m5stream as m5
from m5stream.catalog.glue import GlueTable, partition_value, table_format


def table(lib: str, params: dict[str, str] | None = None, **kw: Any) -> dict[str, Any]:
    sd = {
        "Columns": [{"Name": "a", "Type": "int"}, {"Name": "b", "Type": "string"}],
        "SerdeInfo": {"SerializationLibrary": lib, "Parameters": kw.pop("serde_params", {})},
        "InputFormat": kw.pop("input_format", ""),
    }
    return {"StorageDescriptor": sd, "Parameters": params or {}, **kw}


def test_formats_from_classification_serde_and_input_format() -> None:
    parquet = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    assert table_format(table(parquet), "u") == ("parquet", {})
    assert table_format(table("x", {"classification": "PARQUET"}), "u")[0] == "parquet"
    mapred = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    assert table_format(table("", input_format=mapred), "u")[0] == "parquet"
    assert table_format(table("org.openx.data.jsonserde.JsonSerDe"), "u") == ("jsonl", {})
    assert table_format(table("org.apache.hive.hcatalog.data.JsonSerDe"), "u")[0] == "jsonl"

    lazy = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
    fmt, opts = table_format(
        table(lazy, {"skip.header.line.count": "2"}, serde_params={"field.delim": "\t"}), "u"
    )
    assert fmt == "csv" and opts == {
        "column_names": ["a", "b"],
        "column_types": {"a": "int", "b": "string"},
        "header": 2,
        "delimiter": "\t",
        "quote_char": None,
        "escape_char": None,
    }
    opencsv = "org.apache.hadoop.hive.serde2.OpenCSVSerde"
    _, opts = table_format(table(opencsv, serde_params={"separatorChar": ";"}), "u")
    assert (opts["delimiter"], opts["quote_char"], opts["escape_char"], opts["header"]) == (
        ";",
        '"',
        "\\",
        0,
    )


@pytest.mark.parametrize(
    ("params", "kw", "what"),
    [
        ({"table_type": "ICEBERG"}, {}, "Iceberg tables"),
        ({"table_type": "DELTA"}, {}, "Delta tables"),
        ({"spark.sql.sources.provider": "delta"}, {}, "Delta tables"),
        ({"table_type": "HUDI"}, {}, "Hudi tables"),
        ({}, {"TableType": "VIRTUAL_VIEW"}, "a view"),
        ({"classification": "avro"}, {}, "table format 'avro'"),
        ({"classification": "orc"}, {}, "table format 'orc'"),
    ],
)
def test_unsupported_tables_are_named(
    params: dict[str, str], kw: dict[str, Any], what: str
) -> None:
    with pytest.raises(m5.Unsupported, match=what) as e:
        table_format(table("org.apache.hadoop.hive.ql.io.orc.OrcSerde", params, **kw), "glue://d/t")
    assert e.value.uri == "glue://d/t" and isinstance(e.value, NotImplementedError)


def test_partition_values_are_typed_by_their_key() -> None:
    assert partition_value("42", "int") == 42 and partition_value("-7", "bigint") == -7
    assert partition_value("2.5", "double") == 2.5
    assert partition_value("true", "boolean") is True
    assert partition_value("false", "boolean") is False
    assert partition_value("2024-02-29", "date") == datetime.date(2024, 2, 29)
    assert partition_value("1.10", "decimal(5,2)") == decimal.Decimal("1.10")
    assert partition_value("en", "string") == "en" and partition_value("x", "varchar(3)") == "x"
    assert partition_value("__HIVE_DEFAULT_PARTITION__", "int") is None


def test_glue_uris() -> None:
    assert GlueTable.parse("glue://db/t") == GlueTable("db", "t")
    assert GlueTable.parse("glue://db/t?catalog_id=123&region=eu-west-1") == GlueTable(
        "db", "t", "123", "eu-west-1"
    )
    for bad in ("glue://db", "glue://db/t/x", "glue:///t"):
        with pytest.raises(m5.ConfigError, match="glue://DATABASE/TABLE"):
            GlueTable.parse(bad)
    with pytest.raises(m5.ConfigError, match="format and options come from the catalog"):
        m5.dataset("glue://db/t", format="csv")


def test_glue_client_is_kept_per_process_and_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("boto3")
    from m5stream.catalog import glue

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "id-1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-1")
    t = glue.GlueTable("db", "tbl", region="us-east-1", endpoint="http://127.0.0.1:9")
    first = glue._glue_client(t)
    assert glue._glue_client(t) is first  # the service model is loaded once
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-2")  # new credentials: a new client
    second = glue._glue_client(t)
    assert second is not first
    assert second._request_signer._credentials.secret_key == "secret-2"
    other = glue.GlueTable("db", "tbl", region="eu-west-1", endpoint="http://127.0.0.1:9")
    assert glue._glue_client(other).meta.region_name == "eu-west-1"
    assert all("secret" not in repr(k) for k in glue._clients)
