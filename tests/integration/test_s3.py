"""Reading through the AWS CRT from a real S3-compatible server (SeaweedFS on loopback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import m5stream as m5
from m5stream.catalog.s3list import list_prefix
from m5stream.storage import s3
from tests.helpers import make_jsonl_dataset, make_parquet_dataset, make_tar_dataset, sample_bytes
from tests.integration.conftest import BUCKET, KEY_ID, SECRET
from tests.resume_harness import check_resume


def _upload_dir(local: Path, prefix: str) -> None:
    c = s3.client()
    files = sorted(p for p in local.rglob("*") if p.is_file())
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda p: c.put(BUCKET, f"{prefix}/{p.relative_to(local)}", path=str(p)), files
            )
        )


def test_get_ranges_head_and_errors(s3_endpoint: str) -> None:
    c = s3.client()
    data = os.urandom(3 * (8 << 20) + 12345)  # several CRT parts
    c.put(BUCKET, "blobs/big.bin", data)
    assert c.get(BUCKET, "blobs/big.bin") == data
    assert c.get(BUCKET, "blobs/big.bin", 7, 100) == data[7:107]
    assert c.get(BUCKET, "blobs/big.bin", 9 << 20, 10 << 20) == data[9 << 20 : 19 << 20]
    info = c.head(BUCKET, "blobs/big.bin")
    assert info.size == len(data) and len(info.etag) >= 32
    with pytest.raises(m5.NotFound) as e:
        c.get(BUCKET, "blobs/missing.bin", 0, 10)
    assert f"s3://{BUCKET}/blobs/missing.bin" in str(e.value) and "byte_range=0-9" in str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    with pytest.raises(m5.StateMismatch, match="changed since the manifest"):
        c.get(BUCKET, "blobs/big.bin", 0, 10, etag="0" * 32)


def test_wrong_credentials_are_permission_denied(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.client().put(BUCKET, "secret/x", b"x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    bad = s3.S3Client(s3.S3Config(retries=0))
    with pytest.raises(m5.PermissionDenied) as e:
        bad.get(BUCKET, "secret/x")
    assert isinstance(e.value, PermissionError)
    assert "not-the-secret" not in str(e.value) and "SignatureDoesNotMatch" in str(e.value)


def test_listing_thousands_of_objects(s3_endpoint: str) -> None:
    c = s3.client()
    keys = [f"many/part{i % 5}/obj{i:05d}.bin" for i in range(2500)]
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda k: c.put(BUCKET, k, k.encode()), keys))
    listed = list_prefix(c, BUCKET, "many/")
    assert [o.key for o in listed] == sorted(keys)
    ds = m5.dataset(f"s3://{BUCKET}/many/")
    assert len(ds) == 2500 and ds.manifest.format == "raw"
    assert ds.manifest.keys[0] == "part0/obj00000.bin"
    assert ds[7]["bin"] == sorted(keys)[7].encode()


@pytest.fixture(scope="module")
def tar_pair(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    local = tmp_path_factory.mktemp("tars")
    make_tar_dataset(local, shards=6, per_shard=20)
    _upload_dir(local, "tars")
    remote = m5.dataset(f"s3://{BUCKET}/tars/shard-{{00000..00005}}.tar")
    return m5.dataset(str(local)), remote


def test_tar_shards_over_s3(tar_pair: tuple[Any, Any]) -> None:
    local, remote = tar_pair
    assert remote.manifest.root == f"s3://{BUCKET}/tars"
    assert remote.manifest.counts.tolist() == local.manifest.counts.tolist()
    assert all(len(s) >= 32 for s in remote.manifest.stamps)  # ETags
    for i in (0, 19, 20, 119):
        assert remote[i]["bin"] == sample_bytes(i) and remote[i]["__key__"] == f"s{i:06d}"
    with m5.Loader(remote, 16, shuffle=True, seed=2, num_workers=2, output="numpy") as lo:
        seen = 0
        for b in lo:
            assert b["bin"] == [sample_bytes(i) for i in b["__index__"].tolist()]
            seen += len(b["bin"])
    assert seen == 120


def test_list_of_s3_uris_in_its_order(tar_pair: tuple[Any, Any]) -> None:
    uris = [f"s3://{BUCKET}/tars/shard-{i:05d}.tar" for i in (4, 1, 5)]
    ds = m5.dataset(uris)
    assert ds.manifest.root == f"s3://{BUCKET}/tars" and ds.manifest.format == "tar"
    assert ds.manifest.keys == ["shard-00004.tar", "shard-00001.tar", "shard-00005.tar"]
    assert all(len(s) >= 32 for s in ds.manifest.stamps)  # ETags
    assert len(ds) == 60 and ds[0]["bin"] == sample_bytes(80) and ds[20]["bin"] == sample_bytes(20)
    assert m5.dataset(uris[::-1]).fingerprint != ds.fingerprint
    missing = f"s3://{BUCKET}/tars/shard-00099.tar"
    with pytest.raises(m5.NotFound) as e:
        m5.dataset([*uris, missing])
    assert missing in str(e.value)


def test_exact_resume_over_s3(tar_pair: tuple[Any, Any]) -> None:
    from tests.e2e.test_resume import LoaderNode

    remote = tar_pair[1]
    check_resume(
        lambda nw, r, ws: LoaderNode(remote, nw, r, ws, shuffle=True, seed=4, drop_last=True),
        configs=[(0, 1), (2, 2)],
        num_samples=len(remote),
        global_batch=24,
        epochs=2,
        drop_last=True,
    )


def test_parquet_and_jsonl_over_s3(s3_endpoint: str, tmp_path: Path) -> None:
    make_parquet_dataset(tmp_path / "pq", files=2, per_file=25, row_group=10)
    make_jsonl_dataset(tmp_path / "js", files=2, per_file=5)
    _upload_dir(tmp_path / "pq", "pq")
    _upload_dir(tmp_path / "js", "js")
    pq = m5.dataset(f"s3://{BUCKET}/pq/*.parquet", columns=["id", "image"])
    assert len(pq) == 50
    assert int(pq[37]["id"]) == 37 and pq[37]["image"] == sample_bytes(37)
    js = m5.dataset(f"s3://{BUCKET}/js/")
    assert len(js) == 10 and js[7]["text"] == "row 7" and js[7]["__key__"] == "part-1.jsonl:3"


@pytest.mark.parametrize("mapped", [True, False])
def test_parquet_block_path_over_s3_reads_each_row_group_once(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mapped: bool
) -> None:
    """Threads fetch each row group's projected chunks (into a pooled receive buffer, or -
    when no mapping can be made - as bytes) and decode it once; batches are exact, and a
    second epoch reuses the first one's buffers."""
    import mmap

    from m5stream.storage import buffers

    buffers.range_buffers().clear()
    made: list[int] = []
    real_mmap = mmap.mmap

    def counted_mmap(*a: Any, **k: Any) -> mmap.mmap:
        if not mapped:
            raise OSError("no address space")
        made.append(a[1])
        return real_mmap(*a, **k)

    monkeypatch.setattr(buffers.mmap, "mmap", counted_mmap)
    make_parquet_dataset(tmp_path / "pqb", files=3, per_file=40, row_group=16)
    _upload_dir(tmp_path / "pqb", f"pqb-{mapped}")
    ds = m5.dataset(f"s3://{BUCKET}/pqb-{mapped}/*.parquet", columns=["id", "title", "image"])
    with m5.Loader(ds, 7, num_workers=2, output="numpy") as lo:
        assert lo.executor_kind == "threads"
        batches = list(lo)
        gets = lo.stats["s3"]["GetObject"]
        first_epoch = len(made)
        assert [i for b in lo for i in b["id"].tolist()] == list(range(120))
    assert 0 < first_epoch <= 9 if mapped else made == []
    # The second epoch's 9 units land in the first's buffers: at most a buffer or two more is
    # made, when a decoder thread still held its last slice of one as the next unit was taken
    # (without reuse the second epoch would make all 9 again).
    assert len(made) - first_epoch <= 2
    ids = [i for b in batches for i in b["id"].tolist()]
    assert ids == list(range(120))
    b = batches[5]  # rows 35..41: across a row group and a file
    assert b["title"] == [f"title {i}" for i in range(35, 42)]
    assert b["image"] == [sample_bytes(i) for i in range(35, 42)]
    assert b["__key__"] == [f"part-000.parquet#{i}" for i in range(35, 40)] + [
        "part-001.parquet#0",
        "part-001.parquet#1",
    ]
    assert gets == 9  # 3 files x 3 row groups, one ranged GET each (footers: at resolve)


def test_changed_object_is_an_error_not_mixed_data(s3_endpoint: str) -> None:
    c = s3.client()
    for i in range(3):
        c.put(BUCKET, f"mut/{i}.bin", b"old")
    ds = m5.dataset(f"s3://{BUCKET}/mut/")
    assert ds[1]["bin"] == b"old"
    c.put(BUCKET, "mut/2.bin", b"new content")
    with pytest.raises(m5.StateMismatch, match="changed since the manifest") as e:
        ds[2]
    assert e.value.uri == f"s3://{BUCKET}/mut/2.bin"
    assert m5.dataset(f"s3://{BUCKET}/mut/").fingerprint != ds.fingerprint


def test_missing_shard_names_it(s3_endpoint: str) -> None:
    with pytest.raises(m5.NotFound) as e:
        m5.dataset(f"s3://{BUCKET}/tars/shard-{{00000..00009}}.tar")
    assert f"s3://{BUCKET}/tars/shard-0000" in str(e.value)


def test_manifest_is_listed_once(
    tar_pair: tuple[Any, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = f"s3://{BUCKET}/tars/shard-{{00000..00005}}.tar"
    path = tmp_path / "manifest.json"
    first = m5.dataset(src, manifest=path)
    assert json.loads(path.read_text())["fingerprint"] == first.fingerprint

    def no_listing(*a: object, **k: object) -> None:
        raise AssertionError("listed again")

    monkeypatch.setattr(sys.modules["m5stream.catalog.build"], "list_s3", no_listing)
    monkeypatch.setenv("RANK", "3")
    again = m5.dataset(src, manifest=path)
    assert again.fingerprint == first.fingerprint and np.array_equal(
        again.manifest.counts, first.manifest.counts
    )
    with pytest.raises(m5.ConfigError, match="was made for"):
        m5.dataset(f"s3://{BUCKET}/other/", manifest=path)


def test_loader_prefetches_shards_in_order(
    tar_pair: tuple[Any, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("M5STREAM_CACHE", str(tmp_path / "fresh-cache"))  # nothing cached yet
    remote = m5.dataset(f"s3://{BUCKET}/tars/shard-{{00000..00005}}.tar")
    with m5.Loader(
        remote,
        8,
        shuffle="block",
        block_size=20,
        seed=1,
        num_workers=2,
        output="numpy",
        columnar_reads="workers",  # the worker path: workers read the disk shard cache
    ) as lo:
        assert lo.executor_kind != "threads"
        got = [i for b in lo for i in b["__index__"].tolist()]
        assert sorted(got) == list(range(120))
        assert lo.stats["prefetched_shards"] == 6
        # each shard was downloaded exactly once, whoever (prefetcher or worker) got to it first
        total = int(remote.manifest.sizes.sum())
        assert lo.stats["s3"]["bytes"] == total, lo.stats["s3"]


def _shard_maps() -> int:
    import gc

    gc.collect()  # a raised error's traceback holds its frames (and their maps) in a cycle
    with open("/proc/self/maps") as f:
        return f.read().count("memfd:m5stream-shard")


@pytest.mark.parametrize("nw", [0, 2])
def test_tar_block_path_streams_shards_through_memory(
    tar_pair: tuple[Any, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nw: int
) -> None:
    cache = tmp_path / "fresh-cache"
    monkeypatch.setenv("M5STREAM_CACHE", str(cache))  # no shard on disk yet
    local, remote = tar_pair
    kw = dict(shuffle="block", block_size=20, seed=1, num_workers=nw, output="numpy")
    with m5.Loader(remote, 8, **kw) as lo:  # type: ignore[arg-type]
        assert lo.executor_kind == "threads"
        got = [(b["__index__"].tolist(), b["bin"], list(b["__key__"])) for b in lo]
        io = lo.stats["s3"]
    with m5.Loader(local, 8, columnar_reads="workers", **kw) as lo:  # type: ignore[arg-type]
        want = [(b["__index__"].tolist(), b["bin"], b["__key__"]) for b in lo]
    assert got == want and sorted(i for g in got for i in g[0]) == list(range(120))
    # each shard was downloaded once, into memory: nothing written to the disk shard cache,
    # and no map of one left once the loader is done
    assert io["bytes"] == int(remote.manifest.sizes.sum()) and io["GetObject"] == 6, io
    assert not (cache / "shards").exists() or not any((cache / "shards").iterdir())
    assert _shard_maps() == 0


def test_tar_block_path_missing_or_changed_shard(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("M5STREAM_CACHE", str(tmp_path / "cache"))
    make_tar_dataset(tmp_path / "src", shards=3, per_shard=10)
    _upload_dir(tmp_path / "src", "tarbad")
    ds = m5.dataset(f"s3://{BUCKET}/tarbad/shard-{{00000..00002}}.tar")
    # shard 1 changes after the manifest was made (a different ETag), then shard 2 is deleted
    c = s3.client()
    c.put(BUCKET, "tarbad/shard-00001.tar", (tmp_path / "src" / "shard-00000.tar").read_bytes())
    c._request("DELETE", BUCKET, "tarbad/shard-00002.tar", operation="DeleteObject")
    # listing cached the manifest's copies on disk (those would still be read): not any more
    monkeypatch.setenv("M5STREAM_CACHE", str(tmp_path / "cache-2"))
    kw = dict(num_workers=2, output="numpy")
    with m5.Loader(ds, 4, **kw) as lo:  # type: ignore[arg-type]
        assert lo.executor_kind == "threads"
        it = iter(lo)
        assert [next(it)["__index__"].tolist() for _ in range(2)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
        with pytest.raises(m5.StateMismatch, match=r"shard-00001\.tar"):
            next(it)
    with m5.Loader(ds, 4, on_error="skip", **kw) as lo:  # type: ignore[arg-type]
        got = [i for b in lo for i in b["__index__"].tolist()]
        skipped = lo.state_dict()["skipped"]
    assert got == list(range(10))
    assert [r[1] for r in skipped] == list(range(10, 30))
    assert "StateMismatch" in skipped[0][3] and "NotFound" in skipped[-1][3]
    assert _shard_maps() == 0


def test_a_shard_is_downloaded_once_by_concurrent_callers(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from m5stream._cache import stamp_key
    from m5stream.storage.blobs import local_shard
    from m5stream.storage.iostats import io_counters, io_delta

    monkeypatch.setenv("M5STREAM_CACHE", str(tmp_path / "cache"))
    body = np.random.default_rng(5).bytes(3 << 20)
    s3.client().put(BUCKET, "locked/shard.bin", body)
    m = m5.dataset(f"s3://{BUCKET}/locked/").manifest
    args = (m.uri(0), int(m.sizes[0]), m.stamps[0])

    # another process holds the download lock and dies holding it: callers wait, then go on
    entry = tmp_path / "cache" / "shards" / f"{stamp_key(*args)}.bin"
    entry.parent.mkdir(parents=True)
    held = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(entry)], stdout=subprocess.PIPE, text=True
    )
    assert held.stdout is not None and held.stdout.readline().strip() == "held"

    def fetch(_: int) -> tuple[str, dict[str, int]]:
        io0 = io_counters()
        path = local_shard(*args)
        return path, io_delta(io0)

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(fetch, i) for i in range(6)]
        time.sleep(0.5)
        assert not any(f.done() for f in futures)  # all wait on the dead-to-be holder
        held.kill()
        held.wait()
        results = [f.result(timeout=60) for f in futures]
    assert {p for p, _ in results} == {str(entry)}
    assert Path(results[0][0]).read_bytes() == body
    assert sum(io.get("bytes", 0) for _, io in results) == len(body)  # one download in all


_HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1] + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(600)
"""


def test_raw_objects_of_a_batch_are_fetched_concurrently(s3_endpoint: str) -> None:
    c = s3.client()
    for i in range(40):
        c.put(BUCKET, f"rawb/{i:03d}.jpg", sample_bytes(i))
    c.put(BUCKET, "rawb/zz-missing-later.jpg", b"soon gone")
    ds = m5.dataset(f"s3://{BUCKET}/rawb/")
    assert len(ds) == 41
    # a deleted object fails its own sample only, with the skip accounting of the loader
    from m5stream.storage.s3 import client as cl

    cl()._request("DELETE", BUCKET, "rawb/zz-missing-later.jpg", operation="DeleteObject")
    for nw in (0, 2):
        with m5.Loader(ds, 10, num_workers=nw, on_error="skip", output="numpy") as lo:
            batches = list(lo)
            assert [x for b in batches for x in b["jpg"]] == [sample_bytes(i) for i in range(40)]
            assert lo.state_dict()["skipped"][0][2] == "zz-missing-later.jpg"
            assert "NotFound" in lo.state_dict()["skipped"][0][3]


def test_write_shards_to_s3_multipart_and_read_back(s3_endpoint: str) -> None:
    big = [{"__key__": f"b{i}", "bin": os.urandom(3 << 20)} for i in range(7)]  # ~21 MB shard
    pattern = m5.write_shards(big, f"s3://{BUCKET}/written", shard_size=7)
    assert pattern == f"s3://{BUCKET}/written/shard-{{00000..00000}}.tar"
    ds = m5.dataset(pattern)
    assert ds.manifest.sizes[0] > 2 * (8 << 20)  # several parts of the CRT's multipart upload
    assert [ds[i]["bin"] for i in range(7)] == [s["bin"] for s in big]


def test_cli_shard_to_s3(s3_endpoint: str, tmp_path: Path) -> None:
    import subprocess

    src = make_tar_dataset(tmp_path / "src", shards=2, per_shard=5)
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "m5stream.cli",
            "shard",
            src,
            f"s3://{BUCKET}/cli",
            "--shard-size",
            "4",
        ],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(root)),
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["samples"] == 10
    ds = m5.dataset(out["written"])
    assert ds.manifest.counts.tolist() == [4, 4, 2]
    assert [ds[i]["bin"] for i in range(10)] == [sample_bytes(i) for i in range(10)]


def test_faults_change_nothing(s3_endpoint: str) -> None:
    """Through a proxy that answers 503 SlowDown to 1 request in 10 and resets the connection
    of another 1 in 10, an epoch has the same order and the same bytes as a clean one."""
    from tests.integration.faultproxy import FaultProxy

    c = s3.client()
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda i: c.put(BUCKET, f"faults/{i:03d}.bin", sample_bytes(1000 + i)), range(60)
            )
        )
    clean = m5.dataset(f"s3://{BUCKET}/faults/")
    proxy = FaultProxy(int(s3_endpoint.rsplit(":", 1)[1]), every=10)
    try:
        cfg = s3.S3Config(endpoint=proxy.endpoint, retries=5)
        faulty = m5.dataset(f"s3://{BUCKET}/faults/", s3=cfg)  # listing through the faults
        assert faulty.fingerprint == clean.fingerprint
        runs = []
        for ds in (clean, faulty):  # raw objects: every sample is a GET, nothing cached
            before = dict(proxy.stats)
            with m5.Loader(ds, 8, shuffle=True, seed=8, num_workers=2, output="numpy") as lo:
                runs.append([(b["__index__"].tolist(), b["bin"]) for b in lo])
        # the workers' GETs of the faulty epoch went through the proxy, and some were broken
        assert proxy.stats["forwarded"] - before.get("forwarded", 0) >= 60
        broken = sum(proxy.stats[k] - before.get(k, 0) for k in ("slowdown", "reset"))
        assert broken >= 10
        assert runs[0] == runs[1]
        assert [x for _, bins in runs[1] for x in bins] != []
        shard = "faults/007.bin"
        direct = s3.S3Client(s3.S3Config(endpoint=s3_endpoint))
        for i in range(20):  # ranged reads straight through the faults
            assert s3.client(cfg).get(BUCKET, shard, i, 50) == direct.get(BUCKET, shard, i, 50)
        assert proxy.stats["slowdown"] >= 3 and proxy.stats["reset"] >= 3
    finally:
        proxy.close()


def test_retries_are_for_faults_only(s3_endpoint: str, tmp_path: Path) -> None:
    """A definite answer (404, 412) is final after one request; a fault that persists is
    tried ``retries`` more times, then raised naming bucket, key and byte range."""
    from m5stream.storage.iostats import io_counters, io_delta
    from tests.integration.faultproxy import FaultProxy

    c = s3.client()
    c.put(BUCKET, "retry/x.bin", b"0123456789" * 10)
    for call in (
        lambda: c.get(BUCKET, "retry/none.bin"),
        lambda: c.get(BUCKET, "retry/x.bin", etag="0" * 32),
        lambda: c.download(BUCKET, "retry/none.bin", str(tmp_path / "out")),
        lambda: c.start_many([(BUCKET, "retry/none.bin", None)])(),
    ):
        io0 = io_counters()
        try:
            got = call()
        except (m5.NotFound, m5.StateMismatch):
            got = None
        assert got is None or isinstance(got[0], m5.NotFound)  # type: ignore[index]
        assert io_delta(io0).get("GetObject") == 1, io_delta(io0)
    proxy = FaultProxy(int(s3_endpoint.rsplit(":", 1)[1]), every=1)  # every request: 503
    try:
        # (the CRT's own retries, 5 with backoff, come first: each try of ours takes seconds)
        broken = s3.S3Client(s3.S3Config(endpoint=proxy.endpoint, retries=1))
        io0 = io_counters()
        with pytest.raises(m5.M5Error) as err:
            broken.get(BUCKET, "retry/x.bin", 5, 20)
        assert type(err.value) is m5.M5Error  # not NotFound / PermissionDenied / ...
        assert err.value.uri == f"s3://{BUCKET}/retry/x.bin" and err.value.byte_range == "5-24"
        assert KEY_ID not in str(err.value) and SECRET not in str(err.value)
        assert io_delta(io0)["GetObject"] == 2  # the first try and 1 retry of ours
        assert proxy.stats["slowdown"] >= 2 and proxy.stats["forwarded"] == 0
    finally:
        proxy.close()


@pytest.mark.parametrize("nw", [0, 2])
@pytest.mark.parametrize("shuffle", [True, False])  # workers; the block path (fetch ahead)
def test_raw_objects_are_fetched_once_each(s3_endpoint: str, nw: int, shuffle: bool) -> None:
    c = s3.client()
    for i in range(24):
        c.put(BUCKET, f"once/{i:03d}.bin", sample_bytes(i))
    ds = m5.dataset(f"s3://{BUCKET}/once/")
    with m5.Loader(ds, 8, shuffle=shuffle, seed=1, num_workers=nw, output="numpy") as lo:
        assert (lo.executor_kind == "threads") == (not shuffle)
        batches = list(lo)
        got = {i: b for batch in batches for i, b in zip(batch["__index__"].tolist(), batch["bin"])}
        io = lo.stats["s3"]
    assert got == {i: sample_bytes(i) for i in range(24)}
    assert io["GetObject"] == 24  # one GET per object: nothing fetched twice
    assert io["bytes"] == sum(len(sample_bytes(i)) for i in range(24))
    if not shuffle:
        assert batches[1]["__key__"] == [f"{i:03d}.bin" for i in range(8, 16)]


def test_workers_fetch_their_next_task_ahead_and_each_object_once(s3_endpoint: str) -> None:
    """With a transform (worker processes) a worker starts the GETs of the task queued
    behind the one it works on; every object is still fetched exactly once, each batch holds
    its own objects' bytes, and the requests are counted (those started a task early too)."""
    from tests.e2e import fns

    c = s3.client()
    for i in range(96):
        c.put(BUCKET, f"ahead/{i:03d}.bin", sample_bytes(i))
    ds = m5.dataset(f"s3://{BUCKET}/ahead/")
    with m5.Loader(
        ds, 8, transform=fns.PidAfter(0.01), shuffle=True, seed=4, num_workers=2, copy=True
    ) as lo:
        batches = list(lo)
        io = lo.stats["s3"]
        workers = set(lo.worker_pids)
    with m5.Loader(ds, 8, shuffle=True, seed=4, num_workers=0, output="numpy") as ref:
        want = [(b["__index__"].tolist(), list(b["bin"])) for b in ref]
    assert [(b["__index__"].tolist(), list(b["bin"])) for b in batches] == want
    assert {p for b in batches[-4:] for p in b["pid"].tolist()} <= workers
    assert io["GetObject"] == 96, io
    assert io["bytes"] == sum(len(sample_bytes(i)) for i in range(96))


def test_keys_with_query_and_fragment_characters(s3_endpoint: str) -> None:
    # "?" and "#" are ordinary characters of an S3 key; a URL parser cut the key at them
    c = s3.client()
    names = ["a?b.bin", "c#d.bin", "e?f#g.bin", "plain.bin"]
    for i, name in enumerate(names):
        c.put(BUCKET, f"odd/{name}", sample_bytes(i))
    ds = m5.dataset(f"s3://{BUCKET}/odd/")
    want = dict(zip(names, (sample_bytes(i) for i in range(4))))
    assert {ds[i]["__key__"]: ds[i]["bin"] for i in range(len(ds))} == want
    with m5.Loader(ds, 2, num_workers=0, output="numpy") as lo:
        assert lo.executor_kind == "threads"
        got = {k: v for b in lo for k, v in zip(b["__key__"], b["bin"])}
    assert got == want


def test_raw_block_path_missing_object_is_named_or_skipped(s3_endpoint: str) -> None:
    c = s3.client()
    for i in range(12):
        c.put(BUCKET, f"gone/{i:03d}.bin", sample_bytes(i))
    ds = m5.dataset(f"s3://{BUCKET}/gone/")
    c._request("DELETE", BUCKET, "gone/005.bin", operation="DeleteObject")
    with m5.Loader(ds, 4, num_workers=2, output="numpy") as lo:
        assert lo.executor_kind == "threads"
        with pytest.raises(m5.NotFound, match=r"gone/005\.bin"):
            list(lo)
    with m5.Loader(ds, 4, num_workers=2, output="numpy", on_error="skip") as lo:
        got = [i for b in lo for i in b["__index__"].tolist()]
        assert [r[1:3] for r in lo.state_dict()["skipped"]] == [[5, "005.bin"]]
    assert got == [i for i in range(12) if i != 5]
