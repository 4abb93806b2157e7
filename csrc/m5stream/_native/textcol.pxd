# Declarations of the text-column kernels (implemented in textcol.pyx).
from libc.stdint cimport int32_t

cdef bint is_ascii(const unsigned char* p, Py_ssize_t n) noexcept nogil
cdef bint offsets_ok(const int32_t[::1] offsets, Py_ssize_t nbytes) noexcept nogil
