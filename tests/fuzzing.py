"""Reader fuzzing: mutated inputs for the tar scanner, JPEG/PNG decode, Parquet, JSONL and CSV,
run in a fork server so that a segfault, a hang or a runaway allocation is an outcome, not the
end of the run.

The contract every input is held to (issue 16): it yields valid samples, or an
:class:`m5stream.M5Error` subclass whose message names the file (or the sample's key, for an
image) and a position in it. Never a crash (signal), a hang (over ``timeout`` seconds), a
``MemoryError`` because a header declared a huge size (children run under an address-space
limit, so such an allocation fails fast instead of swapping), or any other exception type.

Pieces, used by ``tests/unit/test_fuzz_readers.py`` (a fixed, derandomized budget) and by
``scripts/fuzz.py`` (random seeds, a time budget):

- :class:`Sandbox`: a server process (``python -m tests.fuzzing``) that imports m5stream once
  and forks a fresh child per input, so every input starts from the same warm state and no
  crash or leaked state reaches the next one. A child that dies by a signal is a ``crash``,
  one still running after ``timeout`` is killed and is a ``hang``.
- ``TARGETS``: per reader, a function ``(data, workdir) -> summary`` that runs the whole
  user path (manifest, every sample by the row path, every batch by the Loader's block path,
  or decode + crop + materialize for images), and for the tar scanner a differential check of
  the Cython scanner against its pure-Python twin (same members, or the same error message).
- ``INPUTS``: per target, a hypothesis strategy of seed files (valid, made with the real
  writers: tarfile, Pillow, pyarrow) with 0-3 mutations applied: truncation, bit flips, byte
  overwrites, insertions and deletions, huge / negative / base-256 / non-octal declared sizes
  with a fixed-up checksum, PAX records, zero-length members, deeply nested JSON, huge JPEG and
  PNG dimensions.
- :func:`violation`: ``None`` if an outcome keeps the contract, else why not.
"""

from __future__ import annotations

import io
import os
import pickle
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "INPUTS",
    "NAMES",
    "TARGETS",
    "Outcome",
    "Sandbox",
    "image_seeds",
    "pax_block",
    "pax_record",
    "violation",
]

#: address space a child may add to what the warm server already maps
CHILD_EXTRA_AS = 2 << 30

# -- outcomes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one input did: ``kind`` is ``ok``, ``error``, ``crash`` or ``hang``."""

    kind: str
    #: ok: a short summary of what was read; error: ``str(exc)``; crash: the signal
    detail: str = ""
    #: error: the exception's class name, and whether it is an M5Error
    error_type: str = ""
    is_m5: bool = False
    #: error: the formatted traceback (for reports, not for checks)
    trace: str = ""


#: words by which an error message points at a position inside a file
_POSITION_WORDS = (
    "byte",
    "key=",
    "index=",
    "row group",
    "footer",
    "record",
    "row ",
    "line",
    "column",
    "magic",
    "empty",
    "header",
)


def violation(outcome: Outcome, name: str) -> str | None:
    """``None`` when ``outcome`` keeps the contract for an input known as ``name`` (its path,
    or an image's sample key); else a sentence saying how it broke it."""
    if outcome.kind == "ok":
        return None
    if outcome.kind in ("crash", "hang"):
        return f"{outcome.kind}: {outcome.detail}"
    if not outcome.is_m5:
        return f"{outcome.error_type} is not an M5Error: {outcome.detail}\n{outcome.trace}"
    if outcome.error_type == "MemoryError" or "MemoryError" in outcome.detail:
        return f"MemoryError from a declared size: {outcome.detail}"
    if name not in outcome.detail:
        return f"{outcome.error_type} does not name {name!r}: {outcome.detail}"
    if not any(w in outcome.detail.lower() for w in _POSITION_WORDS):
        return f"{outcome.error_type} names no position: {outcome.detail}"
    return None


# -- targets (run in the forked child) -----------------------------------------------------


def _read_dataset(path: str, fmt: str, block: bool = True) -> str:
    """Every sample of the one-file dataset ``path``, by the row path and by the Loader."""
    import numpy as np

    import m5stream as m5

    ds = m5.dataset(path, format=fmt)
    rows = [ds.get(i) for i in range(len(ds))]
    keys = [r["__key__"] for r in rows]
    if block and len(ds):
        with m5.Loader(ds, batch_size=3, executor="threads", output="numpy") as loader:
            got: list[str] = []
            for batch in loader:
                got.extend(str(k) for k in batch["__key__"])
                assert np.asarray(batch["__index__"]).dtype == np.int64
        if got != [str(k) for k in keys]:
            raise AssertionError(f"block path keys {got[:5]} != row path keys {keys[:5]}")
    return f"{len(rows)} samples"


def _file_target(suffix: str, fmt: str, block: bool = True) -> Callable[[bytes, str], str]:
    def run(data: bytes, workdir: str) -> str:
        path = os.path.join(workdir, f"input{suffix}")
        with open(path, "wb") as f:
            f.write(data)
        return _read_dataset(path, fmt, block)

    run.__name__ = f"read_{fmt}"
    return run


def _tarscan_differential(data: bytes, workdir: str) -> str:
    """The Cython scanner and its Python twin agree: same members, or the same error."""
    import numpy as np

    from m5stream._native import tarscan
    from m5stream.formats import tar_reference

    def one(fn: Callable[[Any], Any]) -> tuple[str, Any]:
        try:
            names, offs, sizes = fn(data)
        except ValueError as exc:
            return "error", str(exc)
        return "ok", (list(names), np.asarray(offs).tolist(), np.asarray(sizes).tolist())

    native, ref = one(tarscan.scan), one(tar_reference.scan)
    if native != ref:
        raise AssertionError(f"tarscan {native!r:.300} != tar_reference {ref!r:.300}")
    if native[0] == "error":  # the contract's error, as index_buffer raises it
        from m5stream.formats.tar import index_buffer

        index_buffer(data, "fuzz://tarscan")
    return native[0]


IMAGE_KEY = "fuzz/sample-0"


def _image_target(data: bytes, workdir: str) -> str:
    """Decode as the loader would: DecodeImage, a random crop, flip, normalise, materialize;
    and without DCT scaling (full decode), to reach every row of the entropy-coded data."""
    import numpy as np

    from m5stream import transforms as T
    from m5stream.transforms import apply_transform

    for dct in (True, False):
        tf = T.Compose(
            [
                T.DecodeImage("jpg", dct_scaling=dct, max_pixels=1 << 26),
                T.RandomResizedCrop(24),
                T.RandomHorizontalFlip(),
                T.Normalize(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
            ]
        )
        sample = {"__key__": IMAGE_KEY, "__index__": 0, "jpg": data}
        out = apply_transform(tf, sample, seed=1, epoch=0)
        arr = np.asarray(out["jpg"])
        if arr.shape != (3, 24, 24) or not np.isfinite(arr).all():
            raise AssertionError(f"decoded image has shape {arr.shape}")
    return "decoded"


def _selftest(data: bytes, workdir: str) -> str:
    """The harness's own test: a crash, a hang, a runaway allocation, or nothing wrong."""
    if data == b"segv":
        import ctypes

        ctypes.string_at(0)
    elif data == b"hang":
        while True:
            time.sleep(0.05)
    elif data == b"alloc":
        bytearray(1 << 40)  # past the child's address-space limit: MemoryError at once
    return "fine"


TARGETS: dict[str, Callable[[bytes, str], str]] = {
    "selftest": _selftest,
    "tarscan": _tarscan_differential,
    "tar": _file_target(".tar", "tar"),
    "image": _image_target,
    "parquet": _file_target(".parquet", "parquet"),
    "jsonl": _file_target(".jsonl", "jsonl", block=False),
    "csv": _file_target(".csv", "csv"),
}

#: what :func:`violation` must find in an error for each target's input (the file's name)
NAMES = {
    "tarscan": "fuzz://tarscan",
    "tar": "input.tar",
    "image": IMAGE_KEY,
    "parquet": "input.parquet",
    "jsonl": "input.jsonl",
    "csv": "input.csv",
}


def _run_target(target: str, data: bytes, workdir: str) -> Outcome:
    try:
        return Outcome("ok", TARGETS[target](data, workdir))
    except BaseException as exc:
        from m5stream.errors import M5Error

        return Outcome(
            "error",
            f"{exc}"[:4000],
            type(exc).__name__,
            isinstance(exc, M5Error),
            traceback.format_exc()[-4000:],
        )


# -- the fork server -----------------------------------------------------------------------


def _send(stream: Any, obj: Any) -> None:
    blob = pickle.dumps(obj)
    stream.write(struct.pack("<Q", len(blob)) + blob)
    stream.flush()


def _recv(stream: Any) -> Any:
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError
    (n,) = struct.unpack("<Q", head)
    return pickle.loads(stream.read(n))


def _vm_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _child(target: str, data: bytes, workdir: str, wfd: int) -> None:
    """In the forked child: limits, run, report, exit without unwinding the server's state."""
    try:
        limit = _vm_bytes() + CHILD_EXTRA_AS
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        outcome = _run_target(target, data, workdir)
        blob = pickle.dumps(outcome)
        with os.fdopen(wfd, "wb") as w:
            w.write(blob)
    finally:
        os._exit(0)


def _serve_one(target: str, data: bytes, root: str, n: int, timeout: float) -> Outcome:
    workdir = os.path.join(root, "in", str(n))
    os.makedirs(workdir)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        _child(target, data, workdir, wfd)
    os.close(wfd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    hung = False
    with os.fdopen(rfd, "rb", buffering=0) as r:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                hung = True
                break
            ready, _, _ = select.select([r], [], [], left)
            if not ready:
                continue
            chunk = r.read(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    if hung:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    shutil.rmtree(workdir, ignore_errors=True)
    if hung:
        return Outcome("hang", f"no result after {timeout:.0f} s")
    if os.WIFSIGNALED(status):
        return Outcome("crash", f"killed by {signal.Signals(os.WTERMSIG(status)).name}")
    if not chunks:
        return Outcome("crash", f"exited with status {os.WEXITSTATUS(status)} and no result")
    outcome: Outcome = pickle.loads(b"".join(chunks))
    return outcome


def serve() -> None:
    """The server loop: ``(target, data, timeout)`` requests on stdin, outcomes on stdout."""
    root = os.environ["M5FUZZ_ROOT"]
    os.environ["M5STREAM_CACHE"] = os.path.join(root, "cache")
    # warm: the children start with the modules every target needs already imported
    import numpy  # noqa: F401
    import pyarrow.csv
    import pyarrow.parquet  # noqa: F401
    from PIL import Image  # noqa: F401

    import m5stream
    import m5stream.transforms  # noqa: F401

    inp, out = sys.stdin.buffer, sys.stdout.buffer
    _send(out, "ready")
    n = 0
    while True:
        try:
            target, data, timeout = _recv(inp)
        except EOFError:
            return
        n += 1
        _send(out, _serve_one(target, data, root, n, timeout))


class Sandbox:
    """The client side: start the server, run inputs, close (also a context manager)."""

    def __init__(self, timeout: float = 20.0) -> None:
        self.timeout = timeout
        self.root = tempfile.mkdtemp(prefix="m5fuzz-")
        repo = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ, M5FUZZ_ROOT=self.root, PYTHONPATH=repo)
        env.pop("PYTHONFAULTHANDLER", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzzing"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=repo,
            env=env,
        )
        assert _recv(self.proc.stdout) == "ready"

    def run(self, target: str, data: bytes) -> Outcome:
        _send(self.proc.stdin, (target, bytes(data), self.timeout))
        outcome: Outcome = _recv(self.proc.stdout)
        return outcome

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- inputs: valid seeds made by the real writers, then mutated ----------------------------

_INTERESTING = (0x00, 0xFF, 0x7F, 0x80, 0x01, 0x20, 0x30, 0x37, 0x0A)


@st.composite
def _mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """Generic byte-level mutations: truncate, flip, overwrite, insert, delete, duplicate."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["truncate", "flip", "byte", "insert", "delete", "dup"]))
        n = len(buf)
        pos = draw(st.integers(0, max(n - 1, 0)))
        if op == "truncate":
            del buf[pos:]
        elif op == "flip" and n:
            buf[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte" and n:
            buf[pos] = draw(st.sampled_from(_INTERESTING))
        elif op == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del buf[pos : pos + draw(st.integers(1, 64))]
        elif op == "dup":
            buf[pos:pos] = buf[pos : pos + draw(st.integers(1, 600))]
    return bytes(buf)


# tar ---------------------------------------------------------------------------------------

_TAR_NAMES = st.sampled_from(
    [
        "a.jpg",
        "a.cls",
        "dir/b.txt",
        "./c.bin",
        "d" * 120 + "/" + "e" * 90 + ".jpg",  # > 100 bytes: ustar prefix, GNU L or PAX path
        "n\u00e9e.json",  # non-ASCII: PAX path
        "x",
        "/abs/p.png",
        "../up.txt",
        "s.tar.gz",
    ]
)


@st.composite
def _tar_seed(draw: st.DrawFn) -> bytes:
    fmt = draw(st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8") as tf:
        for _ in range(draw(st.integers(0, 4))):
            name = draw(_TAR_NAMES)
            if fmt == tarfile.USTAR_FORMAT and (len(name) > 100 or not name.isascii()):
                name = "long.txt"
            info = tarfile.TarInfo(name)
            kind = draw(st.sampled_from(["file", "file", "file", "dir", "link"]))
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            elif kind == "link":
                info.type = tarfile.SYMTYPE
                info.linkname = "a.jpg"
                tf.addfile(info)
            else:
                data = draw(st.binary(max_size=700))  # zero-length members included
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    if draw(st.booleans()):  # no end-of-archive blocks (GNU tar accepts it)
        raw = raw.rstrip(b"\0")
        raw += b"\0" * (-len(raw) % 512)
    return raw


def _fix_checksum(buf: bytearray, pos: int) -> None:
    block = buf[pos : pos + 512]
    if len(block) < 512:
        return
    block[148:156] = b" " * 8
    buf[pos + 148 : pos + 156] = b"%06o\0 " % sum(block)


def pax_record(key: bytes, value: bytes) -> bytes:
    """One well-formed PAX record, ``LEN key=value\n`` (LEN counts itself)."""
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n += 1
    return str(n).encode() + body


_SIZE_FIELDS = st.sampled_from(
    [
        b"77777777777\0",  # 8 GiB - 1, octal
        b"\x80" + b"\xff" * 11,  # base-256, 2**95-ish: past int64
        b"\x80\x00\x00\x00\x00\x00\x00\x00\x7f\xff\xff\xff",  # base-256, 2 GiB
        b"\xff" * 12,  # base-256 negative (-1)
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\x00",  # base-256 negative (-512)
        b"00000000000\0",  # zero
        b"0000000001\0\0",
        b"-0000000001\0",  # not octal
        b"0000000009\0\0",
        b"           \0",
    ]
)

_PAX_RECORDS = st.sampled_from(
    [
        pax_record(b"size", b"-512"),
        pax_record(b"size", b"-1536"),  # points back at the PAX header itself
        pax_record(b"size", b"-1"),
        pax_record(b"size", b"1" + b"0" * 29),
        pax_record(b"size", b"abc"),
        pax_record(b"size", b"1_0"),
        pax_record(b"size", b" 1024"),
        pax_record(b"size", b"0"),
        pax_record(b"path", b"../../etc/x"),
        pax_record(b"path", b"/abs/file.j"),
        pax_record(b"path", b"a\nb.jpg"),
        pax_record(b"path", b"a\0b.c"),
        pax_record(b"path", b"p" * 4096 + b".txt"),
        b"13 size=-512\n\n",  # LEN one short
        b"999999 path=x\n",
        b"0 path=x\n",
        b"5 x=y\n",
        b"nospace\n",
        b"9 =empty\n",
        b"3 \n",
    ]
)


def pax_block(records: bytes) -> bytes:
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = len(records)
    head = info.tobuf(tarfile.USTAR_FORMAT)
    return head + records + b"\0" * (-len(records) % 512)


@st.composite
def _tar_input(draw: st.DrawFn) -> bytes:
    buf = bytearray(draw(_tar_seed()))
    blocks = len(buf) // 512
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["size", "pax", "typeflag", "bytes"]))
        if op == "size" and blocks:
            pos = 512 * draw(st.integers(0, blocks - 1))
            buf[pos + 124 : pos + 136] = draw(_SIZE_FIELDS)
            if draw(st.booleans()):
                _fix_checksum(buf, pos)
        elif op == "pax":
            pos = 512 * draw(st.integers(0, blocks))
            recs = b"".join(draw(st.lists(_PAX_RECORDS, min_size=1, max_size=3)))
            buf[pos:pos] = pax_block(recs)
            blocks = len(buf) // 512
        elif op == "typeflag" and blocks:
            pos = 512 * draw(st.integers(0, blocks - 1))
            buf[pos + 156] = draw(st.sampled_from(b"0\x0057LKxg1"))
            _fix_checksum(buf, pos)
        else:
            buf = bytearray(draw(_mutated(bytes(buf))))
            blocks = len(buf) // 512
    return bytes(buf)


# images ------------------------------------------------------------------------------------


def image_seeds() -> list[bytes]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(7)
    rgb = Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
    gray = rgb.convert("L")
    out = []

    def enc(img: Any, fmt: str, **kw: Any) -> bytes:
        b = io.BytesIO()
        img.save(b, fmt, **kw)
        return b.getvalue()

    exif = Image.Exif()
    exif[0x0112] = 6
    out.append(enc(rgb, "JPEG", quality=80))
    out.append(enc(rgb, "JPEG", quality=60, progressive=True))
    out.append(enc(gray, "JPEG"))
    out.append(enc(rgb, "JPEG", exif=exif.tobytes(), subsampling=0))
    out.append(enc(rgb.convert("CMYK"), "JPEG"))
    out.append(enc(rgb, "PNG"))
    out.append(enc(rgb.convert("P"), "PNG"))
    out.append(enc(gray.convert("LA"), "PNG"))
    return out


_IMAGE_SEEDS: list[bytes] = []


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@st.composite
def _image_input(draw: st.DrawFn) -> bytes:
    if not _IMAGE_SEEDS:
        _IMAGE_SEEDS.extend(image_seeds())
    buf = bytearray(draw(st.sampled_from(_IMAGE_SEEDS)))
    if draw(st.booleans()):  # huge declared dimensions, in a header that still parses
        dim = draw(st.sampled_from([0, 1, 0x7FFF, 0xFFFF, 40000]))
        if buf[:2] == b"\xff\xd8":
            for marker in (b"\xff\xc0", b"\xff\xc2"):
                at = buf.find(marker)
                if at >= 0:
                    field = draw(st.sampled_from([5, 7]))  # height, width
                    buf[at + field : at + field + 2] = struct.pack(">H", dim)
        else:  # PNG: IHDR is the first chunk; keep its CRC right
            w, h = struct.unpack(">II", buf[16:24])
            w = dim if draw(st.booleans()) else w
            h = dim * 1000 if draw(st.booleans()) else h
            ihdr = struct.pack(">II", w, h) + bytes(buf[24:29])
            buf[8:33] = _png_chunk(b"IHDR", ihdr)
    return draw(_mutated(bytes(buf)))


# Parquet ------------------------------------------------------------------------------------


@st.composite
def _parquet_seed(draw: st.DrawFn) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = draw(st.integers(0, 12))
    table = pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "name": [f"row {i}" if i % 3 else None for i in range(n)],
            "blob": [bytes([i]) * (i % 5) for i in range(n)],
            "tags": [[i, i + 1][: i % 3] for i in range(n)],
        }
    )
    b = io.BytesIO()
    pq.write_table(
        table,
        b,
        row_group_size=draw(st.sampled_from([2, 5, 100])),
        compression=draw(st.sampled_from(["none", "snappy", "zstd", "gzip"])),
        use_dictionary=draw(st.booleans()),
        write_statistics=draw(st.booleans()),
        data_page_version=draw(st.sampled_from(["1.0", "2.0"])),
    )
    return b.getvalue()


@st.composite
def _parquet_input(draw: st.DrawFn) -> bytes:
    buf = bytearray(draw(_parquet_seed()))
    if draw(st.booleans()) and len(buf) >= 8:  # huge or wrong declared footer length
        buf[-8:-4] = struct.pack("<I", draw(st.sampled_from([0, 1, 0x7FFFFFFF, 0xFFFFFFFF])))
    return draw(_mutated(bytes(buf)))


# JSONL ---------------------------------------------------------------------------------------

_JSON_LINES = st.sampled_from(
    [
        b'{"id": 1, "text": "a"}',
        b'{"id": 2, "nested": {"a": [1, 2, {"b": null}]}}',
        b'{"u": "\\u00e9\\ud83d\\ude00"}',
        b'{"lone": "\\ud800"}',
        b'{"big": 1e999}',
        b'{"n": ' + b"9" * 5000 + b"}",
        b'{"id": 3}\r',
        b"[1, 2]",
        b'"a string"',
        b"null",
        b"   ",
        b'{"a": "\xff\xfe"}',
        b'{"a": 1,}',
        b"{" * 3 + b"}" * 3,
        b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # deeply nested
        b'{"x": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}",
        b"[" * 1_000_000,  # nested, unterminated
        b'{"a": NaN}',
        b'{"dup": 1, "dup": 2}',
        b"\x00",
    ]
)


@st.composite
def _jsonl_input(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(_JSON_LINES, max_size=5))
    data = b"\n".join(lines) + draw(st.sampled_from([b"", b"\n", b"\r\n"]))
    return draw(_mutated(data))


# CSV -----------------------------------------------------------------------------------------

_CSV_ROWS = st.sampled_from(
    [
        b"1,hello,0.5",
        b'2,"quoted, comma",1.5',
        b'3,"multi\nline",2',
        b'4,"unterminated,3',
        b"5,extra,1,2,3",
        b"6",
        b"7,\xff\xfe,1",
        b"8,,",
        b'9,"a ""q"" b",4',
        b"x" * 10_000 + b",1,2",
        b"",
    ]
)


@st.composite
def _csv_input(draw: st.DrawFn) -> bytes:
    header = draw(st.sampled_from([b"id,text,score", b"id,id,score", b"", b'"a",b']))
    rows = draw(st.lists(_CSV_ROWS, max_size=6))
    return draw(_mutated(b"\n".join([header, *rows]) + b"\n"))


INPUTS: dict[str, st.SearchStrategy[bytes]] = {
    "tarscan": _tar_input(),
    "tar": _tar_input(),
    "image": _image_input(),
    "parquet": _parquet_input(),
    "jsonl": _jsonl_input(),
    "csv": _csv_input(),
}

if __name__ == "__main__":
    # through the package, so that pickled outcomes name tests.fuzzing.Outcome, not __main__
    from tests.fuzzing import serve as _serve

    _serve()
