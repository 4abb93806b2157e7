"""Glue Data Catalog tables (moto_server on loopback) over data on SeaweedFS: Parquet with an
image column and text columns partitioned Hive-style, a JSON table and a CSV table."""

from __future__ import annotations

import datetime
import io
import json
from typing import Any

import numpy as np
import pytest

import m5stream as m5
from m5stream.storage import s3
from tests.integration.conftest import BUCKET
from tests.resume_harness import check_resume

DB = "m5db"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
DAYS = ["2024-01-01", "2024-01-02"]
PARTS = [1, 2]
FILES, ROWS, GROUP = 2, 12, 4


def glue() -> Any:
    import boto3

    return boto3.client("glue", region_name="us-east-1")


def jpeg(i: int) -> bytes:
    from tests.images import encode, photo

    img = photo("astronaut")
    x, y = (i * 37) % 400, (i * 53) % 400
    return encode(img.crop((x, y, x + 24, y + 24)), quality=80)


def photo_row(day: str, part: int, f: int, r: int) -> dict[str, Any]:
    i = (DAYS.index(day) * 100 + part * 10 + f) * 100 + r
    return {"id": i, "caption": f"photo {i} on {day}", "label": i % 7, "image": jpeg(i)}


def put_parquet(key: str, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "id": pa.array([r["id"] for r in rows], pa.int64()),
            "caption": pa.array([r["caption"] for r in rows], pa.string()),
            "label": pa.array([r["label"] for r in rows], pa.int32()),
            "image": pa.array([r["image"] for r in rows], pa.binary()),
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=GROUP)
    s3.client().put(BUCKET, key, buf.getvalue())


def create_table(name: str, location: str | None, **extra: Any) -> None:
    sd: dict[str, Any] = {
        "Columns": extra.pop("columns"),
        "SerdeInfo": extra.pop("serde"),
    }
    if location is not None:
        sd["Location"] = location
    ti = {"Name": name, "StorageDescriptor": sd, "TableType": "EXTERNAL_TABLE", **extra}
    glue().create_table(DatabaseName=DB, TableInput=ti)


PHOTO_COLUMNS = [
    {"Name": "id", "Type": "bigint"},
    {"Name": "caption", "Type": "string"},
    {"Name": "label", "Type": "int"},
    {"Name": "image", "Type": "binary"},
]


@pytest.fixture(scope="module")
def catalog(glue_endpoint: str) -> dict[str, dict[str, Any]]:
    """Create the database and tables once; returns ``{table: {object key: rows}}``."""
    g = glue()
    g.create_database(DatabaseInput={"Name": DB})
    c = s3.client()
    expected: dict[str, dict[str, Any]] = {"photos": {}, "notes": {}, "scores": {}}

    # photos: Parquet, partitioned by dt (date) and part (int); a _SUCCESS marker per partition
    create_table(
        "photos",
        f"s3://{BUCKET}/glue/photos/",
        columns=PHOTO_COLUMNS,
        serde={"SerializationLibrary": PARQUET_SERDE},
        PartitionKeys=[{"Name": "dt", "Type": "date"}, {"Name": "part", "Type": "int"}],
        Parameters={"classification": "parquet"},
    )
    for day in DAYS:
        for part in PARTS:
            loc = f"glue/photos/dt={day}/part={part}/"
            for f in range(FILES):
                rows = [photo_row(day, part, f, r) for r in range(ROWS)]
                put_parquet(f"{loc}file-{f}.parquet", rows)
                expected["photos"][f"dt={day}/part={part}/file-{f}.parquet"] = rows
            c.put(BUCKET, f"{loc}_SUCCESS", b"")
            g.create_partition(
                DatabaseName=DB,
                TableName="photos",
                PartitionInput={
                    "Values": [day, str(part)],
                    "StorageDescriptor": {"Location": f"s3://{BUCKET}/{loc}"},
                },
            )

    # notes: JSON lines, unpartitioned, files without a suffix
    create_table(
        "notes",
        f"s3://{BUCKET}/glue/notes",
        columns=[{"Name": "id", "Type": "int"}, {"Name": "text", "Type": "string"}],
        serde={"SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe"},
        Parameters={"classification": "json"},
    )
    for f in range(2):
        rows = [{"id": f * 10 + r, "text": f"note {f}-{r} ✓", "extra": r} for r in range(5)]
        c.put(
            BUCKET, f"glue/notes/part-{f:05d}", "".join(json.dumps(r) + "\n" for r in rows).encode()
        )
        expected["notes"][f"part-{f:05d}"] = rows

    # scores: CSV (OpenCSVSerde, '|' separated, one header line), partitioned by lang (string)
    create_table(
        "scores",
        f"s3://{BUCKET}/glue/scores/",
        columns=[
            {"Name": "name", "Type": "string"},
            {"Name": "score", "Type": "double"},
            {"Name": "n", "Type": "int"},
        ],
        serde={
            "SerializationLibrary": "org.apache.hadoop.hive.serde2.OpenCSVSerde",
            "Parameters": {"separatorChar": "|", "quoteChar": '"'},
        },
        PartitionKeys=[{"Name": "lang", "Type": "string"}],
        Parameters={"classification": "csv", "skip.header.line.count": "1"},
    )
    for lang, rows in {
        "en": [("alpha", 1.5, 1), ('quoted "|" name', -2.25, 2), ("two\nlines", 0.0, 3)],
        "ja": [("ベータ", 10.0, 4)],
    }.items():
        text = "name|score|n\n" + "".join(
            '"' + a.replace('"', '""') + f'"|{b}|{n}\n' for a, b, n in rows
        )
        c.put(BUCKET, f"glue/scores/lang={lang}/data.csv", text.encode())
        g.create_partition(
            DatabaseName=DB,
            TableName="scores",
            PartitionInput={"Values": [lang]},  # no location: Hive layout under the table's
        )
        expected["scores"][f"lang={lang}/data.csv"] = rows
    return expected


def test_partitioned_parquet_table_every_row_exact(catalog: dict[str, Any]) -> None:
    ds = m5.dataset(f"glue://{DB}/photos")
    m = ds.manifest
    assert m.format == "parquet" and m.root == f"s3://{BUCKET}/glue/photos"
    assert m.keys == sorted(catalog["photos"])  # partitions in value order, no _SUCCESS
    assert len(ds) == len(DAYS) * len(PARTS) * FILES * ROWS
    assert all(len(s) >= 32 for s in m.stamps)  # every object's ETag pinned
    assert m.options["glue"]["version_id"] == "1" and m.options["glue"]["database"] == DB
    for i in range(len(ds)):
        got = ds[i]
        key, row = got["__key__"].split("#")
        want = catalog["photos"][key][int(row)]
        day, part = key.split("/")[0][3:], int(key.split("/")[1][5:])
        assert got["dt"] == datetime.date.fromisoformat(day) and got["part"] == part
        assert int(got["id"]) == want["id"] and got["caption"] == want["caption"]
        assert int(got["label"]) == want["label"] and got["image"] == want["image"]
        assert got["__index__"] == i


def test_where_reads_only_the_matching_partitions(catalog: dict[str, Any]) -> None:
    cols = ["id", "caption", "part"]
    full = m5.dataset(f"glue://{DB}/photos", columns=cols)
    some = m5.dataset(f"glue://{DB}/photos", columns=cols, where="part = 2 AND dt > '2024-01-01'")
    assert some.manifest.keys == [f"dt=2024-01-02/part=2/file-{f}.parquet" for f in range(FILES)]
    counts = {}
    for name, ds in (("full", full), ("some", some)):
        # one batch per row group: every row group is read exactly once, by range
        with m5.Loader(ds, GROUP, shuffle=False, num_workers=2, output="numpy") as lo:
            rows = []
            for b in lo:
                assert set(b) == {"id", "caption", "part", "__key__", "__index__"}
                rows.extend(zip(b["id"].tolist(), b["caption"], b["part"].tolist()))
            counts[name] = lo.stats["s3"]
        want = [
            (r["id"], r["caption"], int(k.split("/")[1][5:]))
            for k in ds.manifest.keys
            for r in catalog["photos"][k]
        ]
        assert rows == want
    groups = ROWS // GROUP
    # footers were read once when the manifest was made; then one ranged GET per row group
    assert counts["full"]["GetObject"] == len(DAYS) * len(PARTS) * FILES * groups
    assert counts["some"]["GetObject"] == FILES * groups
    # projection: the image column chunks (most of each file) were never fetched
    image_bytes = sum(len(r["image"]) for rows in catalog["photos"].values() for r in rows)
    assert counts["full"]["bytes"] < image_bytes / 2


def test_json_and_csv_tables(catalog: dict[str, Any]) -> None:
    notes = m5.dataset(f"glue://{DB}/notes", columns=["id", "text"])
    assert notes.manifest.format == "jsonl" and len(notes) == 10
    got = [(s["__key__"], s["id"], s["text"], set(s) - {"__key__", "__index__"}) for s in notes]
    want = [
        (f"{k}:{r + 1}", row["id"], row["text"], {"id", "text"})
        for k, rows in sorted(catalog["notes"].items())
        for r, row in enumerate(rows)
    ]
    assert got == want

    scores = m5.dataset(f"glue://{DB}/scores")
    assert scores.manifest.format == "csv" and len(scores) == 4
    rows = [(s["lang"], s["name"], float(s["score"]), int(s["n"])) for s in scores]
    assert rows == [
        ("en", "alpha", 1.5, 1),
        ("en", 'quoted "|" name', -2.25, 2),
        ("en", "two\nlines", 0.0, 3),
        ("ja", "ベータ", 10.0, 4),
    ]
    assert isinstance(scores[0]["score"], np.floating) and isinstance(scores[0]["n"], np.integer)
    ja = m5.dataset(f"glue://{DB}/scores", where="lang = 'ja'", columns=["name"])
    assert [dict(s) for s in ja] == [
        {"name": "ベータ", "__key__": "lang=ja/data.csv#0", "__index__": 0}
    ]


def test_exact_resume_over_a_glue_table(catalog: dict[str, Any]) -> None:
    from tests.e2e.test_resume import LoaderNode

    ds = m5.dataset(f"glue://{DB}/photos", columns=["id", "dt"])
    check_resume(
        lambda nw, r, ws: LoaderNode(ds, nw, r, ws, shuffle=True, seed=9, drop_last=False),
        configs=[(0, 1), (2, 2)],
        num_samples=len(ds),
        global_batch=10,
        epochs=2,
        drop_last=False,
        num_cuts=8,
    )


def test_changed_snapshot_is_a_clear_error(catalog: dict[str, Any]) -> None:
    g = glue()
    create_table(
        "growing",
        f"s3://{BUCKET}/glue/growing/",
        columns=PHOTO_COLUMNS,
        serde={"SerializationLibrary": PARQUET_SERDE},
        PartitionKeys=[{"Name": "dt", "Type": "string"}],
        Parameters={"classification": "parquet"},
    )

    def add_partition(day: str) -> None:
        put_parquet(
            f"glue/growing/dt={day}/a.parquet", [photo_row(DAYS[0], 1, 0, r) for r in range(6)]
        )
        g.create_partition(DatabaseName=DB, TableName="growing", PartitionInput={"Values": [day]})

    add_partition("d1")
    ds = m5.dataset(f"glue://{DB}/growing", columns=["id"])
    with m5.Loader(ds, 4, shuffle=True, seed=3, output="numpy") as lo:
        next(iter(lo))
        state = json.loads(json.dumps(lo.state_dict()))
    assert state["snapshot"]["table_version"] == "1"

    # the table changes: a new partition, and its definition is updated (new version)
    add_partition("d2")
    table = g.get_table(DatabaseName=DB, Name="growing")["Table"]
    g.update_table(
        DatabaseName=DB,
        TableInput={
            k: table[k]
            for k in ("Name", "StorageDescriptor", "PartitionKeys", "TableType", "Parameters")
        },
    )
    again = m5.dataset(f"glue://{DB}/growing", columns=["id"])
    with pytest.raises(m5.StateMismatch) as e:
        m5.Loader(again, 4, shuffle=True, seed=3, output="numpy").load_state_dict(state)
    msg = str(e.value)
    assert "Glue table version '1' -> '2'" in msg and "files 1 -> 2" in msg
    assert "samples 6 -> 12" in msg and 'on_change="new_epoch"' in msg
    lo2 = m5.Loader(again, 4, shuffle=True, seed=3, output="numpy")
    lo2.load_state_dict(state, on_change="new_epoch")
    assert (lo2.epoch, lo2.step) == (1, 0)
    assert sorted(i for b in lo2 for i in b["__index__"].tolist()) == list(range(12))

    # a file rewritten in place (same table version, same counts): the ETag changes
    put_parquet("glue/growing/dt=d1/a.parquet", [photo_row(DAYS[1], 2, 1, r) for r in range(6)])
    third = m5.dataset(f"glue://{DB}/growing", columns=["id"])
    with pytest.raises(m5.StateMismatch, match=r"\(bytes \d+ -> \d+; fingerprint") as e:
        m5.Loader(third, 4, shuffle=True, seed=3, output="numpy").load_state_dict(lo2.state_dict())
    assert "version" not in str(e.value) and "files" not in str(e.value)
    # ... and a reader holding the old manifest never mixes in the new bytes: a row group this
    # process decoded for the pinned version is served as it was, and one it must read again
    # is refused
    from m5stream.formats import parquet

    assert int(again[0]["id"]) == photo_row(DAYS[0], 1, 0, 0)["id"]  # the pinned version's row
    parquet._BLOCKS = parquet._BlockCache(parquet._BLOCKS.limit)
    again.close()
    with pytest.raises(m5.StateMismatch, match="changed since the manifest"):
        again[0]


def test_clear_errors(catalog: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(m5.NotFound, match="Database nodb not found") as e:
        m5.dataset("glue://nodb/photos")
    assert isinstance(e.value, FileNotFoundError) and e.value.uri == "glue://nodb/photos"
    with pytest.raises(m5.NotFound, match="Table nope not found"):
        m5.dataset(f"glue://{DB}/nope")
    with pytest.raises(m5.ConfigError, match=r"malformed where expression 'part >>> 1'"):
        m5.dataset(f"glue://{DB}/photos", where="part >>> 1")
    with pytest.raises(m5.ConfigError, match=r"column\(s\) \['nope'\] not in table"):
        m5.dataset(f"glue://{DB}/photos", columns=["id", "nope"])

    create_table(
        "nowhere", None, columns=PHOTO_COLUMNS, serde={"SerializationLibrary": PARQUET_SERDE}
    )
    with pytest.raises(m5.ConfigError, match=f"table {DB}.nowhere has no location"):
        m5.dataset(f"glue://{DB}/nowhere")
    create_table(
        "ice",
        f"s3://{BUCKET}/glue/ice/",
        columns=PHOTO_COLUMNS,
        serde={"SerializationLibrary": PARQUET_SERDE},
        Parameters={"table_type": "ICEBERG", "metadata_location": "s3://x/y.json"},
    )
    with pytest.raises(m5.Unsupported, match="Iceberg tables are not supported yet") as u:
        m5.dataset(f"glue://{DB}/ice")
    assert isinstance(u.value, NotImplementedError)
    create_table(
        "avro",
        f"s3://{BUCKET}/glue/avro/",
        columns=PHOTO_COLUMNS,
        serde={"SerializationLibrary": "org.apache.hadoop.hive.serde2.avro.AvroSerDe"},
        Parameters={"classification": "avro"},
    )
    with pytest.raises(m5.Unsupported, match="table format 'avro' is not supported yet"):
        m5.dataset(f"glue://{DB}/avro")

    # a partition registered in the catalog whose files are gone
    glue().create_partition(
        DatabaseName=DB,
        TableName="photos",
        PartitionInput={
            "Values": ["2024-02-01", "1"],
            "StorageDescriptor": {"Location": f"s3://{BUCKET}/glue/photos/dt=2024-02-01/part=1/"},
        },
    )
    try:
        with pytest.raises(m5.NotFound) as nf:
            m5.dataset(f"glue://{DB}/photos")
        assert (
            "partition (dt='2024-02-01', part='1') has no data files at "
            f"s3://{BUCKET}/glue/photos/dt=2024-02-01/part=1/" in str(nf.value)
        )
        assert len(m5.dataset(f"glue://{DB}/photos", where="dt < '2024-02-01'")) == 96
    finally:
        glue().delete_partition(
            DatabaseName=DB, TableName="photos", PartitionValues=["2024-02-01", "1"]
        )

    # wrong S3 credentials: the catalog answers, the data store refuses
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    cfg = m5.S3Config(retries=0, timeout=59.0)  # a client of its own, made with these
    try:
        with pytest.raises(m5.PermissionDenied) as pd:
            m5.dataset(f"glue://{DB}/notes", s3=cfg)
        assert "not-the-secret" not in str(pd.value) and BUCKET in str(pd.value)
    finally:
        s3._CLIENTS.pop(cfg.resolved(), None)


def test_row_filter_on_a_glue_parquet_table_reads_only_its_column(
    catalog: dict[str, Any],
) -> None:
    """The filter's column chunks are the only bytes read while selecting; the rows are
    exactly those where it holds; resuming over the selection is exact."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from m5stream.storage.iostats import io_counters, io_delta

    expr = pc.field("label") == 3
    cols = ["id", "caption", "image"]
    m5.dataset(f"glue://{DB}/photos", columns=cols)  # footers and listing cached
    before = io_counters()
    m5.dataset(f"glue://{DB}/photos", columns=cols)
    listing = io_delta(before).get("bytes", 0)
    before = io_counters()
    ds = m5.dataset(f"glue://{DB}/photos", columns=cols, filter=expr)
    selecting = io_delta(before).get("bytes", 0) - listing
    label_bytes = 0
    for key in catalog["photos"]:
        body = s3.client().get(BUCKET, f"glue/photos/{key}")
        md = pq.ParquetFile(io.BytesIO(body)).metadata
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            label_bytes += sum(
                rg.column(i).total_compressed_size
                for i in range(rg.num_columns)
                if rg.column(i).path_in_schema == "label"
            )
    assert selecting == label_bytes  # exactly the label chunks: no id, caption or image byte
    want = [(k, r) for k in sorted(catalog["photos"]) for r in catalog["photos"][k]]
    want = [(k, r) for k, r in want if r["label"] == 3]
    assert len(ds) == len(want) > 0
    for i, (k, r) in enumerate(want):
        got = ds[i]
        assert got["__key__"].split("#")[0] == k
        assert int(got["id"]) == r["id"] and got["image"] == r["image"]
    again = m5.dataset(f"glue://{DB}/photos", columns=cols, filter=expr)
    assert again.fingerprint == ds.fingerprint != m5.dataset(f"glue://{DB}/photos").fingerprint


def test_row_filter_on_glue_json_and_csv_tables(catalog: dict[str, Any]) -> None:
    import pyarrow.compute as pc

    notes = m5.dataset(f"glue://{DB}/notes", columns=["id", "text"], filter=pc.field("id") >= 3)
    assert [s["id"] for s in notes] == [3, 4, 10, 11, 12, 13, 14]
    scores = m5.dataset(f"glue://{DB}/scores", filter=pc.field("score") > 0)
    assert [(s["lang"], s["name"]) for s in scores] == [("en", "alpha"), ("ja", "ベータ")]


def test_mixture_of_glue_text_s3_tar_images_and_local_jsonl(
    catalog: dict[str, Any], tmp_path: Any
) -> None:
    """A Glue Parquet table (text), S3 tar shards (images, with their own RandomResizedCrop)
    and local JSONL, in one Loader with worker processes: exact bytes per sample, per-source
    counts, and the clear errors."""
    from pathlib import Path

    from m5stream import transforms as T
    from m5stream.transforms import apply_transform
    from tests.helpers import make_jsonl_dataset
    from tests.images import make_image_tar

    local = Path(str(tmp_path))
    make_image_tar(local / "img", shards=2, per_shard=12)
    for p in sorted((local / "img").iterdir()):
        s3.client().put(BUCKET, f"mix/img/{p.name}", path=str(p))
    make_jsonl_dataset(local / "js", files=2, per_file=10)
    text = m5.dataset(f"glue://{DB}/photos", columns=["id", "caption"])
    imgs = m5.dataset(f"s3://{BUCKET}/mix/img/shard-{{0000..0001}}.tar")
    notes = m5.dataset(str(local / "js" / "*.jsonl"))
    tf_img = T.Compose([T.DecodeImage("jpg"), T.RandomResizedCrop(32), T.ToCHW()])
    weights = {"en": 0.5, "img": 0.3, "notes": 0.2}
    sources = {"en": text, "img": m5.source(imgs, transform=tf_img), "notes": notes}
    mix = m5.mix(sources, weights=weights, granularity="batch")
    with m5.Loader(mix, 8, shuffle=True, seed=17, num_workers=2, copy=True) as lo:
        batches = [b for _ in range(2) for b in lo]
        stats = lo.stats["sources"]
        # the read-ahead covers the S3 tar source: both shards are made local ahead of the
        # workers in each epoch (the second epoch finds them in the shard cache)
        prefetched = lo.stats["prefetched_shards"]
    assert prefetched == 4
    assert len(batches) == 2 * lo.steps_per_epoch == 2 * -(-(96 + 24 + 20) // 8)
    counts = dict.fromkeys(weights, 0)
    epochs = [0] * lo.steps_per_epoch + [1] * lo.steps_per_epoch
    for b, epoch in zip(batches, epochs):
        (name,) = set(b["__source__"])
        counts[name] += len(b["__index__"])
        for j, i in enumerate(b["__index__"].tolist()):
            if name == "en":
                assert b["caption"][j] == text[i]["caption"]
                assert int(b["id"][j]) == int(text[i]["id"])
            elif name == "img":
                want = apply_transform(tf_img, imgs[i], seed=17, epoch=epoch)
                assert np.array_equal(np.asarray(b["jpg"][j]), want["jpg"])
                assert b["__key__"][j] == imgs[i]["__key__"]
            else:
                assert b["text"][j] == notes[i]["text"]
    steps = len(batches)
    for name, w in weights.items():  # batches shared out by weight, within 2 batches
        assert abs(counts[name] / 8 - w * steps) < 2, counts
        assert stats[name]["samples"] == counts[name]
    with pytest.raises(m5.ConfigError, match=r"'en' also has \['caption', 'id'\]"):
        m5.Loader(m5.mix(sources, weights=weights), 8)
    with pytest.raises(m5.ConfigError, match=r"unknown mixture source\(s\) \['ja'\]"):
        m5.mix(sources, weights={**weights, "ja": 0.1})
    with pytest.raises(m5.ConfigError, match="weight -1 must be finite and >= 0"):
        m5.mix(sources, weights={**weights, "en": -1})
    with pytest.raises(m5.ConfigError, match="weights are all zero"):
        m5.mix(sources, weights=dict.fromkeys(weights, 0))
