"""Rows/s of a partitioned Parquet table in the Glue Data Catalog: m5 Loader vs pyarrow.dataset.

Starts its own SeaweedFS (``weed mini``) and Glue endpoint (``moto_server``) on loopback,
writes a Hive-partitioned Parquet table (text and numeric columns plus an image-sized binary
column) and registers it with its partitions. Then, alternately, median of ``--repeats``:

- m5: ``m5.dataset("glue://bench/events", columns=COLS)`` (Glue listing and footers included)
  through ``m5.Loader`` (``--workers``, batches of ``--batch-size``, natural order, numpy
  output). Every run starts with an empty cache, so footers and column chunks are fetched
  from S3 each time.
- pyarrow: ``pyarrow.dataset`` over the same files with pyarrow's own ``S3FileSystem``, the same
  projection and batch size, ``to_batches()`` with each column turned into what the loader
  delivers (numpy for numbers, a list of ``str`` for text).

    python benchmarks/glue_parquet.py [--repeats 5] [--rows 1600000] [--workers 2] [--verbose]
Numbers are loopback with the servers on the same 2 cores: ratios, not absolute rates.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import environment, median

KEY, SECRET, BUCKET = "bench-key", "bench-secret-key", "m5-glue-bench"
COLS = ["user", "text", "score", "clicks"]


def make_table(n: int, seed: int) -> object:
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    words = np.array(["data", "loader", "glue", "table", "parquet", "train", "batch", "seek"])
    text = [" ".join(words[rng.integers(0, 8, 6)]) for _ in range(n)]
    return pa.table(
        {
            "user": pa.array(rng.integers(0, 1 << 40, n), pa.int64()),
            "text": pa.array(text, pa.string()),
            "score": pa.array(rng.random(n), pa.float64()),
            "clicks": pa.array(rng.integers(0, 100, n), pa.int32()),
            "thumb": pa.array([rng.bytes(256) for _ in range(n)], pa.binary()),
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rows", type=int, default=1_600_000)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    from tests.motoserver import MotoServer
    from tests.seaweed import SeaweedServer

    tmp = Path(tempfile.mkdtemp(prefix="m5bench-glue-"))
    (tmp / "weed").mkdir()
    server = SeaweedServer(tmp / "weed", KEY, SECRET)
    moto = MotoServer(tmp)
    os.environ.update(
        AWS_ACCESS_KEY_ID=KEY,
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_ENDPOINT_URL_S3=server.endpoint,
        AWS_ENDPOINT_URL_GLUE=moto.endpoint,
        AWS_REGION="us-east-1",
    )
    import boto3
    import pyarrow.dataset as pads
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    import m5stream as m5
    from m5stream.storage import s3

    c = s3.client()
    try:
        server.wait_ready(lambda: c.create_bucket(BUCKET))
        print(f"# glue parquet: m5 Loader vs pyarrow.dataset (S3FileSystem); {environment()}")
        glue = boto3.client("glue", region_name="us-east-1")
        glue.create_database(DatabaseInput={"Name": "bench"})
        cols = [
            {"Name": "user", "Type": "bigint"},
            {"Name": "text", "Type": "string"},
            {"Name": "score", "Type": "double"},
            {"Name": "clicks", "Type": "int"},
            {"Name": "thumb", "Type": "binary"},
        ]
        glue.create_table(
            DatabaseName="bench",
            TableInput={
                "Name": "events",
                "StorageDescriptor": {
                    "Columns": cols,
                    "Location": f"s3://{BUCKET}/events/",
                    "SerdeInfo": {
                        "SerializationLibrary": (
                            "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
                        )
                    },
                },
                "PartitionKeys": [{"Name": "day", "Type": "string"}],
                "Parameters": {"classification": "parquet"},
                "TableType": "EXTERNAL_TABLE",
            },
        )
        days, files = 4, 2
        per_file = a.rows // (days * files)
        keys = []
        for d in range(days):
            day = f"2024-03-{d + 1:02d}"
            for f in range(files):
                buf = io.BytesIO()
                pq.write_table(make_table(per_file, d * 10 + f), buf, row_group_size=65536)
                key = f"events/day={day}/part-{f}.parquet"
                c.put(BUCKET, key, buf.getvalue())
                keys.append(f"{BUCKET}/{key}")
            glue.create_partition(
                DatabaseName="bench",
                TableName="events",
                PartitionInput={
                    "Values": [day],
                    "StorageDescriptor": {"Location": f"s3://{BUCKET}/events/day={day}/"},
                },
            )
        total = per_file * days * files
        size = sum(c.head(BUCKET, k.split("/", 1)[1]).size for k in keys)
        print(
            f"table: {days} partitions x {files} files, {total} rows, {size / 1e6:.0f} MB; "
            f"projection {COLS} (the 256-byte 'thumb' column is not read); batch {a.batch_size}"
        )

        def run_m5() -> int:
            os.environ["M5STREAM_CACHE"] = str(tmp / "cache")
            shutil.rmtree(tmp / "cache", ignore_errors=True)
            t0 = time.perf_counter()
            ds = m5.dataset("glue://bench/events", columns=COLS)
            t1 = time.perf_counter()
            rows = 0
            with m5.Loader(
                ds, a.batch_size, shuffle=False, num_workers=a.workers, output="numpy"
            ) as lo:
                for b in lo:
                    if not rows:
                        t2 = time.perf_counter()
                    rows += len(b["user"])
                t3 = time.perf_counter()
                if a.verbose:
                    secs = {k: round(v, 3) for k, v in lo.stats["seconds"].items()}
                    print(
                        f"  m5: resolve {t1 - t0:.3f}s, first batch {t2 - t1:.3f}s, "
                        f"rest {t3 - t2:.3f}s; stages {secs}; s3 {lo.stats['s3']}"
                    )
            return rows

        fs = pafs.S3FileSystem(
            access_key=KEY,
            secret_key=SECRET,
            endpoint_override=server.endpoint,
            scheme="http",
            region="us-east-1",
        )

        def run_pyarrow() -> int:
            ds = pads.dataset(keys, format="parquet", filesystem=fs)
            rows = 0
            for rb in ds.to_batches(columns=COLS, batch_size=a.batch_size):
                out = {}
                for name, col in zip(rb.schema.names, rb.columns):
                    out[name] = col.to_pylist() if name == "text" else col.to_numpy()
                rows += len(out["user"])
            return rows

        times: dict[str, list[float]] = {"m5": [], "pyarrow": []}
        cpu: dict[str, list[float]] = {"m5": [], "pyarrow": []}
        for _ in range(a.repeats):
            for name, fn in (("m5", run_m5), ("pyarrow", run_pyarrow)):
                t0, c0 = time.perf_counter(), time.process_time()
                got = fn()
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
                assert got == total, (name, got, total)
        m5_rate = total / median(times["m5"])
        pa_rate = total / median(times["pyarrow"])
        # client CPU (this process, every thread; the servers are not counted)
        print(f"m5 Loader:       {m5_rate:>12,.0f} rows/s  {median(cpu['m5']):.2f} CPU s")
        print(f"pyarrow.dataset: {pa_rate:>12,.0f} rows/s  {median(cpu['pyarrow']):.2f} CPU s")
        print(f"ratio m5 / pyarrow: {m5_rate / pa_rate:.2f}  (target >= 1.0)")
    finally:
        moto.stop()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
