# Declarations of the tar-header scanning kernels (implemented in tarscan.pyx).
from libc.stdint cimport int64_t

cdef bint is_zero_block(const unsigned char[::1] buf, Py_ssize_t pos) noexcept nogil
cdef int64_t parse_number(const unsigned char[::1] buf, Py_ssize_t pos, Py_ssize_t width) noexcept nogil
cdef bint checksum_ok(const unsigned char[::1] buf, Py_ssize_t pos) noexcept nogil
