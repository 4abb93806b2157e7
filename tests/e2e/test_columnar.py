"""Columnar reads (Parquet, CSV) and untransformed tar shards: the same batches as the row
path whether units are decoded ahead by threads (the block path) or per batch in worker
processes, one decode per row group, decode errors reported or skipped exactly as the row path
does, and a trainer that never deadlocks with its workers however far it looks ahead."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import m5stream as m5
from m5stream.demo import write_tar_shard
from tests.helpers import make_parquet_dataset, make_tar_dataset, sample_bytes


def identity(sample: dict[str, Any]) -> dict[str, Any]:
    return sample  # any per-sample transform sends the loader down the row path


def batches(ds: m5.Dataset, **kw: Any) -> list[dict[str, Any]]:
    with m5.Loader(ds, output="numpy", copy=True, **kw) as lo:
        return [dict(b) for b in lo]


def same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert list(x) == list(y)
        for k in x:
            if k == "__key__":
                # column-wise keys are made on first use; they equal the row path's list
                assert isinstance(x[k], m5.Keys) and type(y[k]) is list, k
                assert x[k] == y[k] and y[k] == x[k] and list(x[k]) == y[k], k
            elif isinstance(x[k], np.ndarray):
                assert isinstance(y[k], np.ndarray) and x[k].dtype == y[k].dtype, k
                assert np.array_equal(x[k], y[k]), k
            else:
                assert type(x[k]) is type(y[k]) and x[k] == y[k], k


@pytest.mark.parametrize("reads", ["threads", "workers"])
@pytest.mark.parametrize("shuffle", [False, "block", True])
@pytest.mark.parametrize("nw", [0, 2])
def test_columnar_batches_equal_the_row_path(
    tmp_path: Path, shuffle: Any, nw: int, reads: str
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "pq"
    make_parquet_dataset(root, files=3, per_file=40, row_group=16)
    # a nullable column: batches without a null are arrays, batches with one are lists
    pq.write_table(
        pa.table(
            {
                "id": np.arange(120, 130),
                "label": np.zeros(10, np.int32),
                "title": [None] + [f"t{i}" for i in range(9)],
                "image": [b"x"] * 10,
            }
        ),
        root / "part-999.parquet",
    )
    ds = m5.dataset(str(root))
    kw = dict(batch_size=7, shuffle=shuffle, seed=5, num_workers=nw, block_size=16)
    with m5.Loader(ds, columnar_reads=reads, **kw) as lo:
        # threads slice batches out of decoded row groups unless the order is a global shuffle
        assert (lo.executor_kind == "threads") == (reads == "threads" and shuffle is not True)
    col = batches(ds, columnar_reads=reads, **kw)
    row = batches(ds, transform=identity, **kw)
    same(col, row)
    got = sorted(i for b in col for i in b["__index__"].tolist())
    assert got == list(range(130))
    b0 = next(b for b in col if 0 in b["__index__"].tolist())
    j = b0["__index__"].tolist().index(0)
    assert b0["image"][j] == sample_bytes(0) and b0["__key__"][j] == "part-000.parquet#0"


def test_columnar_csv_equals_row_path(tmp_path: Path) -> None:
    for f in range(2):
        rows = "".join(f'"n{f}-{i}",{i * 0.5},{i}\n' for i in range(25))
        (tmp_path / f"{f}.csv").write_text("name,x,n\n" + rows)
    ds = m5.dataset(str(tmp_path))
    for shuffle in (False, "block", True):
        for reads in ("threads", "workers"):
            kw = dict(batch_size=6, shuffle=shuffle, seed=1, num_workers=2, block_size=10)
            col = batches(ds, columnar_reads=reads, **kw)
            same(col, batches(ds, transform=identity, **kw))


def test_tar_block_path_equals_the_row_path(tmp_path: Path) -> None:
    make_tar_dataset(tmp_path, shards=3, per_shard=17)
    # shard 3: its samples' fields differ (read row by row); shard 4: other fields than 0-2
    write_tar_shard(
        str(tmp_path / "shard-00003.tar"),
        [{"bin": b"a", "cls": b"1"}, {"bin": b"b"}, {"bin": b"c", "cls": b"3", "txt": b"t"}],
        ["x0", "x1", "x2"],
    )
    write_tar_shard(
        str(tmp_path / "shard-00004.tar"), [{"txt": b"%d" % i} for i in range(5)], list("abcde")
    )
    ds = m5.dataset(str(tmp_path / "shard-{00000..00004}.tar"))
    assert len(ds) == 3 * 17 + 3 + 5
    for shuffle in (False, "block", True):
        for nw in (0, 2):
            kw = dict(batch_size=6, shuffle=shuffle, seed=3, num_workers=nw, block_size=10)
            with m5.Loader(ds, **kw) as lo:
                assert (lo.executor_kind == "threads") == (shuffle is not True)
            col = batches(ds, **kw)
            for b in col:  # batches of the uniform shards are sliced out of their maps
                if shuffle is not True and b["__index__"].max() < 51:
                    assert isinstance(b["__key__"], m5.Keys)
            plain = [{**b, "__key__": list(b["__key__"])} for b in col]
            for other in (
                batches(ds, transform=identity, **kw),
                batches(ds, columnar_reads="workers", **kw),
            ):
                assert len(plain) == len(other)
                for x, y in zip(plain, other):
                    assert list(x) == list(y) and x["__key__"] == y["__key__"]
                    assert np.array_equal(x["__index__"], y["__index__"])
                    assert all(x[k] == y[k] for k in x if k not in ("__key__", "__index__"))
            got = {
                i: (k, v)
                for b in plain
                for i, k, v in zip(b["__index__"].tolist(), b["__key__"], b.get("bin", []))
            }
            assert got[20] == ("s000020", sample_bytes(20))
    first = batches(ds, batch_size=6, num_workers=2)[0]
    assert list(first) == ["bin", "cls", "__index__", "__key__"]
    assert first["bin"] == [sample_bytes(i) for i in range(6)]
    assert first["cls"] == [str(i).encode() for i in range(6)]
    assert list(first["__key__"]) == [f"s{i:06d}" for i in range(6)]
    # the batch that spans shards 2 (bin, cls), 3 (mixed) and 4 (txt): the row path's union
    mixed = batches(ds, batch_size=6, num_workers=2)[8]
    assert mixed["__index__"].tolist() == list(range(48, 54))
    assert mixed["cls"] == [b"48", b"49", b"50", b"1", None, b"3"]
    assert mixed["txt"] == [None] * 5 + [b"t"]


def _corrupt_row_group(path: Path, group: int) -> int:
    """Overwrite the middle of row group ``group``'s first column chunk; its row count."""
    import pyarrow.parquet as pq

    md = pq.ParquetFile(path).metadata
    cc = md.row_group(group).column(0)
    raw = bytearray(path.read_bytes())
    mid = cc.data_page_offset + 4
    raw[mid : mid + 24] = b"\xff" * 24
    path.write_bytes(bytes(raw))
    return int(md.row_group(group).num_rows)


@pytest.mark.parametrize("nw", [0, 2])
def test_block_path_decode_errors_match_the_row_path(tmp_path: Path, nw: int) -> None:
    make_parquet_dataset(tmp_path, files=2, per_file=48, row_group=16)
    lost = _corrupt_row_group(tmp_path / "part-001.parquet", 1)  # samples 64..79
    ds = m5.dataset(str(tmp_path), columns=["id", "title"])
    kw = dict(batch_size=10, num_workers=nw, output="numpy")
    with m5.Loader(ds, **kw) as lo:
        assert lo.executor_kind == "threads"
        with pytest.raises(m5.CorruptData) as err:
            for _ in lo:
                pass
    assert "part-001.parquet" in str(err.value) and "row group 1" in str(err.value)
    got = {}
    for reads in ("threads", "workers"):
        with m5.Loader(ds, on_error="skip", columnar_reads=reads, **kw) as lo:
            got[reads] = [i for b in lo for i in b["__index__"].tolist()]
            skipped = [r[1] for r in lo.state_dict()["skipped"]]
        assert skipped == list(range(64, 64 + lost))
        assert got[reads] == [i for i in range(96) if not 64 <= i < 64 + lost]
    assert got["threads"] == got["workers"]


def test_a_row_group_is_decoded_by_one_worker(tmp_path: Path) -> None:
    make_parquet_dataset(tmp_path, files=2, per_file=64, row_group=32)
    ds = m5.dataset(str(tmp_path), columns=["id"])
    assert ds.unit_rows() == 32
    lo = m5.Loader(ds, 4, num_workers=2, output="numpy")
    assert (
        lo.read_ahead.steps == 2 * 8 + 1
    )  # a row group's worth of batches per worker, looked ahead
    units = [ds.locality(i) for i in range(0, 128, 4)]
    assert units[:9] == [(0, 0)] * 8 + [(0, 1)]
    with lo:
        assert [int(i) for b in lo for i in b["id"]] == list(range(128))
    assert m5.dataset("synthetic://10").locality(3) is None


def test_far_lookahead_never_deadlocks_with_the_workers(tmp_path: Path) -> None:
    # Block-shuffled batches (8 KiB of indices per task) of one row group all go to one worker
    # and their replies are big (lists of bytes travel in the pipe): with 64 batches in
    # flight, 512 KiB of tasks would be queued to that worker - more than a socket buffer -
    # while it blocks writing replies nobody reads, unless the trainer holds back.
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 65536
    ids = np.arange(n, dtype=np.int64)
    blobs = [b"%08d" % i + bytes(600) for i in range(n)]
    pq.write_table(pa.table({"id": ids, "blob": blobs}), tmp_path / "a.parquet", row_group_size=n)
    ds = m5.dataset(str(tmp_path))
    with m5.Loader(
        ds,
        1024,
        shuffle="block",
        block_size=n,
        seed=3,
        num_workers=2,
        prefetch=64,
        output="numpy",
        timeout=60,
    ) as lo:
        seen = []
        for b in lo:
            assert b["blob"][5][:8] == b"%08d" % int(b["id"][5])
            seen.extend(b["id"].tolist())
    assert sorted(seen) == list(range(n))


def test_block_path_threads_end_with_the_loader(tmp_path: Path) -> None:

    def block_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("m5-blocks")]

    make_parquet_dataset(tmp_path, files=2, per_file=64, row_group=16)
    lo = m5.Loader(m5.dataset(str(tmp_path)), 8, num_workers=2, output="numpy")
    it = iter(lo)
    assert next(it)["__index__"].tolist() == list(range(8))
    assert len(block_threads()) > 0
    lo.close()  # mid-epoch, the iterator still referenced
    assert block_threads() == []
    del it


@pytest.mark.parametrize("nw", [0, 2])
def test_block_path_index_is_numbered_once_per_block(tmp_path: Path, nw: int) -> None:
    # files of 40 rows in row groups of 16 (16, 16, 8); batches of 5: batch 3 (rows 15-19)
    # spans two row groups, batch 4 (rows 20-24) lies inside one
    make_parquet_dataset(tmp_path, files=2, per_file=40, row_group=16)
    with m5.Loader(m5.dataset(str(tmp_path)), 5, num_workers=nw, output="numpy") as lo:
        got = list(lo)
    assert [b["__index__"].tolist() for b in got] == [
        list(range(i, min(i + 5, 80))) for i in range(0, 80, 5)
    ]
    inside, across = got[4]["__index__"], got[3]["__index__"]
    # inside a row group: a view of the numbers its decode made for all 16 rows
    assert inside.base is not None and len(inside.base) == 16 and inside.base[0] == 16
    assert inside.flags.writeable and inside.dtype == np.int64
    assert across.base is None  # made for the batch
    inside[:] = -1  # the batch's own rows only: the next batch of the block is untouched
    assert got[5]["__index__"].tolist() == [25, 26, 27, 28, 29]
    assert np.shares_memory(got[5]["__index__"], inside.base)


def test_tar_fetches_not_begun_are_cancelled_by_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time
    from concurrent.futures import Future, ThreadPoolExecutor

    import m5stream.formats.tar as tar_format
    from m5stream.storage.blobs import shard_map

    ds = m5.dataset(make_tar_dataset(tmp_path, shards=5, per_shard=4))
    gate = threading.Event()
    started: list[Future[Any]] = []
    pool = ThreadPoolExecutor(1)

    def slow_start(uri: str, *args: Any) -> Future[Any]:
        first = not started

        def run() -> Any:
            if not first:
                gate.wait(30)  # shard 1 runs (and waits); shards 2-4 queue behind it
            return shard_map(uri, *args)

        started.append(pool.submit(run))
        return started[-1]

    monkeypatch.setattr(tar_format, "start_shard_map", slow_start)
    lo = m5.Loader(ds, 4, num_workers=2, output="numpy")
    assert lo.executor_kind == "threads" and lo.read_ahead.depth == 4
    it = iter(lo)
    assert next(it)["__index__"].tolist() == [0, 1, 2, 3]
    assert len(started) == 5  # shard 0, and 4 ahead
    # the download already running (shard 1) is let go on soon; close() waits for it
    threading.Timer(0.5, gate.set).start()
    t0 = time.perf_counter()
    lo.close()
    assert time.perf_counter() - t0 < 10
    assert started[1].result(timeout=30) is not None
    assert [f.cancelled() for f in started[2:]] == [True, True, True]  # never run
    pool.shutdown()
    del it


def test_raw_objects_ahead_are_bounded_by_bytes(tmp_path: Path) -> None:
    (tmp_path / "big").mkdir()
    (tmp_path / "small").mkdir()
    for i in range(6):
        (tmp_path / "big" / f"{i}.bin").write_bytes(bytes(2 << 20))
        (tmp_path / "small" / f"{i}.bin").write_bytes(b"x" * 100)
    big = m5.Loader(m5.dataset(str(tmp_path / "big")), 4, num_workers=2, output="numpy")
    small = m5.Loader(m5.dataset(str(tmp_path / "small")), 4, num_workers=2, output="numpy")
    assert (big.executor_kind == "threads") and (small.executor_kind == "threads")
    assert big.read_ahead.depth == 32  # 64 MiB of 2 MiB objects
    assert small.read_ahead.depth == 512  # the cap
    # a raw object's block is made in the trainer's thread: no decode threads
    assert big.read_ahead.threads == 0
    with big:
        it = iter(big)
        assert next(it)["__index__"].tolist() == [0, 1, 2, 3]
        assert not [t for t in threading.enumerate() if t.name.startswith("m5-blocks")]
        assert next(it)["__index__"].tolist() == [4, 5]
    # tar shards: 4 ahead, fewer when 4 would pass 512 MiB (at least 1)
    lo = m5.Loader(
        m5.dataset(make_tar_dataset(tmp_path / "tar", shards=2, per_shard=3)), 2, num_workers=2
    )
    assert (
        (lo.executor_kind == "threads") and lo.read_ahead.depth == 4 and lo.read_ahead.threads == 2
    )
    lo.dataset.manifest.sizes[:] = 200 << 20
    assert m5.Loader(lo.dataset, 2, num_workers=2).read_ahead.depth == 2
    lo.dataset.manifest.sizes[:] = 2 << 30
    assert m5.Loader(lo.dataset, 2, num_workers=2).read_ahead.depth == 1
