"""Fuzzed readers (issue 16): mutated tar, JPEG/PNG, Parquet, JSONL and CSV inputs give valid
samples or an ``M5Error`` naming the file and a position, never a crash, a hang, a
``MemoryError`` from a declared size or another exception type.

The inputs run in the fork server of ``tests/fuzzing.py`` (a child per input, under an
address-space limit and a timeout), so a segfault or a hang fails the test with the input
instead of killing pytest. The property tests are derandomized with a fixed budget per target
(about a minute in all on 2 cores); ``scripts/fuzz.py`` runs the same properties with random
seeds for as long as it is given. Below them, every bug the fuzzing found, as a regression
test with its minimal input, run through the same sandbox.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzzing import (
    INPUTS,
    NAMES,
    Outcome,
    Sandbox,
    image_seeds,
    pax_block,
    pax_record,
    violation,
)

pytestmark = pytest.mark.slow

#: examples per target in CI (~50 inputs/s for the scanner, ~20/s through a Loader)
BUDGET = {"tarscan": 600, "tar": 250, "image": 250, "parquet": 250, "jsonl": 150, "csv": 150}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(timeout=20.0) as sb:
        yield sb


def _property(target: str):  # type: ignore[no-untyped-def]
    @settings(
        max_examples=BUDGET[target],
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=INPUTS[target])
    def check(sandbox: Sandbox, data: bytes) -> None:
        outcome = sandbox.run(target, data)
        problem = violation(outcome, NAMES[target])
        assert problem is None, problem

    return check


test_fuzz_tar_scanner_matches_its_twin = _property("tarscan")
test_fuzz_tar_shards = _property("tar")
test_fuzz_images = _property("image")
test_fuzz_parquet = _property("parquet")
test_fuzz_jsonl = _property("jsonl")
test_fuzz_csv = _property("csv")


def test_sandbox_reports_crashes_and_hangs() -> None:
    """The harness itself: a segfault and a hang are outcomes, not the end of the run."""
    with Sandbox(timeout=2.0) as sb:
        assert sb.run("selftest", b"segv") == Outcome("crash", "killed by SIGSEGV")
        assert sb.run("selftest", b"hang") == Outcome("hang", "no result after 2 s")
        big = sb.run("selftest", b"alloc")
        assert big.kind == "error" and big.error_type == "MemoryError"
        assert violation(big, "x") is not None
        assert sb.run("selftest", b"ok") == Outcome("ok", "fine")


# -- regressions: each input is the minimal one a fuzz run found ---------------------------


def _member(name: str, data: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info.tobuf(tarfile.USTAR_FORMAT) + data + b"\0" * (-len(data) % 512)


def _with_size_field(field: bytes) -> bytes:
    head = bytearray(_member("a.txt", b"hello"))
    head[124:136] = field
    head[148:156] = b" " * 8
    head[148:156] = b"%06o\0 " % sum(head[:512])
    return bytes(head)


def _expect(sb: Sandbox, target: str, data: bytes, error_type: str, message: str) -> None:
    got = sb.run(target, data)
    assert (got.kind, got.error_type) == ("error", error_type), got
    path = f"{sb.root}/in/"
    # the work directory differs per input: compare with it cut out
    detail = got.detail
    if path in detail:
        head, _, tail = detail.partition(path)
        detail = head + "<dir>/" + tail.split("/", 1)[1]
    assert detail == message
    assert violation(got, NAMES[target]) is None


TAR_REGRESSIONS = {
    # PAX size=-1536 pointed the next header back at the PAX header: the scan looped forever
    "pax negative size (hang)": (
        pax_block(pax_record(b"size", b"-1536")) + _member("a.txt", b"hello"),
        "bad tar member size in pax header at byte 1024",
    ),
    # size=-512 listed the member twice, once with a negative size
    "pax size -512 (member twice)": (
        pax_block(pax_record(b"size", b"-512")) + _member("a.txt", b"hello"),
        "bad tar member size in pax header at byte 1024",
    ),
    # a 30-digit PAX size raised OverflowError converting to int64
    "pax size past int64 (OverflowError)": (
        pax_block(pax_record(b"size", b"1" + b"0" * 29)) + _member("a.txt", b"x"),
        "bad tar member size in pax header at byte 1024",
    ),
    # a PAX record without "LEN " raised "subsection not found" / int() errors: no position
    "pax record without length": (
        pax_block(b"nospace\n") + _member("a.txt", b"x"),
        "bad pax record at byte 512",
    ),
    # a record whose LEN runs past the header's data
    "pax record length past the data": (
        pax_block(b"999999 path=x\n") + _member("a.txt", b"x"),
        "bad pax record at byte 512",
    ),
    # negative base-256 (GNU, 0xff...) was read as a huge positive size by the twin and as
    # something else (signed overflow) by the Cython scanner
    "base-256 negative size": (
        _with_size_field(b"\xff" * 12),
        "bad tar member size at byte 0",
    ),
    # base-256 with 95 significant bits overflowed int64 (undefined behaviour in C)
    "base-256 size past int64": (
        _with_size_field(b"\x80" + b"\xff" * 11),
        "bad tar member size at byte 0",
    ),
}


@pytest.mark.parametrize("case", sorted(TAR_REGRESSIONS))
def test_tar_regressions(sandbox: Sandbox, case: str) -> None:
    data, message = TAR_REGRESSIONS[case]
    # the scanner and its twin agree (the differential target), then the whole reader path
    _expect(
        sandbox,
        "tarscan",
        data,
        "CorruptData",
        f"corrupt tar shard: {message} [uri=fuzz://tarscan]",
    )
    _expect(
        sandbox, "tar", data, "CorruptData", f"corrupt tar shard: {message} [uri=<dir>/input.tar]"
    )


def test_tar_hostile_base256_sizes_still_read_when_valid(sandbox: Sandbox) -> None:
    # base-256 is legal for sizes that fit: a 5-byte member declared in base 256 reads fine
    data = _with_size_field(b"\x80" + b"\0" * 10 + b"\x05") + b"\0" * 1024
    assert sandbox.run("tar", data) == Outcome("ok", "1 samples")


def test_jsonl_deep_nesting_is_corrupt_data(sandbox: Sandbox) -> None:
    # json.loads raised RecursionError (a RuntimeError), not an M5Error
    line = b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    _expect(
        sandbox,
        "jsonl",
        b'{"a": 1}\n' + line + b"\n",
        "CorruptData",
        "invalid JSON: nested too deeply to parse [uri=<dir>/input.jsonl "
        f"key=input.jsonl:2 byte_range=9-{9 + len(line) - 1} index=1]",
    )


def test_csv_repeated_header_name_is_corrupt_data(sandbox: Sandbox) -> None:
    # ColumnBlock raised pyarrow's KeyError ('Field "id" exists 2 times in schema')
    _expect(
        sandbox,
        "csv",
        b"id,id,score\n8,,\n",
        "CorruptData",
        "malformed CSV: the header names column(s) ['id'] more than once [uri=<dir>/input.csv]",
    )


def test_csv_header_that_is_not_utf8_is_corrupt_data(sandbox: Sandbox) -> None:
    # pyarrow raised UnicodeDecodeError for a header name that is not UTF-8
    got = sandbox.run("csv", b"i\xd3d,b\n1,2\n")
    assert (got.kind, got.error_type) == ("error", "CorruptData"), got
    assert got.detail.startswith("malformed CSV: 'utf-8' codec can't decode byte 0xd3")
    assert violation(got, NAMES["csv"]) is None


def test_valid_inputs_read(sandbox: Sandbox) -> None:
    """The targets do read valid files (a fuzz target that always errors would prove
    nothing)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name in ("a.jpg", "a.cls", "n\u00e9e.txt", "/abs/p.png", "../up.txt"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tf.addfile(info, io.BytesIO(b"abc"))
    assert sandbox.run("tar", buf.getvalue()) == Outcome("ok", "4 samples")
    assert sandbox.run("tarscan", buf.getvalue()) == Outcome("ok", "ok")
    lines = b"\n".join(json.dumps({"i": i}).encode() for i in range(4))
    assert sandbox.run("jsonl", lines) == Outcome("ok", "4 samples")
    assert sandbox.run("csv", b"a,b\n1,x\n2,y\n") == Outcome("ok", "2 samples")
    for image in image_seeds():  # JPEG (baseline, progressive, grey, EXIF, CMYK) and PNG
        assert sandbox.run("image", image) == Outcome("ok", "decoded")
    table = pa.table({"id": list(range(7)), "s": [str(i) for i in range(7)]})
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=3)
    assert sandbox.run("parquet", out.getvalue()) == Outcome("ok", "7 samples")


def test_parquet_string_that_is_not_utf8_is_corrupt_data(sandbox: Sandbox) -> None:
    # found by scripts/fuzz.py (15 min): the Parquet reader does not check UTF-8, so the value
    # failed later, in the batch builder, with a bare UnicodeDecodeError
    bad = pa.array([b"ok", b"\xff"], pa.binary()).view(pa.string())
    out = io.BytesIO()
    pq.write_table(pa.table({"id": [0, 1], "s": bad}), out)
    _expect(
        sandbox,
        "parquet",
        out.getvalue(),
        "CorruptData",
        "corrupt Parquet row group 0: Column 1: In chunk 0: Invalid: Invalid UTF8 sequence at "
        "string index 1 [uri=<dir>/input.parquet index=0]",
    )
