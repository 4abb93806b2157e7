"""S3 throughput against SeaweedFS on loopback: m5 (AWS CRT) vs boto3 and s3torchconnector.

Starts its own SeaweedFS (``weed mini``, free ports, loopback), uploads the data, and runs each
side alternately, median of ``--repeats``:

(a) 8 tar shards of ~30 MiB (300 samples of 100 KiB each), all sides on the same objects:
    the m5 ``Loader`` (2 threads, batches of 64, natural order, no transform: the block path,
    which downloads each shard whole into memory ahead of its batches and slices the batches
    out of it) and, for reference, the Loader's worker path (``columnar_reads="workers"``:
    shards downloaded into the disk cache ahead of 2 worker processes) and a bare m5 fetch of
    the shards into the disk cache (CRT ``recv_filepath``, 4 at a time), vs boto3
    ``get_object().read()`` with 8 threads. MB/s, and client CPU s/GB (this process, plus the
    loader's worker processes where it has them; not the SeaweedFS server).
(b) 64 KiB objects: m5 GETs (32 Python threads over the blocking client; all at once through
    ``get_many``; the ``Loader`` over them as raw objects, 2 workers, batches of 32, listing
    done before) vs boto3, 8 threads.
(c) ~100 KB raw objects through a loader, same worker count (2): m5 ``Loader`` vs
    ``s3torchconnector.S3IterableDataset`` and a boto3 ``get_object`` Dataset in a torch
    ``DataLoader``.
(d) time to the first batch of a 10,000-object prefix, the same three.

    python benchmarks/s3_throughput.py [--repeats 3]
Numbers are loopback with the server on the same 2 cores: ratios, not absolute rates.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch.utils.data
from _common import environment, median, seaweed

KEY, SECRET, BUCKET = "bench-key", "bench-secret-key", "m5-bench"
MB = 1e6


def cpu() -> float:
    return time.process_time()


def proc_cpu(pids: list[int]) -> float:
    """CPU seconds the processes ``pids`` (still running) have used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def boto() -> object:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"],
        region_name="us-east-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=Config(max_pool_connections=32, s3={"addressing_style": "path"}),
    )


def upload(c: object, items: list[tuple[str, bytes]]) -> None:
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda kv: c.put(BUCKET, kv[0], kv[1]), items))  # type: ignore[attr-defined]


def timed(fn: object) -> tuple[float, float]:
    """Wall and CPU seconds of ``fn()``; a number it returns is CPU seconds of processes of
    its own (loader workers), added."""
    t0, c0 = time.perf_counter(), cpu()
    extra = fn()  # type: ignore[operator]
    wall, cs = time.perf_counter() - t0, cpu() - c0
    return wall, cs + (extra if isinstance(extra, float) else 0.0)


class BotoObjects(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.client: object = None

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> bytes:
        if self.client is None:
            self.client = boto()
        return self.client.get_object(Bucket=BUCKET, Key=self.keys[i])["Body"].read()  # type: ignore[attr-defined]


def collate(batch: list[object]) -> list[object]:
    return batch


def _read(reader: object) -> bytes:
    return reader.read()  # type: ignore[attr-defined, no-any-return]


def drain(ds: object) -> None:
    """One epoch of ``ds`` through an m5 Loader: batches of 32, 2 workers, numpy output."""
    import m5stream as m5

    with m5.Loader(ds, 32, num_workers=2, output="numpy") as lo:  # type: ignore[arg-type]
        for _ in lo:
            pass


def s3tc_loader(endpoint: str, prefix: str) -> torch.utils.data.DataLoader:  # type: ignore[type-arg]
    """s3torchconnector's S3IterableDataset over ``prefix`` in a 2-worker DataLoader."""
    from s3torchconnector import S3ClientConfig, S3IterableDataset

    it = S3IterableDataset.from_prefix(
        f"s3://{BUCKET}/{prefix}",
        region="us-east-1",
        endpoint=endpoint,
        transform=_read,
        s3client_config=S3ClientConfig(force_path_style=True),
    )
    return torch.utils.data.DataLoader(it, batch_size=32, num_workers=2, collate_fn=collate)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    server, c, tmp = seaweed("m5bench-s3-", KEY, SECRET, BUCKET)
    import m5stream as m5

    try:
        b3 = boto()
        print(f"# s3 throughput vs SeaweedFS on loopback, median of {a.repeats}; {environment()}")
        # -- data
        from tests.helpers import sample_bytes

        small = [(f"small/{i:05d}.bin", os.urandom(64 << 10)) for i in range(400)]
        raw = [(f"raw/{i:05d}.jpg", sample_bytes(i) * 100) for i in range(1500)]
        tiny = [(f"tiny/{i // 1000}/{i:05d}.bin", b"x" * 100) for i in range(10_000)]
        tar_samples = [{"__key__": f"s{i:05d}", "bin": os.urandom(100 << 10)} for i in range(2400)]
        for items in (small, raw, tiny):
            upload(c, items)
        pattern = m5.write_shards(tar_samples, f"s3://{BUCKET}/tarset", shard_size=300)
        del tar_samples
        tds = m5.dataset(pattern)  # listed (and indexed) once, before any timing
        shard_keys = [tds.manifest.uri(i).split("/", 3)[3] for i in range(tds.manifest.num_shards)]
        shard_bytes = int(tds.manifest.sizes.sum())

        res: dict[str, list[tuple[float, float]]] = {}

        def rec(name: str, nbytes: float, wall: float, cpu_s: float) -> None:
            res.setdefault(name, []).append((nbytes / wall / MB, cpu_s / (nbytes / 1e9)))

        def empty_cache(tag: str) -> None:
            os.environ["M5STREAM_CACHE"] = str(tmp / f"cache-{tag}")  # no shard on disk

        def a_boto3() -> None:
            with ThreadPoolExecutor(8) as pool:
                list(
                    pool.map(
                        lambda k: b3.get_object(Bucket=BUCKET, Key=k)["Body"].read(),  # type: ignore[attr-defined]
                        shard_keys,
                    )
                )

        def a_fetch() -> None:
            with ThreadPoolExecutor(4) as pool:
                list(
                    pool.map(
                        lambda k: c.download(BUCKET, k, str(tmp / k.replace("/", "-"))), shard_keys
                    )
                )

        def a_loader(reads: str) -> float:
            with m5.Loader(tds, 64, num_workers=2, output="numpy", columnar_reads=reads) as lo:  # type: ignore[arg-type]
                assert (lo.executor_kind == "threads") == (reads == "threads")
                for _ in lo:
                    pass
                return proc_cpu(lo.worker_pids)  # worker processes (the block path has none)

        sides = [
            ("a_boto3_8threads", a_boto3),
            ("a_m5_loader", lambda: a_loader("threads")),
            ("a_m5_loader_workers", lambda: a_loader("workers")),
            ("a_m5_fetch_to_disk", a_fetch),
        ]
        for r in range(a.repeats):
            for name, fn in sides[r % 4 :] + sides[: r % 4]:  # each side first in turn
                empty_cache(f"{r}-{name}")
                wall, cs = timed(fn)
                rec(name, shard_bytes, wall, cs)
                for f in tmp.glob("tarset-*"):
                    f.unlink()
                shutil.rmtree(tmp / f"cache-{r}-{name}", ignore_errors=True)

            small_bytes = sum(len(d) for _, d in small)
            wall, cs = timed(
                lambda: list(ThreadPoolExecutor(32).map(lambda kv: c.get(BUCKET, kv[0]), small))
            )
            rec("b_m5_get_32", small_bytes, wall, cs)
            wall, cs = timed(lambda: c.get_many([(BUCKET, k, None) for k, _ in small]))
            rec("b_m5_get_many", small_bytes, wall, cs)
            sds = m5.dataset(f"s3://{BUCKET}/small/")
            wall, cs = timed(lambda sds=sds: drain(sds))
            rec("b_m5_loader", small_bytes, wall, cs)
            wall, cs = timed(
                lambda: list(
                    ThreadPoolExecutor(8).map(
                        lambda kv: b3.get_object(Bucket=BUCKET, Key=kv[0])["Body"].read(), small
                    )
                )
            )  # type: ignore[attr-defined]
            rec("b_boto3_8threads", small_bytes, wall, cs)

            raw_bytes = sum(len(d) for _, d in raw)
            rds = m5.dataset(f"s3://{BUCKET}/raw/")
            wall, cs = timed(lambda rds=rds: drain(rds))
            rec("c_m5_loader", raw_bytes, wall, cs)

            def boto_loader() -> None:
                dl = torch.utils.data.DataLoader(
                    BotoObjects([k for k, _ in raw]),
                    batch_size=32,
                    num_workers=2,
                    collate_fn=collate,
                )
                for _ in dl:
                    pass

            wall, cs = timed(boto_loader)
            rec("c_boto3_dataloader", raw_bytes, wall, cs)
            try:
                import s3torchconnector

                def s3tc() -> None:
                    for _ in s3tc_loader(server.endpoint, "raw/"):
                        pass

                wall, cs = timed(s3tc)
                rec("c_s3torchconnector", raw_bytes, wall, cs)
            except ImportError:
                pass

            # (d) time to first batch on 10,000 objects
            def first_m5() -> None:
                ds = m5.dataset(f"s3://{BUCKET}/tiny/")
                with m5.Loader(ds, 32, num_workers=2, output="numpy") as lo:
                    next(iter(lo))

            wall, _ = timed(first_m5)
            res.setdefault("d_m5_first_batch_s", []).append((wall, 0.0))

            def first_boto() -> None:
                keys = [
                    o["Key"]
                    for p in b3.get_paginator("list_objects_v2").paginate(  # type: ignore[attr-defined]
                        Bucket=BUCKET, Prefix="tiny/"
                    )
                    for o in p.get("Contents", [])
                ]
                dl = torch.utils.data.DataLoader(
                    BotoObjects(keys), batch_size=32, num_workers=2, collate_fn=collate
                )
                next(iter(dl))

            wall, _ = timed(first_boto)
            res.setdefault("d_boto3_first_batch_s", []).append((wall, 0.0))
            try:
                import s3torchconnector  # noqa: F401 - the comparison needs it

                def first_s3tc() -> None:
                    next(iter(s3tc_loader(server.endpoint, "tiny/")))

                wall, _ = timed(first_s3tc)
                res.setdefault("d_s3torchconnector_first_batch_s", []).append((wall, 0.0))
            except ImportError:
                pass

        for name, runs in res.items():
            if name.startswith("d_"):
                print(f"{name:34} {median([r[0] for r in runs]):8.2f} s")
            else:
                print(
                    f"{name:34} {median([r[0] for r in runs]):8.1f} MB/s   "
                    f"{median([r[1] for r in runs]):6.2f} CPU s/GB"
                )

        def ratio(x: str, y: str, i: int = 0) -> float:
            return median([r[i] for r in res[x]]) / median([r[i] for r in res[y]])

        for side in ("a_m5_loader", "a_m5_loader_workers", "a_m5_fetch_to_disk"):
            print(
                f"(a) {side[5:]} / boto3: MB/s {ratio(side, 'a_boto3_8threads'):.2f}x, "
                f"CPU/GB {ratio(side, 'a_boto3_8threads', 1):.2f}x"
            )
        print(
            "(b) 64 KiB objects m5 / boto3: "
            f"Loader {ratio('b_m5_loader', 'b_boto3_8threads'):.2f}x, "
            f"get_many {ratio('b_m5_get_many', 'b_boto3_8threads'):.2f}x, "
            f"32 threads {ratio('b_m5_get_32', 'b_boto3_8threads'):.2f}x"
        )
        print(
            f"(c) raw loader m5 / boto3 DataLoader: "
            f"{ratio('c_m5_loader', 'c_boto3_dataloader'):.2f}x"
            + (
                f"; m5 / s3torchconnector: {ratio('c_m5_loader', 'c_s3torchconnector'):.2f}x"
                if "c_s3torchconnector" in res
                else ""
            )
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
