"""Test data builders and process/shared-memory leak probes (no servers needed)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from m5stream.demo import write_tar_shard


def sample_bytes(i: int) -> bytes:
    """Deterministic, distinct payload of sample ``i`` (size varies with i)."""
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, 100 + (i * 37) % 900, dtype=np.uint8).tobytes()


def make_tar_dataset(root: Path, shards: int, per_shard: int) -> str:
    """``shards`` tar shards of ``per_shard`` samples; sample i has ``bin`` and ``cls`` = i."""
    root.mkdir(parents=True, exist_ok=True)
    i = 0
    for s in range(shards):
        keys, samples = [], []
        for _ in range(per_shard):
            keys.append(f"s{i:06d}")
            samples.append({"bin": sample_bytes(i), "cls": str(i).encode()})
            i += 1
        write_tar_shard(str(root / f"shard-{s:05d}.tar"), samples, keys)
    return str(root / f"shard-{{00000..{shards - 1:05d}}}.tar")


def make_jsonl_dataset(root: Path, files: int, per_file: int) -> str:
    root.mkdir(parents=True, exist_ok=True)
    i = 0
    for f in range(files):
        with open(root / f"part-{f}.jsonl", "w") as fh:
            for _ in range(per_file):
                fh.write(json.dumps({"id": i, "text": f"row {i}", "score": i / 4}) + "\n")
                i += 1
    return str(root / "*.jsonl")


def make_parquet_dataset(root: Path, files: int, per_file: int, row_group: int) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True, exist_ok=True)
    i = 0
    for f in range(files):
        ids = np.arange(i, i + per_file, dtype=np.int64)
        table = pa.table(
            {
                "id": ids,
                "label": (ids % 7).astype(np.int32),
                "title": [f"title {v}" for v in ids],
                "image": [sample_bytes(int(v)) for v in ids],
            }
        )
        pq.write_table(table, root / f"part-{f:03d}.parquet", row_group_size=row_group)
        i += per_file
    return str(root)


def descendants(pid: int | None = None) -> set[int]:
    """All live descendant PIDs of ``pid`` (default: this process), from /proc."""
    pid = pid or os.getpid()
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        parent[int(entry)] = int(fields[1])
    out: set[int] = set()
    frontier = [pid]
    while frontier:
        p = frontier.pop()
        for child, par in parent.items():
            if par == p and child not in out:
                out.add(child)
                frontier.append(child)
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pids: set[int] | list[int], timeout: float = 5.0) -> set[int]:
    deadline = time.monotonic() + timeout
    left = {p for p in pids if alive(p)}
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = {p for p in left if alive(p)}
    return left


def infrastructure_pids() -> set[int]:
    """Helper processes Python's multiprocessing keeps for the interpreter's lifetime."""
    from multiprocessing import forkserver, resource_tracker

    pids = {
        getattr(forkserver._forkserver, "_forkserver_pid", None),
        getattr(resource_tracker._resource_tracker, "_pid", None),
    }
    return {p for p in pids if p is not None}


def our_memfd_mappings(pid: int | str = "self") -> list[str]:
    with open(f"/proc/{pid}/maps") as f:
        return [line for line in f if "memfd:m5stream" in line]


def shm_entries() -> set[str]:
    return set(os.listdir("/dev/shm"))


def in_forked_child(fn: Callable[[], bool]) -> bytes:
    """Run ``fn`` in a forked child: b"1" if it returned true, b"0" if false or it raised, and
    b"" if the child died before answering (a crash at the fork itself). The child always
    leaves through ``os._exit``: it must never go on running the parent's test session."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            ok = bool(fn())
        except BaseException:
            ok = False
        finally:
            os.write(w, b"1" if ok else b"0")
            os._exit(0)
    os.close(w)
    try:
        return os.read(r, 1)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
