# cython: language_level=3
"""Fused image kernels: JPEG region decode -> resample -> orient/flip -> normalise -> output.

``decode_jpeg_into`` turns JPEG bytes into the final tensor in one call without the GIL:

1. map the crop box (given in *displayed*, i.e. EXIF-oriented, pixel coordinates) to the
   stored image;
2. pick the smallest DCT scale ``num/8`` (1/8, 1/4, 1/2 or 1) at which the box still has at
   least as many pixels as the output (so the scaled decode never has to be upsampled where
   the full one would not);
3. decode only the rows and iMCU columns of the box at that scale (libjpeg-turbo
   ``jpeg_crop_scanline``/``jpeg_skip_scanlines``);
4. resample the box to the output size with Pillow's BILINEAR filter (antialiased, fixed point
   with 22 fractional bits, horizontal then vertical pass: bit-exact with ``Image.resize``);
   (after turning the decoded region to the displayed orientation, so the passes run along
   the same axes as Pillow's);
5. write the result with the horizontal flip applied, as uint8 HWC, uint8 CHW, or
   ``(x / 255 - mean) / std`` float32/float16 CHW, straight into the caller's memory (a batch
   slot row).

The semantics equal Pillow's ``draft`` (same DCT scale) + ``exif_transpose`` + ``crop`` of the
integer-expanded box + ``resize(size, BILINEAR, box=fractional box)``; tests hold the kernels to
that reference (``m5stream.transforms.reference``).
"""
from libc.math cimport ceil, floor
from libc.stdint cimport int32_t, uint8_t, uint16_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

import numpy as np

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
                              int w, int h, uint8_t *out, long long max_pixels, char *err,
                              size_t errlen)
    void m5_jpeg_scaled_size(int width, int height, int scale_num, int *out_w, int *out_h)

cdef extern from *:
    """
    typedef _Float16 m5_half;
    """
    ctypedef float m5_half


cdef enum:
    PRECISION_BITS = 22
    ERRLEN = 256


cdef inline uint8_t clip8(int32_t v) noexcept nogil:
    if v >= (<int32_t>1 << PRECISION_BITS) * 256:
        return 255
    if v <= 0:
        return 0
    return <uint8_t>(v >> PRECISION_BITS)


cdef int precompute(int in_size, double in0, double in1, int out_size, int **bounds_p,
                    int32_t **kk_p) noexcept nogil:
    # Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bilinear filter.
    cdef double scale = (in1 - in0) / out_size
    cdef double filterscale = scale if scale > 1.0 else 1.0
    cdef double support = 1.0 * filterscale
    cdef int ksize = <int>ceil(support) * 2 + 1
    cdef double *k = <double *>malloc(sizeof(double) * ksize)
    cdef int *bounds = <int *>malloc(sizeof(int) * out_size * 2)
    cdef int32_t *kk = <int32_t *>malloc(sizeof(int32_t) * out_size * ksize)
    cdef int xx, x, xmin, xmax
    cdef double center, ww, ss, w
    if k == NULL or bounds == NULL or kk == NULL:
        free(k); free(bounds); free(kk)
        return -1
    ss = 1.0 / filterscale
    for xx in range(out_size):
        center = in0 + (xx + 0.5) * scale
        ww = 0.0
        xmin = <int>(center - support + 0.5)
        if xmin < 0:
            xmin = 0
        xmax = <int>(center + support + 0.5)
        if xmax > in_size:
            xmax = in_size
        xmax -= xmin
        for x in range(xmax):
            w = (x + xmin - center + 0.5) * ss
            if w < 0:
                w = -w
            w = 1.0 - w if w < 1.0 else 0.0
            k[x] = w
            ww += w
        for x in range(ksize):
            if x < xmax:
                if ww != 0.0:
                    k[x] = k[x] / ww
            else:
                k[x] = 0.0
            if k[x] < 0:
                kk[xx * ksize + x] = <int32_t>(-0.5 + k[x] * (1 << PRECISION_BITS))
            else:
                kk[xx * ksize + x] = <int32_t>(0.5 + k[x] * (1 << PRECISION_BITS))
        bounds[xx * 2] = xmin
        bounds[xx * 2 + 1] = xmax
    free(k)
    bounds_p[0] = bounds
    kk_p[0] = kk
    return ksize


cdef int resample_rgb(const uint8_t *src, int sw, int sh, double bx0, double by0,
                      double bx1, double by1, int ow, int oh, uint8_t *dst) noexcept nogil:
    """Pillow BILINEAR ``resize((ow, oh), box=(bx0, by0, bx1, by1))`` of an RGB image."""
    cdef int *bh = NULL
    cdef int *bv = NULL
    cdef int32_t *kh = NULL
    cdef int32_t *kv = NULL
    cdef uint8_t *tmp = NULL
    cdef const uint8_t *vin
    cdef int ksh, ksv, xx, yy, x, y, c, xmin, xmax, ymin, ymax, first, last, rows
    cdef int32_t s0, s1, s2, kw
    cdef const uint8_t *p
    cdef bint need_h, need_v
    # Pillow passes the box as C floats
    bx0 = <float>bx0; by0 = <float>by0; bx1 = <float>bx1; by1 = <float>by1
    need_h = ow != sw or bx0 != 0 or bx1 != sw
    need_v = oh != sh or by0 != 0 or by1 != sh
    ksh = precompute(sw, bx0, bx1, ow, &bh, &kh)
    ksv = precompute(sh, by0, by1, oh, &bv, &kv)
    if ksh < 0 or ksv < 0:
        free(bh); free(kh); free(bv); free(kv)
        return -1
    first = bv[0]
    last = bv[oh * 2 - 2] + bv[oh * 2 - 1]
    if need_h:
        rows = last - first
        tmp = <uint8_t *>malloc(<size_t>ow * rows * 3 + 1)
        if tmp == NULL:
            free(bh); free(kh); free(bv); free(kv)
            return -1
        for y in range(rows):
            for xx in range(ow):
                xmin = bh[xx * 2]
                xmax = bh[xx * 2 + 1]
                s0 = s1 = s2 = 1 << (PRECISION_BITS - 1)
                p = src + (<size_t>(y + first) * sw + xmin) * 3
                for x in range(xmax):
                    kw = kh[xx * ksh + x]
                    s0 += p[3 * x] * kw
                    s1 += p[3 * x + 1] * kw
                    s2 += p[3 * x + 2] * kw
                tmp[(<size_t>y * ow + xx) * 3] = clip8(s0)
                tmp[(<size_t>y * ow + xx) * 3 + 1] = clip8(s1)
                tmp[(<size_t>y * ow + xx) * 3 + 2] = clip8(s2)
        for yy in range(oh):
            bv[yy * 2] -= first
        vin = tmp
    else:
        vin = src
    if need_v:
        for yy in range(oh):
            ymin = bv[yy * 2]
            ymax = bv[yy * 2 + 1]
            for xx in range(ow):
                s0 = s1 = s2 = 1 << (PRECISION_BITS - 1)
                for y in range(ymax):
                    kw = kv[yy * ksv + y]
                    p = vin + (<size_t>(y + ymin) * ow + xx) * 3
                    s0 += p[0] * kw
                    s1 += p[1] * kw
                    s2 += p[2] * kw
                dst[(<size_t>yy * ow + xx) * 3] = clip8(s0)
                dst[(<size_t>yy * ow + xx) * 3 + 1] = clip8(s1)
                dst[(<size_t>yy * ow + xx) * 3 + 2] = clip8(s2)
    elif need_h:
        memcpy(dst, vin, <size_t>ow * oh * 3)
    else:
        memcpy(dst, src + <size_t>first * sw * 3, <size_t>ow * oh * 3)
    free(tmp); free(bh); free(kh); free(bv); free(kv)
    return 0


cdef inline void _src_index(int orientation, int x, int y, int rw, int rh,
                            int *sx, int *sy) noexcept nogil:
    # final pixel (x, y) -> pixel of the stored-orientation resampled image R (rw x rh)
    if orientation == 2:
        sx[0] = rw - 1 - x; sy[0] = y
    elif orientation == 3:
        sx[0] = rw - 1 - x; sy[0] = rh - 1 - y
    elif orientation == 4:
        sx[0] = x; sy[0] = rh - 1 - y
    elif orientation == 5:
        sx[0] = y; sy[0] = x
    elif orientation == 6:
        sx[0] = y; sy[0] = rh - 1 - x
    elif orientation == 7:
        sx[0] = rw - 1 - y; sy[0] = rh - 1 - x
    elif orientation == 8:
        sx[0] = rw - 1 - y; sy[0] = x
    else:
        sx[0] = x; sy[0] = y


cdef void write_output(const uint8_t *r, int rw, int rh, int orientation, bint flip,
                       int ow, int oh, int mode, const float *mean, const float *inv_std,
                       void *out) noexcept nogil:
    cdef int x, y, c, sx, sy, fx
    cdef size_t plane = <size_t>ow * oh, o
    cdef uint8_t *o8 = <uint8_t *>out
    cdef float *o32 = <float *>out
    cdef m5_half *o16 = <m5_half *>out
    cdef const uint8_t *p
    cdef float v
    cdef float scale255 = 1.0 / 255.0
    for y in range(oh):
        for x in range(ow):
            fx = ow - 1 - x if flip else x
            _src_index(orientation, fx, y, rw, rh, &sx, &sy)
            p = r + (<size_t>sy * rw + sx) * 3
            o = <size_t>y * ow + x
            if mode == OUT_U8_HWC:
                o8[o * 3] = p[0]; o8[o * 3 + 1] = p[1]; o8[o * 3 + 2] = p[2]
            elif mode == OUT_U8_CHW:
                o8[o] = p[0]; o8[plane + o] = p[1]; o8[2 * plane + o] = p[2]
            else:
                for c in range(3):
                    v = (<float>p[c] * scale255 - mean[c]) * inv_std[c]
                    if mode == OUT_F32_CHW:
                        o32[c * plane + o] = v
                    else:
                        o16[c * plane + o] = <m5_half>v


cdef inline void _stored_box(int orientation, double W, double H, double x0, double y0,
                             double x1, double y1, double *b) noexcept nogil:
    # displayed box -> stored box (see module docstring of m5stream.transforms.image)
    if orientation == 2:
        b[0] = W - x1; b[1] = y0; b[2] = W - x0; b[3] = y1
    elif orientation == 3:
        b[0] = W - x1; b[1] = H - y1; b[2] = W - x0; b[3] = H - y0
    elif orientation == 4:
        b[0] = x0; b[1] = H - y1; b[2] = x1; b[3] = H - y0
    elif orientation == 5:
        b[0] = y0; b[1] = x0; b[2] = y1; b[3] = x1
    elif orientation == 6:
        b[0] = y0; b[1] = H - x1; b[2] = y1; b[3] = H - x0
    elif orientation == 7:
        b[0] = W - y1; b[1] = H - x1; b[2] = W - y0; b[3] = H - x0
    elif orientation == 8:
        b[0] = W - y1; b[1] = x0; b[2] = W - y0; b[3] = x1
    else:
        b[0] = x0; b[1] = y0; b[2] = x1; b[3] = y1


cdef int _resample_write(const uint8_t *region, int gw, int gh, double *b, int orientation,
                         bint flip, int ow, int oh, int mode, const float *mean,
                         const float *inv_std, void *out) noexcept nogil:
    cdef bint transposed = orientation >= 5
    cdef int rw = oh if transposed else ow
    cdef int rh = ow if transposed else oh
    cdef uint8_t *r = <uint8_t *>malloc(<size_t>rw * rh * 3 + 1)
    if r == NULL:
        return -1
    if resample_rgb(region, gw, gh, b[0], b[1], b[2], b[3], rw, rh, r) != 0:
        free(r)
        return -1
    write_output(r, rw, rh, orientation, flip, ow, oh, mode, mean, inv_std, out)
    free(r)
    return 0


def _mode_and_params(mode, mean, std):
    cdef int m = {"u8_hwc": OUT_U8_HWC, "u8_chw": OUT_U8_CHW, "f32_chw": OUT_F32_CHW,
                  "f16_chw": OUT_F16_CHW}[mode]
    mean_a = np.ascontiguousarray(mean if mean is not None else (0.0, 0.0, 0.0),
                                  dtype=np.float32)
    inv_a = 1.0 / np.ascontiguousarray(std if std is not None else (1.0, 1.0, 1.0),
                                       dtype=np.float32)
    return m, mean_a, inv_a.astype(np.float32)


def jpeg_info(const uint8_t[::1] data):
    """``(width, height, components, colorspace, progressive, orientation)``; width and height
    are as stored (before the EXIF orientation)."""
    cdef m5_jpeg_info info
    cdef char err[ERRLEN]
    cdef int rc
    if data.shape[0] == 0:
        raise ValueError("empty input is not a JPEG image")
    with nogil:
        rc = m5_jpeg_read_info(&data[0], data.shape[0], &info, err, ERRLEN)
    if rc != 0:
        raise ValueError(err.decode("utf-8", "replace"))
    return (info.width, info.height, info.components, info.colorspace, info.progressive,
            info.orientation)


cdef int _choose_scale(double bw, double bh, int rw, int rh) noexcept nogil:
    # 1/8, 1/4 and 1/2 have dedicated fast IDCTs in libjpeg-turbo (and are the scales Pillow's
    # draft() uses, which keeps a reference to test against); other M/8 use a slower path.
    cdef int num = 1
    while num < 8:
        if bw * num / 8.0 >= rw and bh * num / 8.0 >= rh:
            return num
        num *= 2
    return 8


cdef void _region(double *b, double *c, int out_w, int out_h, int limit_w, int limit_h,
                  int *gx0, int *gy0, int *gx1, int *gy1) noexcept nogil:
    # Integer source region for resampling box b to out_w x out_h: the box widened by the
    # filter's reach (so kernels are never cut short inside the clip box c), cut to c.
    cdef double sx = (b[2] - b[0]) / out_w, sy = (b[3] - b[1]) / out_h
    cdef double rx = (sx if sx > 1.0 else 1.0) + 1.0, ry = (sy if sy > 1.0 else 1.0) + 1.0
    cdef double x0 = b[0] - rx, y0 = b[1] - ry, x1 = b[2] + rx, y1 = b[3] + ry
    if x0 < c[0]: x0 = c[0]
    if y0 < c[1]: y0 = c[1]
    if x1 > c[2]: x1 = c[2]
    if y1 > c[3]: y1 = c[3]
    gx0[0] = <int>floor(x0); gy0[0] = <int>floor(y0)
    gx1[0] = <int>ceil(x1); gy1[0] = <int>ceil(y1)
    if gx0[0] < 0: gx0[0] = 0
    if gy0[0] < 0: gy0[0] = 0
    if gx1[0] > limit_w: gx1[0] = limit_w
    if gy1[0] > limit_h: gy1[0] = limit_h


cdef void _orient_region(const uint8_t *src, int sw, int sh, int orientation,
                         uint8_t *dst, int dw, int dh) noexcept nogil:
    # stored-orientation region (sw x sh) -> displayed-orientation region (dw x dh)
    cdef int x, y, sx, sy
    cdef const uint8_t *p
    cdef uint8_t *q
    for y in range(dh):
        for x in range(dw):
            _src_index(orientation, x, y, sw, sh, &sx, &sy)
            p = src + (<size_t>sy * sw + sx) * 3
            q = dst + (<size_t>y * dw + x) * 3
            q[0] = p[0]; q[1] = p[1]; q[2] = p[2]


def decode_jpeg_into(const uint8_t[::1] data, out, box, int out_w, int out_h, *,
                     bint flip=False, mode="u8_hwc", mean=None, std=None,
                     long long max_pixels=0, int orientation=-1, bint dct_scaling=True,
                     clip=None):
    """Decode ``box`` (x0, y0, x1, y1 in displayed pixels) of a JPEG into ``out``.

    ``clip`` (default: the box) is where the resampling filter may read pixels: the box itself
    for crop-then-resize, a larger box for resize-then-crop (as when resizing the whole image
    and cropping the result).

    ``out`` is a writable C-contiguous array of the output shape and dtype for ``mode``.
    Returns the DCT scale numerator used (``num/8``). The EXIF orientation is applied to the
    decoded region before resampling, so resampling runs in displayed axes exactly as Pillow's
    ``exif_transpose`` + ``resize`` do.
    """
    cdef m5_jpeg_info info
    cdef char err[ERRLEN]
    cdef int rc, num, sw_s, sh_s, dw_s, dh_s, gx0, gy0, gx1, gy1, gw, gh
    cdef double b[4]
    cdef double c[4]
    cdef double g[4]
    cdef double dW, dH
    cdef bint transposed
    cdef uint8_t *region = NULL
    cdef uint8_t *shown = NULL
    cdef int m
    m, mean_a, inv_a = _mode_and_params(mode, mean, std)
    cdef const float[::1] mean_v = mean_a
    cdef const float[::1] inv_v = inv_a
    cdef unsigned char[::1] out_b = np.asarray(out).reshape(-1).view(np.uint8)
    b[0] = box[0]; b[1] = box[1]; b[2] = box[2]; b[3] = box[3]
    if clip is None:
        clip = box
    c[0] = clip[0]; c[1] = clip[1]; c[2] = clip[2]; c[3] = clip[3]
    if data.shape[0] == 0:
        raise ValueError("empty input is not a JPEG image")
    with nogil:
        rc = m5_jpeg_read_info(&data[0], data.shape[0], &info, err, ERRLEN)
    if rc != 0:
        raise ValueError(err.decode("utf-8", "replace"))
    if orientation < 0:
        orientation = info.orientation
    transposed = orientation >= 5
    dW = info.height if transposed else info.width
    dH = info.width if transposed else info.height
    if not (0 <= b[0] < b[2] <= dW and 0 <= b[1] < b[3] <= dH):
        raise ValueError(f"crop box {tuple(box)} outside the {dW:.0f}x{dH:.0f} image")
    if not (0 <= c[0] <= b[0] and 0 <= c[1] <= b[1] and b[2] <= c[2] <= dW
            and b[3] <= c[3] <= dH):
        raise ValueError(f"clip box {tuple(clip)} must hold the crop box and lie in the image")
    num = _choose_scale(b[2] - b[0], b[3] - b[1], out_w, out_h) if dct_scaling else 8
    m5_jpeg_scaled_size(info.width, info.height, num, &sw_s, &sh_s)
    dw_s = sh_s if transposed else sw_s
    dh_s = sw_s if transposed else sh_s
    # the box, the clip and the source region, in displayed scaled pixels
    b[0] *= dw_s / dW; b[2] *= dw_s / dW; b[1] *= dh_s / dH; b[3] *= dh_s / dH
    c[0] *= dw_s / dW; c[2] *= dw_s / dW; c[1] *= dh_s / dH; c[3] *= dh_s / dH
    if b[2] > dw_s: b[2] = dw_s
    if b[3] > dh_s: b[3] = dh_s
    _region(b, c, out_w, out_h, dw_s, dh_s, &gx0, &gy0, &gx1, &gy1)
    gw = gx1 - gx0; gh = gy1 - gy0
    b[0] -= gx0; b[2] -= gx0; b[1] -= gy0; b[3] -= gy0
    # the same region in stored scaled pixels
    _stored_box(orientation, sw_s, sh_s, gx0, gy0, gx1, gy1, g)
    region = <uint8_t *>malloc(<size_t>gw * gh * 3 + 1)
    if orientation != 1:
        shown = <uint8_t *>malloc(<size_t>gw * gh * 3 + 1)
    if region == NULL or (orientation != 1 and shown == NULL):
        free(region); free(shown)
        raise MemoryError()
    try:
        with nogil:
            rc = m5_jpeg_decode_region(&data[0], data.shape[0], num, <int>g[0], <int>g[1],
                                       <int>(g[2] - g[0]), <int>(g[3] - g[1]), region,
                                       max_pixels, err, ERRLEN)
            if rc == 0 and orientation != 1:
                _orient_region(region, <int>(g[2] - g[0]), <int>(g[3] - g[1]), orientation,
                               shown, gw, gh)
            if rc == 0:
                rc = 2 * (_resample_write(shown if orientation != 1 else region, gw, gh, b, 1,
                                          flip, out_w, out_h, m, &mean_v[0], &inv_v[0],
                                          &out_b[0]) != 0)
        if rc == 1:
            raise ValueError(err.decode("utf-8", "replace"))
        if rc == 2:
            raise MemoryError()
    finally:
        free(region)
        free(shown)
    return num


def resample_into(const uint8_t[:, :, ::1] image, out, box, int out_w, int out_h, *,
                  bint flip=False, mode="u8_hwc", mean=None, std=None, clip=None):
    """The same resample/flip/normalise/write for an already decoded RGB ``image`` (HxWx3):
    the path for PNG/WebP/... decoded by Pillow. ``box`` is in ``image`` pixels."""
    cdef int m
    m, mean_a, inv_a = _mode_and_params(mode, mean, std)
    cdef const float[::1] mean_v = mean_a
    cdef const float[::1] inv_v = inv_a
    cdef unsigned char[::1] out_b = np.asarray(out).reshape(-1).view(np.uint8)
    cdef int H = image.shape[0], W = image.shape[1]
    cdef double b[4]
    cdef double c[4]
    cdef int gx0, gy0, gx1, gy1, rc
    if image.shape[2] != 3:
        raise ValueError("image must be H x W x 3")
    if clip is None:
        clip = box
    b[0] = box[0]; b[1] = box[1]; b[2] = box[2]; b[3] = box[3]
    c[0] = clip[0]; c[1] = clip[1]; c[2] = clip[2]; c[3] = clip[3]
    if not (0 <= b[0] < b[2] <= W and 0 <= b[1] < b[3] <= H):
        raise ValueError(f"crop box {tuple(box)} outside the image")
    if not (0 <= c[0] <= b[0] and 0 <= c[1] <= b[1] and b[2] <= c[2] <= W and b[3] <= c[3] <= H):
        raise ValueError(f"clip box {tuple(clip)} must hold the crop box and lie in the image")
    _region(b, c, out_w, out_h, W, H, &gx0, &gy0, &gx1, &gy1)
    region = np.ascontiguousarray(np.asarray(image)[gy0:gy1, gx0:gx1])
    cdef const uint8_t[:, :, ::1] rv = region
    b[0] -= gx0; b[2] -= gx0; b[1] -= gy0; b[3] -= gy0
    with nogil:
        rc = _resample_write(&rv[0, 0, 0], gx1 - gx0, gy1 - gy0, b, 1, flip, out_w, out_h, m,
                             &mean_v[0], &inv_v[0], &out_b[0])
    if rc != 0:
        raise MemoryError()
