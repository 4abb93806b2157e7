"""Hostile names are keys only (issue 16): tar member names and sample keys that are
absolute, hold ``..``, NUL or newlines, or are 4 KiB long name samples, and never a file. No
file is created from them anywhere: not by the readers (any executor), not in the cache
(entries are hashes), not by ``write_shards`` or ``m5stream shard`` (whose only files are the
shards). S3 keys: ``tests/integration/test_hostile_s3.py``."""

from __future__ import annotations

import io
import os
import re
import tarfile
import uuid
from pathlib import Path

import numpy as np
import pytest

import m5stream as m5
from m5stream._cache import cache_dir, cached_index
from m5stream.storage.blobs import _cache_path
from m5stream.writer import write_shards
from tests.e2e.test_cli import run_cli
from tests.fuzzing import pax_block, pax_record

TAG = uuid.uuid4().hex[:8]


def hostile_keys() -> list[str]:
    return [
        f"/tmp/m5-hostile-{TAG}/abs",  # absolute
        f"../../m5-hostile-{TAG}-up",  # climbs out of wherever it would be joined
        f"sub/../../m5-hostile-{TAG}-mid",
        "line\nbreak",
        "tab\tand\rcr",
        "k" * 4096,  # 4 KiB
        "sp ace/\u00fc\u00e9",
        "-rf",
        "~root/x",
    ]


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _write_tar(path: Path, keys: list[str], nul_key: bool = False) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for k in keys:
            for field, data in (("bin", k.encode("utf-8", "surrogateescape")), ("cls", b"1")):
                info = tarfile.TarInfo(f"{k}.{field}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    raw = buf.getvalue().rstrip(b"\0")
    raw += b"\0" * (-len(raw) % 512)
    if nul_key:  # tarfile cuts names at NUL: a PAX path record keeps it
        data = b"nul"
        info = tarfile.TarInfo("placeholder.bin")
        info.size = len(data)
        raw += pax_block(pax_record(b"path", b"nul\0key.bin")) + info.tobuf(tarfile.USTAR_FORMAT)
        raw += data + b"\0" * (-len(data) % 512)
    path.write_bytes(raw + b"\0" * 1024)


def identity(sample: dict[str, object]) -> dict[str, object]:
    """A transform (module level: workers unpickle it), so the row path runs."""
    return sample


def _no_escape(keys: list[str], bases: list[Path]) -> None:
    """No file stands where joining a key to any of ``bases`` would have put it."""
    for k in keys:
        for base in bases:
            for suffix in ("", ".bin", ".cls"):
                target = os.path.normpath(os.path.join(base, k + suffix))
                assert not os.path.lexists(target), target


@pytest.mark.parametrize("executor", ["inline", "threads", "processes"])
def test_member_names_are_keys_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executor: str
) -> None:
    keys = hostile_keys()
    data = tmp_path / "data"
    data.mkdir()
    _write_tar(data / "shard.tar", keys, nul_key=True)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    cache = Path(os.environ["M5STREAM_CACHE"])
    before = _files(tmp_path)
    ds = m5.dataset(str(data / "shard.tar"))
    want = [*keys, "nul\0key"]
    assert [ds[i]["__key__"] for i in range(len(ds))] == want
    assert ds[len(keys)]["bin"] == b"nul"
    opts = {"num_workers": 2} if executor == "processes" else {}
    tf = None if executor == "threads" else identity
    got: list[str] = []
    with m5.Loader(ds, 4, transform=tf, executor=executor, output="numpy", **opts) as lo:
        for b in lo:
            got.extend(str(k) for k in b["__key__"])
            for k, v in zip(b["__key__"], b["bin"]):
                if k != "nul\0key":
                    assert bytes(v) == str(k).encode()
    assert got == want
    assert _files(tmp_path) == before  # nothing new next to the data or in the cwd
    for p in cache.rglob("*"):  # the cache holds hashes only
        if p.is_file():
            assert re.fullmatch(
                r"[a-z-]+-[0-9a-f]{32}\.npz|[0-9a-f]{32}(\.[A-Za-z0-9]+)?(\.lock)?", p.name
            ), p.name
    _no_escape(keys, [data, work, cache, cache / "index", cache / "shards"])


@pytest.mark.parametrize(
    "uri",
    [
        "s3://b/../../etc/passwd.tar",
        "s3://b//abs/x.tar",
        "s3://b/a\nb.tar",
        "s3://b/nul\0x.tar",
        "s3://b/" + "k" * 4096 + ".tar",
        "s3://b/x." + "y" * 300,  # a "suffix" longer than a file name may be
        "s3://b/dir.tar/",
        "s3://b/x.t\nar",
    ],
)
def test_cache_entries_are_hashes(uri: str) -> None:
    path = _cache_path(uri, 123, "etag")
    assert path.parent == cache_dir("shards")
    assert re.fullmatch(r"[0-9a-f]{32}(\.tar)?", path.name), path.name
    assert path.name.endswith(".tar") == uri.endswith(".tar")
    arrays = cached_index("tar", uri, 123, "etag", lambda: {"x": np.arange(3)})
    assert arrays["x"].tolist() == [0, 1, 2]
    assert not os.path.lexists("/etc/passwd.tar")


def test_write_shards_names_files_from_the_prefix_only(tmp_path: Path) -> None:
    keys = hostile_keys()
    out = tmp_path / "out"
    pattern = write_shards(({"__key__": k, "bin": k.encode()} for k in keys), str(out))
    assert _files(tmp_path) == {"out/shard-00000.tar"}
    ds = m5.dataset(pattern)
    assert [ds[i]["__key__"] for i in range(len(ds))] == keys  # keys round-trip exactly
    assert [ds[i]["bin"] for i in range(len(ds))] == [k.encode() for k in keys]
    _no_escape(keys, [out, Path.cwd()])
    for prefix in ("../evil", "/abs", "a/b", "", ".hidden", "nul\0"):
        with pytest.raises(m5.ConfigError, match="must be a plain name"):
            write_shards([{"__key__": "k", "bin": b""}], str(tmp_path / "o2"), prefix=prefix)
    assert not (tmp_path / "evil-00000.tar").exists()
    # a key tar cannot hold is refused, and no half-written shard is left
    with pytest.raises(m5.ConfigError, match="holds a NUL, which tar names cannot"):
        write_shards([{"__key__": "a\0b", "bin": b""}], str(tmp_path / "o3"))
    assert _files(tmp_path / "o3") == set()


def test_shard_command_writes_only_its_shards(tmp_path: Path) -> None:
    keys = hostile_keys()
    src = tmp_path / "src"
    src.mkdir()
    _write_tar(src / "in.tar", keys)
    dst = tmp_path / "dst"
    r = run_cli("shard", str(src / "in.tar"), str(dst), "--shard-size", "4", cache=tmp_path / "c")
    assert r.returncode == 0, r.stderr
    assert _files(dst) == {"shard-00000.tar", "shard-00001.tar", "shard-00002.tar"}
    ds = m5.dataset(str(dst / "shard-{00000..00002}.tar"))
    assert [ds[i]["__key__"] for i in range(len(ds))] == keys
    assert all(ds[i]["bin"] == k.encode() for i, k in enumerate(keys))
    root = Path(__file__).resolve().parents[2]  # the command's cwd
    _no_escape(keys, [dst, src, root])
    # a source key that tar cannot write: a clear error, exit 2, nothing written
    _write_tar(src / "nul.tar", [], nul_key=True)
    r = run_cli("shard", str(src / "nul.tar"), str(tmp_path / "d2"), cache=tmp_path / "c")
    assert r.returncode == 2
    assert "sample key 'nul\\x00key' holds a NUL, which tar names cannot" in r.stderr
    assert _files(tmp_path / "d2") == set()
