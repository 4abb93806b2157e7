# cython: language_level=3
"""Fused image kernels: JPEG region decode -> resample -> flip -> normalise -> output.

``decode_jpeg_into`` turns JPEG bytes into the final tensor in one call without the GIL:

1. the crop box comes in *displayed* (EXIF-oriented) pixels; pick the smallest DCT scale
   ``num/8`` (1/8, 1/4, 1/2 or 1) at which the box still has at least as many pixels as the
   output, so the scaled decode never has to be upsampled where a full one would not;
2. decode only the rows and (iMCU-aligned) columns the resampling filter reads, at that scale
   (libjpeg-turbo ``jpeg_crop_scanline``/``jpeg_skip_scanlines``), as RGBX;
3. turn the region to the displayed orientation (EXIF 2..8), so resampling runs along the
   same axes as Pillow's ``exif_transpose`` + ``resize``;
4. resample with Pillow's BILINEAR filter (fixed point, horizontal then vertical pass:
   bit-exact with ``Image.resize(box=...)``; vectorised C in ``m5resample.c``);
5. write with the horizontal flip as uint8 HWC, uint8 CHW, or ``(x / 255 - mean) / std``
   float32/float16 CHW straight into the caller's memory (a row of a batch slot).

Semantics: Pillow's ``draft`` (same DCT scale) + ``exif_transpose`` + ``crop`` of the
integer-expanded ``clip`` box + ``resize(size, BILINEAR, box=the crop box inside it)``. The
tests hold the kernels to exactly that reference.
"""
from libc.math cimport ceil, floor
from libc.stdint cimport uint8_t
from libc.stdlib cimport free, malloc

import numpy as np

cdef enum:
    ERRLEN = 256
    FLAGS_FAST = 3  # M5_JPEG_FAST_IDCT | M5_JPEG_FAST_UPSAMPLE

_MODES = {"u8_hwc": 0, "u8_chw": 1, "f32_chw": 2, "f16_chw": 3}
_PARAMS = {}


def _params(mode, mean, std):
    # cached: a pipeline uses one (mode, mean, std) for every image
    key = (mode, None if mean is None else tuple(mean), None if std is None else tuple(std))
    hit = _PARAMS.get(key)
    if hit is None:
        mean_a = np.ascontiguousarray(mean if mean is not None else (0.0, 0.0, 0.0),
                                      dtype=np.float32)
        inv_a = (1.0 / np.ascontiguousarray(std if std is not None else (1.0, 1.0, 1.0),
                                            dtype=np.float32)).astype(np.float32)
        hit = (_MODES[mode], mean_a, inv_a)
        if len(_PARAMS) < 64:
            _PARAMS[key] = hit
    return hit


cdef inline void _stored_box(int orientation, double W, double H, double x0, double y0,
                             double x1, double y1, double *b) noexcept nogil:
    # a displayed box -> the same pixels in the stored image (W x H stored)
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


cdef void _region(double *b, double *c, int out_w, int out_h, int limit_w, int limit_h,
                  int *g) noexcept nogil:
    # Integer source region for resampling box b to out_w x out_h: the box widened by the
    # filter's reach (so kernels are never cut short inside the clip box c), cut to c.
    cdef double sx = (b[2] - b[0]) / out_w, sy = (b[3] - b[1]) / out_h
    cdef double rx = (sx if sx > 1.0 else 1.0) + 1.0, ry = (sy if sy > 1.0 else 1.0) + 1.0
    cdef double x0 = b[0] - rx, y0 = b[1] - ry, x1 = b[2] + rx, y1 = b[3] + ry
    if x0 < c[0]: x0 = c[0]
    if y0 < c[1]: y0 = c[1]
    if x1 > c[2]: x1 = c[2]
    if y1 > c[3]: y1 = c[3]
    g[0] = <int>floor(x0); g[1] = <int>floor(y0)
    g[2] = <int>ceil(x1); g[3] = <int>ceil(y1)
    if g[0] < 0: g[0] = 0
    if g[1] < 0: g[1] = 0
    if g[2] > limit_w: g[2] = limit_w
    if g[3] > limit_h: g[3] = limit_h


cdef int _choose_scale(double bw, double bh, int rw, int rh) noexcept nogil:
    # 1/8, 1/4 and 1/2 have dedicated fast IDCTs in libjpeg-turbo (and are the scales Pillow's
    # draft() uses, which keeps a reference to test against); other M/8 take a slower path.
    cdef int num = 1
    while num < 8:
        if bw * num / 8.0 >= rw and bh * num / 8.0 >= rh:
            return num
        num *= 2
    return 8


cdef int _finish(const uint8_t *region, int gw, int gh, double *b, bint flip, int ow, int oh,
                 int mode, const float *mean, const float *inv_std, void *out) noexcept nogil:
    # resample the region's box to ow x oh, then write it out
    cdef uint8_t *r = <uint8_t *>m5_scratch(4, <size_t>ow * oh * 4 + 4)
    cdef int rc
    if r == NULL:
        return -1
    rc = m5_resample_rgbx(region, gw, gh, b[0], b[1], b[2], b[3], ow, oh, r)
    if rc == 0:
        m5_write_output(r, ow, oh, flip, mode, mean, inv_std, out)
    return rc


cdef m5_jpeg_info _read_info(const uint8_t[::1] data) except *:
    cdef m5_jpeg_info info
    cdef char err[ERRLEN]
    cdef int rc
    if data.shape[0] == 0:
        raise ValueError("empty input is not a JPEG image")
    with nogil:
        rc = m5_jpeg_read_info(&data[0], data.shape[0], &info, err, ERRLEN)
    if rc != 0:
        raise ValueError(err.decode("utf-8", "replace"))
    return info


def jpeg_info(const uint8_t[::1] data):
    """``(width, height, components, colorspace, progressive, orientation)``; width and height
    are as stored (before the EXIF orientation)."""
    cdef m5_jpeg_info info = _read_info(data)
    return (info.width, info.height, info.components, info.colorspace, info.progressive,
            info.orientation)


def decode_jpeg_into(const uint8_t[::1] data, out, box, int out_w, int out_h, *,
                     bint flip=False, mode="u8_hwc", mean=None, std=None,
                     long long max_pixels=0, int orientation=-1, bint dct_scaling=True,
                     clip=None, bint fast=False):
    """Decode ``box`` (x0, y0, x1, y1 in displayed pixels) of a JPEG into ``out``.

    ``out`` is a writable C-contiguous array of the output shape and dtype for ``mode``.
    ``clip`` (default: the box) is where the resampling filter may read: the box itself for
    crop-then-resize, a larger box for resize-then-crop. ``fast`` uses libjpeg-turbo's fast
    integer IDCT and plain chroma upsampling (simplejpeg's fastdct/fastupsample): faster, a few
    levels away from Pillow's decode. Returns the DCT scale numerator used (``num/8``).
    """
    cdef m5_jpeg_info info
    cdef char err[ERRLEN]
    cdef int rc, num, sw_s, sh_s, dw_s, dh_s, gw, gh, rw, rh
    cdef int g[4]
    cdef double b[4]
    cdef double c[4]
    cdef double s[4]
    cdef double dW, dH
    cdef uint8_t *region = NULL
    cdef uint8_t *shown = NULL
    m, mean_a, inv_a = _params(mode, mean, std)
    cdef int cmode = m
    cdef const float[::1] mean_v = mean_a
    cdef const float[::1] inv_v = inv_a
    cdef unsigned char[::1] out_b = np.asarray(out).reshape(-1).view(np.uint8)
    if clip is None:
        clip = box
    b[0] = box[0]; b[1] = box[1]; b[2] = box[2]; b[3] = box[3]
    c[0] = clip[0]; c[1] = clip[1]; c[2] = clip[2]; c[3] = clip[3]
    info = _read_info(data)
    if orientation < 0:
        orientation = info.orientation
    dW = info.height if orientation >= 5 else info.width
    dH = info.width if orientation >= 5 else info.height
    if not (0 <= b[0] < b[2] <= dW and 0 <= b[1] < b[3] <= dH):
        raise ValueError(f"crop box {tuple(box)} outside the {dW:.0f}x{dH:.0f} image")
    if not (0 <= c[0] <= b[0] and 0 <= c[1] <= b[1] and b[2] <= c[2] <= dW
            and b[3] <= c[3] <= dH):
        raise ValueError(f"clip box {tuple(clip)} must hold the crop box and lie in the image")
    num = _choose_scale(b[2] - b[0], b[3] - b[1], out_w, out_h) if dct_scaling else 8
    m5_jpeg_scaled_size(info.width, info.height, num, &sw_s, &sh_s)
    dw_s = sh_s if orientation >= 5 else sw_s
    dh_s = sw_s if orientation >= 5 else sh_s
    # box, clip and source region in displayed scaled pixels
    b[0] *= dw_s / dW; b[2] *= dw_s / dW; b[1] *= dh_s / dH; b[3] *= dh_s / dH
    c[0] *= dw_s / dW; c[2] *= dw_s / dW; c[1] *= dh_s / dH; c[3] *= dh_s / dH
    if b[2] > dw_s: b[2] = dw_s
    if b[3] > dh_s: b[3] = dh_s
    _region(b, c, out_w, out_h, dw_s, dh_s, g)
    gw = g[2] - g[0]; gh = g[3] - g[1]
    b[0] -= g[0]; b[2] -= g[0]; b[1] -= g[1]; b[3] -= g[1]
    # the same region in stored scaled pixels
    _stored_box(orientation, sw_s, sh_s, g[0], g[1], g[2], g[3], s)
    rw = <int>(s[2] - s[0]); rh = <int>(s[3] - s[1])
    # per-thread scratch buffers (see m5_scratch): no page faults in steady state
    region = <uint8_t *>m5_scratch(0, <size_t>gw * gh * 4 + 4)
    if orientation != 1:
        shown = <uint8_t *>m5_scratch(1, <size_t>gw * gh * 4 + 4)
    if region == NULL or (orientation != 1 and shown == NULL):
        raise MemoryError()
    with nogil:
        rc = m5_jpeg_decode_region(&data[0], data.shape[0], num, <int>s[0], <int>s[1],
                                   rw, rh, region, max_pixels,
                                   FLAGS_FAST if fast else 0, err, ERRLEN)
        if rc == 0 and orientation != 1:
            m5_orient_rgbx(region, rw, rh, orientation, shown, gw, gh)
        if rc == 0:
            rc = 2 * (_finish(shown if orientation != 1 else region, gw, gh, b, flip,
                              out_w, out_h, cmode, &mean_v[0], &inv_v[0], &out_b[0]) != 0)
    if rc == 1:
        raise ValueError(err.decode("utf-8", "replace"))
    if rc == 2:
        raise MemoryError()
    return num


def resample_into(const uint8_t[:, :, ::1] image, out, box, int out_w, int out_h, *,
                  bint flip=False, mode="u8_hwc", mean=None, std=None, clip=None):
    """The same resample/flip/normalise/write for an already decoded RGB ``image`` (HxWx3):
    the path for PNG/WebP/... decoded by Pillow. ``box`` is in ``image`` pixels."""
    m, mean_a, inv_a = _params(mode, mean, std)
    cdef int cmode = m
    cdef const float[::1] mean_v = mean_a
    cdef const float[::1] inv_v = inv_a
    cdef unsigned char[::1] out_b = np.asarray(out).reshape(-1).view(np.uint8)
    cdef int H = image.shape[0], W = image.shape[1], rc
    cdef int g[4]
    cdef double b[4]
    cdef double c[4]
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
    _region(b, c, out_w, out_h, W, H, g)
    rgbx = np.full((g[3] - g[1], g[2] - g[0], 4), 255, dtype=np.uint8)
    rgbx[:, :, :3] = np.asarray(image)[g[1]:g[3], g[0]:g[2]]
    cdef const uint8_t[:, :, ::1] rv = rgbx
    b[0] -= g[0]; b[2] -= g[0]; b[1] -= g[1]; b[3] -= g[1]
    with nogil:
        rc = _finish(&rv[0, 0, 0], g[2] - g[0], g[3] - g[1], b, flip, out_w, out_h, cmode,
                     &mean_v[0], &inv_v[0], &out_b[0])
    if rc != 0:
        raise MemoryError()
