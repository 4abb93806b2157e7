# cython: language_level=3
"""Tar header scanner: builds the index of regular-file members of a tar archive.

Input is the whole archive as a byte buffer (normally an ``mmap`` of the file, so only the
header pages are ever touched). Output is ``(names, offsets, sizes)``: member paths as
``bytes``, and the byte offset and length of each member's data. Understands ustar (with the
155-byte prefix), GNU long names (typeflag ``L``), PAX extended headers (``x``: ``path`` and
``size``; global ``g`` headers are skipped), base-256 sizes, and stops at the first zero block.
Directories, links and other non-regular members are skipped.

Hostile input is data: a declared size that is negative, not a number or past the end of the
buffer is an error, never an allocation, a read outside ``buf`` or a step backwards (so every
archive is scanned in one forward pass). Member names are returned as they are (absolute,
``..``, newlines): they are keys, never paths to create.

Damage is reported as ``ValueError("... at byte N")`` naming the header's offset; the Python
wrapper (``m5stream.formats.tar``) adds the shard's URI. The pure-Python twin is
``m5stream.formats.tar_reference.scan``.
"""
from libc.stdint cimport INT64_MAX, int64_t

import numpy as np


cdef bint is_zero_block(const unsigned char[::1] buf, Py_ssize_t pos) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(pos, pos + 512):
        if buf[i] != 0:
            return False
    return True


cdef int64_t parse_number(const unsigned char[::1] buf, Py_ssize_t pos, Py_ssize_t width) noexcept nogil:
    # Octal (NUL/space padded) or GNU base-256 (high bit of the first byte set). -1 if invalid:
    # not octal, negative (base-256 with the sign bit set), or not representable in 63 bits,
    # so a hostile header can neither overflow the arithmetic below nor move the scan back.
    cdef int64_t value = 0
    cdef Py_ssize_t i
    cdef unsigned char c
    if buf[pos] & 0x80:
        if buf[pos] & 0x40:
            return -1
        value = buf[pos] & 0x3F
        for i in range(pos + 1, pos + width):
            if value > (INT64_MAX >> 8):
                return -1
            value = (value << 8) | buf[i]
        return value
    i = pos
    while i < pos + width and (buf[i] == 32 or buf[i] == 0):
        i += 1
    while i < pos + width:
        c = buf[i]
        if c == 0 or c == 32:
            break
        if c < 48 or c > 55:
            return -1
        value = value * 8 + (c - 48)  # at most 12 octal digits: 36 bits, no overflow
        i += 1
    return value


cdef bint checksum_ok(const unsigned char[::1] buf, Py_ssize_t pos) noexcept nogil:
    cdef int64_t stored = parse_number(buf, pos + 148, 8)
    cdef int64_t unsigned_sum = 0, signed_sum = 0
    cdef Py_ssize_t i
    cdef unsigned char c
    for i in range(512):
        if 148 <= i < 156:
            c = 32
        else:
            c = buf[pos + i]
        unsigned_sum += c
        signed_sum += <signed char>c
    return stored == unsigned_sum or stored == signed_sum


cdef bytes _cstring(const unsigned char[::1] buf, Py_ssize_t pos, Py_ssize_t width):
    cdef Py_ssize_t end = pos
    while end < pos + width and buf[end] != 0:
        end += 1
    return bytes(buf[pos:end])


def _pax_records(bytes data, Py_ssize_t base):
    # "LEN KEY=VALUE\n" records; LEN (decimal) counts the whole record, newline included.
    # ``base`` is the byte offset of ``data`` in the archive, for the error message.
    out = {}
    cdef Py_ssize_t i = 0, n = len(data), sp, length
    while i < n and data[i] != 0:
        sp = data.find(b" ", i, min(n, i + 20))
        digits = data[i:sp] if sp > i else b""
        length = int(digits) if digits.isdigit() else -1
        if length <= sp - i + 1 or length > n - i or data[i + length - 1] != 10:
            raise ValueError(f"bad pax record at byte {base + i}")
        key, eq, value = data[sp + 1:i + length - 1].partition(b"=")
        if not eq:
            raise ValueError(f"bad pax record at byte {base + i}")
        out[key] = value
        i += length
    return out


def _pax_size(bytes value, Py_ssize_t pos):
    # decimal digits only (no sign, space or "_" that int() would take), at most 18 of them,
    # so the size is never negative and data_pos + size cannot overflow
    if not (value.isdigit() and len(value) <= 18):
        raise ValueError(f"bad tar member size in pax header at byte {pos}")
    return int(value)


def scan(const unsigned char[::1] buf):
    """Index the regular members of the tar archive in ``buf``.

    Returns ``(names: list[bytes], offsets: int64[n], sizes: int64[n])``.
    """
    cdef Py_ssize_t n = buf.shape[0]
    cdef Py_ssize_t pos = 0, data_pos
    cdef int64_t size
    cdef unsigned char typeflag
    names = []
    offsets = []
    sizes = []
    long_name = None
    pax = None
    while True:
        if pos == n:
            break  # archive without end-of-archive blocks: accepted, as GNU tar does
        if pos + 512 > n:
            raise ValueError(f"truncated tar header at byte {pos}")
        if is_zero_block(buf, pos):
            break
        if not checksum_ok(buf, pos):
            raise ValueError(f"bad tar header checksum at byte {pos}")
        size = parse_number(buf, pos + 124, 12)
        if size < 0:
            raise ValueError(f"bad tar member size at byte {pos}")
        typeflag = buf[pos + 156]
        data_pos = pos + 512
        if pax is not None and b"size" in pax:
            size = _pax_size(pax[b"size"], pos)
        if size > n - data_pos:
            raise ValueError(f"truncated tar member data at byte {data_pos} "
                             f"(header at byte {pos} declares {size} bytes)")
        if typeflag == 76:  # 'L': GNU long name for the next member
            long_name = _cstring(buf, data_pos, size)
        elif typeflag == 120:  # 'x': PAX extended header for the next member
            pax = _pax_records(bytes(buf[data_pos:data_pos + size]), data_pos)
        elif typeflag == 103:  # 'g': PAX global header, nothing we need
            pass
        else:
            if typeflag == 48 or typeflag == 0 or typeflag == 55:  # '0', '\0', '7'
                if pax is not None and b"path" in pax:
                    name = pax[b"path"]
                elif long_name is not None:
                    name = long_name
                else:
                    name = _cstring(buf, pos, 100)
                    if bytes(buf[pos + 257:pos + 262]) == b"ustar":
                        prefix = _cstring(buf, pos + 345, 155)
                        if prefix:
                            name = prefix + b"/" + name
                names.append(name)
                offsets.append(data_pos)
                sizes.append(size)
            long_name = None
            pax = None
        pos = data_pos + ((size + 511) // 512) * 512
    return (names, np.asarray(offsets, dtype=np.int64).reshape(-1),
            np.asarray(sizes, dtype=np.int64).reshape(-1))
