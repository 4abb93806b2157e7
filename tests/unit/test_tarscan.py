"""The Cython tar scanner against its pure-Python twin and against the tarfile module."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from m5stream._native import tarscan
from m5stream.formats import tar_reference


def _archive(fmt: int, members: list[tuple[str, bytes | None, bytes]], end: bool = True) -> bytes:
    """members: (name, data or None for a directory, typeflag)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            if kind == tarfile.DIRTYPE:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            elif kind == tarfile.SYMTYPE:
                info.type = tarfile.SYMTYPE
                info.linkname = "target"
                tf.addfile(info)
            else:
                assert data is not None
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    if not end:
        raw = raw.rstrip(b"\0")
        raw += b"\0" * (-len(raw) % 512)
    return raw


def _tarfile_index(raw: bytes) -> tuple[list[bytes], list[int], list[int]]:
    names, offs, sizes = [], [], []
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        for m in tf.getmembers():
            if m.isreg():
                names.append(m.name.encode())
                offs.append(m.offset_data)
                sizes.append(m.size)
    return names, offs, sizes


LONG = "d" * 120 + "/" + "x" * 90 + ".jpg"
CASES = {
    "ustar": (
        tarfile.USTAR_FORMAT,
        [
            ("a.jpg", b"123", tarfile.REGTYPE),
            ("a.cls", b"7", tarfile.REGTYPE),
            ("dir", None, tarfile.DIRTYPE),
            ("dir/b.txt", b"", tarfile.REGTYPE),
            ("pre/" * 30 + "c.bin", b"x" * 1000, tarfile.REGTYPE),
        ],
    ),
    "gnu_longname": (
        tarfile.GNU_FORMAT,
        [
            (LONG, b"long" * 300, tarfile.REGTYPE),
            ("short.txt", b"s", tarfile.REGTYPE),
            ("link", None, tarfile.SYMTYPE),
        ],
    ),
    "pax": (
        tarfile.PAX_FORMAT,
        [(LONG, b"p" * 513, tarfile.REGTYPE), ("ünïcode.txt", b"u", tarfile.REGTYPE)],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("end", [True, False])
def test_scan_matches_reference_and_tarfile(case: str, end: bool) -> None:
    fmt, members = CASES[case]
    raw = _archive(fmt, members, end=end)
    names, offs, sizes = tarscan.scan(raw)
    rnames, roffs, rsizes = tar_reference.scan(raw)
    tnames, toffs, tsizes = _tarfile_index(raw)
    assert names == rnames == tnames
    assert offs.tolist() == roffs.tolist() == toffs
    assert sizes.tolist() == rsizes.tolist() == tsizes
    for (_, data, _), off, size in zip([m for m in members if m[1] is not None], offs, sizes):
        assert raw[off : off + size] == data


def test_empty_archive() -> None:
    for scan in (tarscan.scan, tar_reference.scan):
        names, offs, sizes = scan(b"")
        assert names == [] and len(offs) == len(sizes) == 0 and offs.dtype == np.int64


@pytest.mark.parametrize("scan", [tarscan.scan, tar_reference.scan], ids=["cython", "python"])
def test_damage_is_reported_with_its_byte_offset(scan: object) -> None:
    raw = bytearray(_archive(tarfile.USTAR_FORMAT, CASES["ustar"][1]))
    bad = bytearray(raw)
    bad[512 * 2 + 10] ^= 0xFF  # second member's header name -> checksum no longer matches
    with pytest.raises(ValueError, match=r"bad tar header checksum at byte 1024"):
        scan(bytes(bad))  # type: ignore[operator]
    with pytest.raises(ValueError, match=r"truncated tar member data at byte 512"):
        scan(bytes(raw[:514]))  # type: ignore[operator]
    with pytest.raises(ValueError, match=r"truncated tar header at byte 1024"):
        scan(bytes(raw[: 1024 + 100]))  # type: ignore[operator]
