"""Hostile S3 keys are keys only (issue 16): objects whose keys hold spaces, ``%``, ``?``,
``#``, newlines, tabs, non-ASCII, dots or ~820 bytes (S3 allows 1 KiB), holding tar shards
whose member names are absolute or climb with ``..``, are read by every executor - through the
disk shard cache (processes) and memory files (threads) - and rewritten by ``m5stream shard``
to S3, and no file is created anywhere but the cache, whose entries are hashes. Keys the
server refuses (``..`` segments, NUL) are an M5Error naming them and create nothing."""

from __future__ import annotations

import io
import os
import re
import tarfile
from pathlib import Path

import pytest

import m5stream as m5
from m5stream.catalog.s3list import list_prefix
from m5stream.storage import s3
from tests.e2e.test_cli import run_cli
from tests.integration.conftest import BUCKET

KEYS = [
    "hostile/sp ace %25 ?#&=+.tar",
    "hostile/line\nbreak.tar",
    "hostile/tab\tc.tar",
    "hostile/\u00fc \u00e9.tar",
    "hostile/x..y.tar",
    "hostile/" + "/".join(["k" * 200] * 4) + ".tar",  # ~820 bytes (SeaweedFS: <= 255 a part)
]
MEMBERS = ["/tmp/m5-hostile-s3/abs", "../../m5-hostile-s3-up", "n\nl"]


def identity(sample: dict[str, object]) -> dict[str, object]:
    return sample


def _tar(tag: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for m in MEMBERS:
            data = f"{tag}:{m}".encode()
            info = tarfile.TarInfo(f"{m}.bin")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def hostile_objects(s3_endpoint: str) -> list[str]:
    c = s3.client()
    for i, k in enumerate(KEYS):
        c.put(BUCKET, k, _tar(i))
    return [f"s3://{BUCKET}/{k}" for k in KEYS]


@pytest.mark.parametrize("executor", ["inline", "threads", "processes"])
def test_hostile_keys_read_into_hashed_cache_entries(
    hostile_objects: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executor: str
) -> None:
    monkeypatch.chdir(tmp_path)
    cache = Path(os.environ["M5STREAM_CACHE"])
    ds = m5.dataset(hostile_objects)
    assert ds.manifest.num_shards == len(KEYS) and len(ds) == len(KEYS) * len(MEMBERS)
    opts = {"num_workers": 2} if executor == "processes" else {}
    tf = None if executor == "threads" else identity
    got = []
    with m5.Loader(ds, 4, transform=tf, executor=executor, output="numpy", **opts) as lo:
        for b in lo:
            got += [(str(k), bytes(v)) for k, v in zip(b["__key__"], b["bin"])]
    want = [(m, f"{i}:{m}".encode()) for i in range(len(KEYS)) for m in MEMBERS]
    assert got == want
    assert _files(tmp_path) == set()  # nothing in the cwd
    for p in (cache / "shards").glob("*") if (cache / "shards").exists() else []:
        assert re.fullmatch(r"[0-9a-f]{32}(\.[A-Za-z0-9]+)?(\.lock)?", p.name), p.name
    for m in MEMBERS:
        for base in (tmp_path, cache, cache / "shards", cache / "index"):
            assert not os.path.lexists(os.path.normpath(os.path.join(base, m + ".bin")))


def test_refused_keys_are_errors_that_create_nothing(s3_endpoint: str, tmp_path: Path) -> None:
    for key in ("hostile/../../m5-escape.tar", "hostile/nul\0x.tar", "hostile/./dot.tar"):
        with pytest.raises(m5.M5Error) as e:
            m5.dataset([f"s3://{BUCKET}/{key}"])
        assert str(e.value).startswith("S3 HeadObject failed: 400")  # HEAD: no error body
        assert f"uri=s3://{BUCKET}/{key}" in str(e.value)
    assert not os.path.lexists("/m5-escape.tar")
    assert not os.path.lexists(os.path.join(os.environ["M5STREAM_CACHE"], "m5-escape.tar"))


def test_shard_command_rewrites_hostile_keys_to_s3(
    hostile_objects: list[str], tmp_path: Path
) -> None:
    dst = f"s3://{BUCKET}/hostile-out"
    src = f"s3://{BUCKET}/hostile/"
    r = run_cli("shard", src, dst, "--shard-size", "8", cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    keys = [o.key for o in list_prefix(s3.client(), BUCKET, "hostile-out/")]
    n = len(m5.dataset(f"s3://{BUCKET}/hostile/"))
    assert keys == [f"hostile-out/shard-{i:05d}.tar" for i in range(-(-n // 8))]
    back = m5.dataset(f"{dst}/")
    listed = m5.dataset(f"s3://{BUCKET}/hostile/")
    assert [back[i]["__key__"] for i in range(len(back))] == [
        listed[i]["__key__"] for i in range(len(listed))
    ]
    assert {p.split("/")[0] for p in _files(tmp_path)} <= {"cache"}
