"""AutoResume: checkpoints of model/optimizer state *and* the loader position, to S3 or disk.

A checkpoint is a directory (local) or prefix (``s3://bucket/run/step-000100``) holding
``state.pt`` (``torch.save`` of the caller's state dict), ``loader.json`` (the loader's
:meth:`~m5stream.Loader.state_dict`) and, written last, ``MANIFEST.json`` (every file's size
and SHA-256, the step, the time). A checkpoint without a manifest, or whose files do not match
it, is incomplete and never used: a job killed mid-upload resumes from the previous one.

``save(..., blocking=False)`` serialises the state into memory in the calling thread (so the
training loop may change its tensors right after) and uploads in a background thread -
multipart through the AWS CRT for S3 - while training continues; saves run one after another
in the order they were made. ``latest(prefix)`` finds the newest complete checkpoint under a
prefix and ``load(uri, loader=...)`` restores both the state and the loader position.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import posixpath
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ._fork import on_fork_in_child
from .catalog.s3list import list_prefix
from .errors import CorruptData, NotFound
from .storage.s3 import S3Config, client, parse_s3_uri

__all__ = ["latest", "load", "save", "wait"]

MANIFEST = "MANIFEST.json"
_FORMAT = "m5stream.checkpoint/1"
_POOL: ThreadPoolExecutor | None = None
_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(1, thread_name_prefix="m5stream-checkpoint")
        return _POOL


@on_fork_in_child
def _forget_pool() -> None:  # a forked child has no upload thread
    global _POOL
    _POOL = None


def _is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def _write(uri: str, name: str, data: bytes, s3: S3Config | None) -> None:
    if _is_s3(uri):
        bucket, key = parse_s3_uri(uri.rstrip("/") + "/" + name)
        client(s3).put(bucket, key, data)
        return
    path = Path(uri) / name
    tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read(uri: str, name: str, s3: S3Config | None) -> bytes:
    if _is_s3(uri):
        bucket, key = parse_s3_uri(uri.rstrip("/") + "/" + name)
        return client(s3).get(bucket, key)
    try:
        return (Path(uri) / name).read_bytes()
    except FileNotFoundError:
        raise NotFound("no such checkpoint file", uri=str(Path(uri) / name)) from None


def _upload(uri: str, files: dict[str, bytes], meta: dict[str, Any], s3: S3Config | None) -> str:
    if not _is_s3(uri):
        Path(uri).mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        _write(uri, name, data, s3)
    manifest = {
        "format": _FORMAT,
        **meta,
        "files": {
            n: {"size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for n, d in files.items()
        },
    }
    _write(uri, MANIFEST, json.dumps(manifest, indent=1).encode(), s3)  # last: complete
    return uri


def save(
    uri: str,
    state: dict[str, Any],
    *,
    loader: Any = None,
    step: int | None = None,
    blocking: bool = False,
    s3: S3Config | None = None,
) -> Future[str]:
    """Write a checkpoint to ``uri`` (a directory or ``s3://`` prefix); see module docstring.

    Returns a future (``.result()`` waits and re-raises an upload error); with ``blocking``
    it has already completed.
    """
    import torch  # optional and heavy: importing m5stream.checkpoint loads no torch

    buf = io.BytesIO()
    torch.save(state, buf)  # in the caller's thread: a consistent snapshot of the tensors
    files = {"state.pt": buf.getvalue()}
    if loader is not None:
        files["loader.json"] = json.dumps(loader.state_dict()).encode()
    meta = {
        "step": step,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if blocking:
        done: Future[str] = Future()
        done.set_result(_upload(uri, files, meta, s3))
        return done
    return _pool().submit(_upload, uri, files, meta, s3)


def wait() -> None:
    """Wait for every checkpoint upload started so far (e.g. before the process exits)."""
    _pool().submit(lambda: None).result()


def _manifest(uri: str, s3: S3Config | None) -> dict[str, Any] | None:
    """The checkpoint's manifest if the checkpoint is complete, else ``None``."""
    try:
        m = json.loads(_read(uri, MANIFEST, s3))
    except (NotFound, ValueError):
        return None
    if m.get("format") != _FORMAT:
        return None
    return m


def _candidates(prefix: str, s3: S3Config | None) -> list[str]:
    """Checkpoint locations directly under ``prefix`` that have a manifest."""
    if _is_s3(prefix):
        bucket, key = parse_s3_uri(prefix.rstrip("/") + "/")
        out = []
        for o in list_prefix(client(s3), bucket, key):
            if posixpath.basename(o.key) == MANIFEST:
                out.append(f"s3://{bucket}/{posixpath.dirname(o.key)}")
        return out
    root = Path(prefix)
    if not root.is_dir():
        return []
    return [str(p) for p in root.iterdir() if (p / MANIFEST).is_file()]


def _complete(uri: str, m: dict[str, Any], s3: S3Config | None) -> bool:
    """Every file the manifest names is there, with its size (contents: checked by load)."""
    for name, info in m.get("files", {}).items():
        if _is_s3(uri):
            bucket, key = parse_s3_uri(uri.rstrip("/") + "/" + name)
            try:
                size = client(s3).head(bucket, key).size
            except NotFound:
                return False
        else:
            try:
                size = (Path(uri) / name).stat().st_size
            except OSError:
                return False
        if size != info.get("size"):
            return False
    return True


def _sort_key(uri: str, m: dict[str, Any]) -> tuple[int, str, str]:
    step = m.get("step")
    if step is None:
        found = re.findall(r"\d+", posixpath.basename(uri.rstrip("/")))
        step = int(found[-1]) if found else -1
    return int(step), str(m.get("created", "")), uri


def latest(prefix: str, *, s3: S3Config | None = None) -> str | None:
    """The newest complete checkpoint under ``prefix`` (by step), or ``None``."""
    best: tuple[tuple[int, str, str], str] | None = None
    for uri in _candidates(prefix, s3):
        m = _manifest(uri, s3)
        if m is None or not _complete(uri, m, s3):
            continue
        key = _sort_key(uri, m)
        if best is None or key > best[0]:
            best = (key, uri)
    return best[1] if best else None


def load(
    uri: str,
    *,
    loader: Any = None,
    map_location: Any = "cpu",
    s3: S3Config | None = None,
    **load_state_kw: Any,
) -> dict[str, Any]:
    """The state dict saved at ``uri``; with ``loader``, its position is restored too."""
    import torch  # torch (optional, heavy) only when used (see save)

    m = _manifest(uri, s3)
    if m is None:
        raise NotFound("not a complete checkpoint (no manifest)", uri=uri)
    data = {}
    for name, info in m["files"].items():
        blob = _read(uri, name, s3)
        if len(blob) != info["size"] or hashlib.sha256(blob).hexdigest() != info["sha256"]:
            raise CorruptData("checkpoint file does not match its manifest", uri=uri, key=name)
        data[name] = blob
    state: dict[str, Any] = torch.load(
        io.BytesIO(data["state.pt"]), map_location=map_location, weights_only=False
    )
    if loader is not None:
        if "loader.json" not in data:
            raise NotFound("the checkpoint holds no loader state", uri=uri)
        loader.load_state_dict(json.loads(data["loader.json"]), **load_state_kw)
    return state
