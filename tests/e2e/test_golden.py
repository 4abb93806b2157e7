"""Golden digests of the Loader's batches: today's behaviour, pinned before a refactor.

For every format (raw files, tar shards, Parquet, JSONL, CSV), shuffle ("none", "block",
"global") and world size (1, 2 with half the per-rank batch, so the global batch is the same),
one epoch and the next (``set_epoch(1)``) are read on every rank with a fixed seed, and two
SHA-256 digests are taken: of the ``__index__`` arrays in delivery order, rank by rank, and of
a canonical, exact encoding of every batch's contents. Every variant that the determinism
contract says must not matter - ``num_workers`` 0 or 2, ``columnar_reads="threads"`` (the
in-process block path where it applies) or ``"workers"`` - must give the one pinned pair in
``GOLDEN``.

The datasets are written deterministically (fixed generators, fixed file times: the manifest
fingerprint, hence the shuffled orders, covers every file's mtime), with uneven shard sizes so
that last batches are partial and ranks get uneven parts. The Parquet files' bytes (hence the
fingerprint) depend on the pyarrow version that writes them: a pyarrow upgrade may need the
table regenerated, for the Parquet rows only.

To regenerate after an intended change of behaviour: ``M5_GOLDEN_PRINT=1 pytest
tests/e2e/test_golden.py -k nw0-threads -s`` prints the table's new entries.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import m5stream as m5
from m5stream.demo import write_tar_shard

FORMATS = ("raw", "tar", "parquet", "jsonl", "csv")
SHUFFLES: dict[str, bool | str] = {"none": False, "block": "block", "global": True}
WORLD_SIZES = (1, 2)
WORKERS = (0, 2)
PATHS = ("threads", "workers")
SEED = 1234
GLOBAL_BATCH = 16
BLOCK_SIZE = 32
#: every file's (atime, mtime) in ns: the fingerprint covers the mtime
FILE_TIME_NS = 1_700_000_000 * 10**9

# GOLDEN[(format, shuffle, world_size)] = (index sha256[:16], content sha256[:16])
GOLDEN: dict[tuple[str, str, int], tuple[str, str]] = {
    ("raw", "none", 1): ("d599b54e5e4be993", "afc1b890714799aa"),
    ("raw", "none", 2): ("ce7c63443f4712f7", "42dcde1595c386fe"),
    ("raw", "block", 1): ("a3b000c041112d65", "03f80585325ee5eb"),
    ("raw", "block", 2): ("f1a1750c6f9c6512", "df4286fb58047110"),
    ("raw", "global", 1): ("455114dd3e1244c4", "23c1994ca88113a6"),
    ("raw", "global", 2): ("cd2e952f4dcd8706", "563e066424fc35ce"),
    ("tar", "none", 1): ("66caf248d972cf3c", "fb1b2c720f01cc7a"),
    ("tar", "none", 2): ("1b4e89e59fb7d350", "12379e1c9d2db4de"),
    ("tar", "block", 1): ("273e09086458a459", "8adb6048ab38b766"),
    ("tar", "block", 2): ("c64fe3be1903be0f", "1450de85ea2c662c"),
    ("tar", "global", 1): ("f1866dcae2d6b50f", "dd653896736e64fb"),
    ("tar", "global", 2): ("ccdfd72102e933e3", "aa75df1ba624642b"),
    ("parquet", "none", 1): ("30dd9866cc2b5c25", "260c6d5c594ac5da"),
    ("parquet", "none", 2): ("4663c523a8148511", "b3c43e7ee5475871"),
    ("parquet", "block", 1): ("e22cfd47d99b0b02", "c87e9f1fdb2103ab"),
    ("parquet", "block", 2): ("4a4908850a1524a3", "4a78413152cca9e7"),
    ("parquet", "global", 1): ("3fae162533ea8db5", "a3867abd869c14fd"),
    ("parquet", "global", 2): ("b96dff36fda2c6fd", "9642400dca969e2e"),
    ("jsonl", "none", 1): ("edf709d9b64e98cd", "03a74fc343947fe7"),
    ("jsonl", "none", 2): ("e71c17dfbc625a90", "bc73888f8fa54057"),
    ("jsonl", "block", 1): ("d3e37cbf622f050d", "857720b99564ec84"),
    ("jsonl", "block", 2): ("5000a6e646880c6c", "9299be7292a6cd29"),
    ("jsonl", "global", 1): ("05a3a70d53e07220", "d383bd683b7e74bc"),
    ("jsonl", "global", 2): ("259c1d5b27b680f1", "56a93f2f22725fe6"),
    ("csv", "none", 1): ("e0fc7902da00ad99", "3483bc7eb0d35d00"),
    ("csv", "none", 2): ("74b5f1ea8ecd03f4", "be0b8ac2d0198116"),
    ("csv", "block", 1): ("844a481cbd13c5c5", "83c38865f45072ad"),
    ("csv", "block", 2): ("9d4b580632b5b2d6", "35bbb195afca850b"),
    ("csv", "global", 1): ("240d28b042d731c1", "77b8c2ce7a0f2b34"),
    ("csv", "global", 2): ("10b8ded7d41ead15", "165dc8fd2d9a9c82"),
}


# ----------------------------------------------------------------------------- datasets
def _payload(rng: np.random.Generator, lo: int, hi: int) -> bytes:
    return rng.integers(0, 256, int(rng.integers(lo, hi)), dtype=np.uint8).tobytes()


def _write_raw(root: Path) -> str:
    rng = np.random.default_rng(101)
    for i in range(173):
        sub = root / f"d{i % 4}"
        sub.mkdir(parents=True, exist_ok=True)
        if i % 9 == 4:  # a few samples of another field: batches hold the union
            (sub / f"f{i:04d}.txt").write_text(f"text of file {i} \u00e9\u4e2d", "utf-8")
        else:
            (sub / f"f{i:04d}.bin").write_bytes(_payload(rng, 0, 700))
    return str(root)


def _write_tar(root: Path) -> str:
    rng = np.random.default_rng(202)
    root.mkdir(parents=True, exist_ok=True)
    i = 0
    sizes = (37, 61, 23, 50, 29)
    for s, n in enumerate(sizes):
        keys, samples = [], []
        for _ in range(n):
            keys.append(f"k{i:05d}")
            samples.append(
                {
                    "bin": _payload(rng, 1, 900),
                    "cls": str(int(rng.integers(0, 10))).encode(),
                    "txt": f"sample {i} \u00fc".encode(),
                }
            )
            i += 1
        write_tar_shard(str(root / f"shard-{s:05d}.tar"), samples, keys)
    return str(root / f"shard-{{00000..{len(sizes) - 1:05d}}}.tar")


def _write_parquet(root: Path) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(303)
    root.mkdir(parents=True, exist_ok=True)
    i = 0
    for f, n in enumerate((70, 45, 88)):
        ids = np.arange(i, i + n, dtype=np.int64)
        opt = [None if v % 23 == 5 else int(v * 3) for v in ids]  # nulls in a few batches
        table = pa.table(
            {
                "id": ids,
                "score": rng.standard_normal(n).astype(np.float32),
                "label": rng.integers(0, 7, n).astype(np.int32),
                "image": [_payload(rng, 0, 600) for _ in range(n)],
                "title": [f"title {v} \u00e5" * int(1 + v % 3) for v in ids],
                "opt": pa.array(opt, pa.int64()),
            }
        )
        pq.write_table(table, root / f"part-{f:03d}.parquet", row_group_size=24)
        i += n
    return str(root)


def _write_jsonl(root: Path) -> str:
    rng = np.random.default_rng(404)
    root.mkdir(parents=True, exist_ok=True)
    i = 0
    for f, n in enumerate((60, 41, 75)):
        with open(root / f"part-{f}.jsonl", "w", encoding="utf-8") as fh:
            for _ in range(n):
                row = {
                    "id": i,
                    "text": f"row {i} \u00df" + "x" * int(rng.integers(0, 20)),
                    "score": float(rng.standard_normal()),
                    "tags": rng.integers(0, 100, int(rng.integers(0, 4))).tolist(),
                }
                fh.write(json.dumps(row) + "\n")
                i += 1
    return str(root / "*.jsonl")


def _write_csv(root: Path) -> str:
    rng = np.random.default_rng(505)
    root.mkdir(parents=True, exist_ok=True)
    i = 0
    for f, n in enumerate((55, 72, 40)):
        rows = []
        for _ in range(n):
            name = f"n{i}, quoted" if i % 5 == 0 else f"n{i}"
            rows.append(f'"{name}",{float(rng.standard_normal()):.6f},{int(rng.integers(-50, 50))}')
            i += 1
        (root / f"{f}.csv").write_text("name,x,n\n" + "\n".join(rows) + "\n")
    return str(root)


WRITERS = {
    "raw": _write_raw,
    "tar": _write_tar,
    "parquet": _write_parquet,
    "jsonl": _write_jsonl,
    "csv": _write_csv,
}
SIZES = {"raw": 173, "tar": 200, "parquet": 203, "jsonl": 176, "csv": 167}


def _pin_times(root: Path) -> None:
    for p in sorted(root.rglob("*")):
        if p.is_file():
            os.utime(p, ns=(FILE_TIME_NS, FILE_TIME_NS))


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("golden")
    out = {}
    for name, write in WRITERS.items():
        root = base / name
        root.mkdir()
        out[name] = write(root)
        _pin_times(root)
    return out


# ----------------------------------------------------------------------------- digests
def _item(h: Any, v: Any) -> None:
    """Feed ``v`` to ``h`` exactly and unambiguously (tag + length-prefixed payload), the same
    for representations of one value (bytes/bytearray/memoryview, list/tuple/Keys)."""

    def put(tag: bytes, data: bytes) -> None:
        h.update(tag + struct.pack("<Q", len(data)) + data)

    if v is None:
        put(b"N", b"")
    elif type(v).__module__ == "torch" and hasattr(v, "numpy"):
        _item(h, v.numpy())
    elif isinstance(v, np.ndarray):
        a = np.ascontiguousarray(v)
        if a.dtype.hasobject:
            put(b"O", repr(a.shape).encode())
            for x in a.reshape(-1).tolist():
                _item(h, x)
        else:
            put(b"A", f"{a.dtype.str}|{a.shape}".encode())
            put(b"D", a.tobytes())
    elif isinstance(v, (bytes, bytearray, memoryview)):
        put(b"B", bytes(v))
    elif isinstance(v, str):
        put(b"S", v.encode("utf-8", "surrogatepass"))
    elif isinstance(v, (bool, np.bool_)):
        put(b"T", b"1" if v else b"0")
    elif isinstance(v, np.generic):  # a numpy scalar keeps its dtype
        put(b"G", f"{v.dtype.str}".encode() + b"|" + v.tobytes())
    elif isinstance(v, int):
        put(b"I", str(v).encode())
    elif isinstance(v, float):
        put(b"F", struct.pack("<d", v))
    elif isinstance(v, dict):
        put(b"M", str(len(v)).encode())
        for k in sorted(v, key=str):
            _item(h, str(k))
            _item(h, v[k])
    elif isinstance(v, Iterable):  # list, tuple, m5.Keys and other sequences
        items = list(v)
        put(b"L", str(len(items)).encode())
        for x in items:
            _item(h, x)
    else:  # anything else (dates, decimals...): its type and repr
        put(b"R", f"{type(v).__module__}.{type(v).__qualname__}:{v!r}".encode())


def batch_canon(h: Any, batch: dict[str, Any]) -> None:
    put = h.update
    put(b"batch" + struct.pack("<Q", len(batch)))
    for name in sorted(batch):
        _item(h, name)
        _item(h, batch[name])


def digests(
    fmt: str, source: str, shuffle: str, world_size: int, nw: int, path: str
) -> tuple[str, str]:
    """(index sha, content sha) of epochs 0 and 1 on every rank, rank by rank."""
    ds = m5.dataset(source)
    assert len(ds) == SIZES[fmt]
    hi, hc = hashlib.sha256(), hashlib.sha256()
    seen: list[int] = []
    for rank in range(world_size):
        with m5.Loader(
            ds,
            GLOBAL_BATCH // world_size,
            shuffle=SHUFFLES[shuffle],
            seed=SEED,
            block_size=BLOCK_SIZE,
            num_workers=nw,
            rank=rank,
            world_size=world_size,
            output="numpy",
            copy=True,
            columnar_reads=path,
        ) as lo:
            for epoch in (0, 1):
                lo.set_epoch(epoch)
                hi.update(b"rank%d epoch%d" % (rank, epoch))
                hc.update(b"rank%d epoch%d" % (rank, epoch))
                for b in lo:
                    idx = np.asarray(b["__index__"])
                    assert idx.dtype == np.int64
                    hi.update(idx.astype("<i8").tobytes())
                    batch_canon(hc, b)
                    if epoch == 0:
                        seen.extend(idx.tolist())
    # every sample at least once per epoch (ranks pad an uneven last step)
    assert set(seen) == set(range(len(ds)))
    return hi.hexdigest()[:16], hc.hexdigest()[:16]


CASES = [
    pytest.param(fmt, sh, ws, nw, path, id=f"{fmt}-{sh}-ws{ws}-nw{nw}-{path}")
    for fmt in FORMATS
    for sh in SHUFFLES
    for ws in WORLD_SIZES
    for nw in WORKERS
    for path in PATHS
]


@pytest.mark.parametrize(("fmt", "shuffle", "ws", "nw", "path"), CASES)
def test_golden(
    sources: dict[str, str], fmt: str, shuffle: str, ws: int, nw: int, path: str
) -> None:
    got = digests(fmt, sources[fmt], shuffle, ws, nw, path)
    if os.environ.get("M5_GOLDEN_PRINT"):
        print(f"\n    ({fmt!r}, {shuffle!r}, {ws}): {got!r},")
    assert (fmt, shuffle, ws) in GOLDEN, f"no golden entry: {got}"
    want = GOLDEN[(fmt, shuffle, ws)]
    assert got == want, f"(index, content) digests {got} != golden {want}"
