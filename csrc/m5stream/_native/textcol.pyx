# cython: language_level=3
"""Python values of an Arrow-layout text column: ``n + 1`` int32 offsets into a byte buffer.

A batch read column-wise carries its text columns through the shared-memory slot as offsets
and bytes (``m5stream.workers.assemble``); the trainer makes the Python ``str`` (or ``bytes``)
of each value once, here. This is the per-row cost of a table's text column, so it avoids
the generic paths: an ASCII value (checked eight bytes at a time) is made with
``PyUnicode_New`` and one ``memcpy``, anything else through ``PyUnicode_DecodeUTF8`` (which
raises ``UnicodeDecodeError`` on invalid UTF-8, as ``bytes.decode`` does).

The pure-Python twin is ``m5stream.columns.values_from_offsets_reference``.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int32_t, uint64_t
from libc.string cimport memcpy


cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void* PyUnicode_DATA(object o)


cdef bint is_ascii(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i = 0
    cdef uint64_t word
    while i + 8 <= n:
        memcpy(&word, p + i, 8)
        if word & 0x8080808080808080ULL:
            return False
        i += 8
    while i < n:
        if p[i] & 0x80:
            return False
        i += 1
    return True


cdef bint offsets_ok(const int32_t[::1] offsets, Py_ssize_t nbytes) noexcept nogil:
    # non-decreasing, starting at or after 0, ending inside the buffer
    cdef Py_ssize_t i, n = offsets.shape[0]
    if n == 0 or offsets[0] < 0 or offsets[n - 1] > nbytes:
        return False
    for i in range(1, n):
        if offsets[i] < offsets[i - 1]:
            return False
    return True


def values_from_offsets(const int32_t[::1] offsets, const unsigned char[::1] data, bint text=True):
    """The ``len(offsets) - 1`` values ``data[offsets[i]:offsets[i + 1]]`` as a list of ``str``
    (``text``) or ``bytes``. Offsets that are not non-decreasing or that point outside
    ``data`` raise ``ValueError``."""
    cdef Py_ssize_t n = offsets.shape[0] - 1
    cdef Py_ssize_t i, a, ln
    cdef const unsigned char* base
    cdef object value
    if n < 0 or not offsets_ok(offsets, data.shape[0]):
        raise ValueError("text column offsets are not increasing or point outside its bytes")
    out = PyList_New(n)
    base = &data[0] if data.shape[0] > 0 else <const unsigned char*>b""
    for i in range(n):
        a = offsets[i]
        ln = offsets[i + 1] - a
        if not text:
            value = PyBytes_FromStringAndSize(<const char*>(base + a), ln)
        elif is_ascii(base + a, ln):
            value = PyUnicode_New(ln, 127)
            memcpy(PyUnicode_DATA(value), base + a, ln)
        else:
            value = PyUnicode_DecodeUTF8(<const char*>(base + a), ln, NULL)
        Py_INCREF(value)  # PyList_SET_ITEM steals a reference
        PyList_SET_ITEM(out, i, value)
    return out
