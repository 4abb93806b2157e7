# Declarations of the fused image kernels (implemented in imgops.pyx).
from libc.stdint cimport uint8_t

cdef enum OutMode:
    OUT_U8_HWC = 0
    OUT_U8_CHW = 1
    OUT_F32_CHW = 2
    OUT_F16_CHW = 3

cdef int resample_rgb(const uint8_t *src, int sw, int sh, double bx0, double by0,
                      double bx1, double by1, int ow, int oh, uint8_t *dst) noexcept nogil
cdef void write_output(const uint8_t *r, int rw, int rh, int orientation, bint flip,
                       int ow, int oh, int mode, const float *mean, const float *inv_std,
                       void *out) noexcept nogil
