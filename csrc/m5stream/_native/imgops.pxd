# Declarations of the C image kernels used by imgops.pyx (m5jpeg.c, m5resample.c).
from libc.stdint cimport uint8_t

cdef extern from "m5jpeg.h" nogil:
    ctypedef struct m5_jpeg_info:
        int width
        int height
        int components
        int colorspace
        int progressive
        int orientation
    int m5_jpeg_read_info(const uint8_t *data, size_t len, m5_jpeg_info *info,
                          char *err, size_t errlen)
    int m5_jpeg_decode_region(const uint8_t *data, size_t len, int scale_num, int x0, int y0,
                              int w, int h, uint8_t *out, long long max_pixels, int flags,
                              char *err, size_t errlen)
    void m5_jpeg_scaled_size(int width, int height, int scale_num, int *out_w, int *out_h)

cdef extern from "m5resample.h" nogil:
    void *m5_scratch(int slot, size_t n)
    int m5_resample_rgbx(const uint8_t *src, int sw, int sh, double bx0, double by0,
                         double bx1, double by1, int ow, int oh, uint8_t *dst)
    void m5_write_output(const uint8_t *r, int ow, int oh, int flip, int mode,
                         const float *mean, const float *inv_std, void *out)
    void m5_orient_rgbx(const uint8_t *src, int sw, int sh, int orientation, uint8_t *dst,
                        int dw, int dh)
