"""Pure-Python twin of the Cython tar scanner (``m5stream._native.tarscan.scan``).

Same inputs, same outputs, same error messages; the tests hold the two to each other.
"""

from __future__ import annotations

import numpy as np

__all__ = ["scan"]


def _number(b: bytes) -> int:
    if b and b[0] & 0x80:
        if b[0] & 0x40:  # negative base-256
            return -1
        value = b[0] & 0x3F
        for c in b[1:]:
            value = (value << 8) | c
        return value if value < 1 << 63 else -1
    s = b.replace(b"\0", b" ").strip()
    s = s.split(b" ")[0] if s else b""
    if not s:
        return 0
    if any(c < 48 or c > 55 for c in s):
        return -1
    return int(s, 8)


def _checksum_ok(h: bytes) -> bool:
    stored = _number(h[148:156])
    hh = h[:148] + b" " * 8 + h[156:]
    return stored in (sum(hh), sum(c - 256 if c > 127 else c for c in hh))


def _cstr(b: bytes) -> bytes:
    return b.split(b"\0", 1)[0]


def _pax(data: bytes, base: int) -> dict[bytes, bytes]:
    out = {}
    i = 0
    n = len(data)
    while i < n and data[i] != 0:
        sp = data.find(b" ", i, min(n, i + 20))
        digits = data[i:sp] if sp > i else b""
        length = int(digits) if digits.isdigit() else -1
        if length <= sp - i + 1 or length > n - i or data[i + length - 1] != 10:
            raise ValueError(f"bad pax record at byte {base + i}")
        key, eq, value = data[sp + 1 : i + length - 1].partition(b"=")
        if not eq:
            raise ValueError(f"bad pax record at byte {base + i}")
        out[key] = value
        i += length
    return out


def _pax_size(value: bytes, pos: int) -> int:
    if not (value.isdigit() and len(value) <= 18):
        raise ValueError(f"bad tar member size in pax header at byte {pos}")
    return int(value)


def scan(buf: bytes) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    n = len(buf)
    pos = 0
    names: list[bytes] = []
    offsets: list[int] = []
    sizes: list[int] = []
    long_name: bytes | None = None
    pax: dict[bytes, bytes] | None = None
    while pos != n:
        if pos + 512 > n:
            raise ValueError(f"truncated tar header at byte {pos}")
        h = bytes(buf[pos : pos + 512])
        if h == b"\0" * 512:
            break
        if not _checksum_ok(h):
            raise ValueError(f"bad tar header checksum at byte {pos}")
        size = _number(h[124:136])
        if size < 0:
            raise ValueError(f"bad tar member size at byte {pos}")
        typeflag = h[156]
        data_pos = pos + 512
        if pax is not None and b"size" in pax:
            size = _pax_size(pax[b"size"], pos)
        if size > n - data_pos:
            raise ValueError(
                f"truncated tar member data at byte {data_pos} "
                f"(header at byte {pos} declares {size} bytes)"
            )
        if typeflag == ord("L"):
            long_name = _cstr(bytes(buf[data_pos : data_pos + size]))
        elif typeflag == ord("x"):
            pax = _pax(bytes(buf[data_pos : data_pos + size]), data_pos)
        elif typeflag == ord("g"):
            pass
        else:
            if typeflag in (ord("0"), 0, ord("7")):
                if pax is not None and b"path" in pax:
                    name = pax[b"path"]
                elif long_name is not None:
                    name = long_name
                else:
                    name = _cstr(h[:100])
                    if h[257:262] == b"ustar":
                        prefix = _cstr(h[345:500])
                        if prefix:
                            name = prefix + b"/" + name
                names.append(name)
                offsets.append(data_pos)
                sizes.append(size)
            long_name = None
            pax = None
        pos = data_pos + ((size + 511) // 512) * 512
    return names, np.asarray(offsets, dtype=np.int64), np.asarray(sizes, dtype=np.int64)
