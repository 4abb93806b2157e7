"""``m5stream bench`` and ``inspect`` on S3 (SeaweedFS) and Glue (moto_server) sources."""

from __future__ import annotations

import json
from pathlib import Path

from m5stream.storage import s3
from tests.e2e.test_cli import check_schema, run_cli
from tests.helpers import make_tar_dataset, sample_bytes
from tests.integration.conftest import BUCKET


def test_bench_and_inspect_over_s3(s3_endpoint: str, tmp_path: Path) -> None:
    c = s3.client()
    local = tmp_path / "tars"
    make_tar_dataset(local, shards=3, per_shard=16)
    for p in sorted(local.iterdir()):
        c.put(BUCKET, f"cli-tars/{p.name}", path=str(p))
    for i in range(40):
        c.put(BUCKET, f"cli-raw/{i:03d}.bin", sample_bytes(i))

    out = tmp_path / "tar.json"
    r = run_cli(
        "bench",
        f"s3://{BUCKET}/cli-tars/",
        "--batch-size",
        "4",
        "--batches",
        "5",
        "--compare",
        "torch,webdataset",
        "--json",
        str(out),
        "--quiet",
        cache=tmp_path / "c1",
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    check_schema(res)
    assert res["source"]["shards"] == 3 and res["source"]["samples"] == 48
    assert res["compare"]["torch"]["status"] == "ok" and res["compare"]["torch"]["ratio"] > 0
    assert res["compare"]["webdataset"]["status"] == "skipped"

    out = tmp_path / "raw.json"
    r = run_cli(
        "bench",
        f"s3://{BUCKET}/cli-raw/",
        "--batch-size",
        "4",
        "--batches",
        "4",
        "--compare",
        "s3torchconnector",
        "--json",
        str(out),
        "--quiet",
        cache=tmp_path / "c2",
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["source"]["format"] == "raw" and res["source"]["samples"] == 40
    # objects are fetched per batch (tar shards were already fetched to index them): the
    # first batch and the 4 timed ones, at least, each object its own GET
    assert res["s3"]["GetObject"] >= 20 and res["s3"]["bytes"] >= 20 * 100
    peer = res["compare"]["s3torchconnector"]
    assert peer["status"] == "ok", peer
    assert peer["samples"] == 16 and peer["ratio"] > 0

    r = run_cli("inspect", f"s3://{BUCKET}/cli-tars/", "--json", cache=tmp_path / "c3")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert (info["shards"], info["samples"], info["shards_failed"]) == (3, 48, [])
    assert info["root"] == f"s3://{BUCKET}/cli-tars"

    r = run_cli("bench", f"s3://{BUCKET}/no-such-prefix/", cache=tmp_path / "c4")
    assert r.returncode == 2 and "no object under the prefix" in r.stderr


def test_inspect_a_glue_table(glue_endpoint: str, tmp_path: Path) -> None:
    import boto3

    c = s3.client()
    for lang in ("en", "fr"):
        c.put(BUCKET, f"cli-glue/lang={lang}/part-0.json", b'{"id": 1, "t": "x"}\n{"id": 2}\n')
    g = boto3.client("glue", region_name="us-east-1")
    g.create_database(DatabaseInput={"Name": "clidb"})
    g.create_table(
        DatabaseName="clidb",
        TableInput={
            "Name": "notes",
            "StorageDescriptor": {
                "Columns": [{"Name": "id", "Type": "int"}, {"Name": "t", "Type": "string"}],
                "Location": f"s3://{BUCKET}/cli-glue/",
                "SerdeInfo": {"SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe"},
            },
            "PartitionKeys": [{"Name": "lang", "Type": "string"}],
            "TableType": "EXTERNAL_TABLE",
        },
    )
    for lang in ("en", "fr"):
        g.create_partition(
            DatabaseName="clidb", TableName="notes", PartitionInput={"Values": [lang]}
        )
    r = run_cli("inspect", "glue://clidb/notes", "--json", cache=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["format"] == "jsonl" and info["samples"] == 4 and info["partitions"] == 2
    assert info["partition_keys"] == ["lang"] and info["table_version"] == "1"
    assert info["fields"] == {"id": "int", "t": "str[1]", "lang": "str[2]"}
    missing = run_cli("inspect", "glue://clidb/nope", cache=tmp_path)
    assert missing.returncode == 2 and "Table nope not found" in missing.stderr
