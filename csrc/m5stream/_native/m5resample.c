/* See m5resample.h. */
#include "m5resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && defined(__SSE2__)
#include <immintrin.h>
#endif

static void m5_store_fence(void);

#define PRECISION_BITS 22

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define M5_CLONES __attribute__((target_clones("avx2", "sse4.1", "default")))
#else
#define M5_CLONES
#endif

/* Per-thread scratch buffers, grown on demand and kept: large malloc()s are fresh mmap()s,
 * whose first touch costs a page fault per 4 KiB - more than the resampling itself. */
static __thread void *scratch_buf[M5_SCRATCH_SLOTS];
static __thread size_t scratch_len[M5_SCRATCH_SLOTS];

void *m5_scratch(int slot, size_t n) {
    if (slot < 0 || slot >= M5_SCRATCH_SLOTS) return NULL;
    if (scratch_len[slot] < n) {
        size_t want = n + n / 4 + 4096;
        void *p = realloc(scratch_buf[slot], want);
        if (!p) return NULL;
        scratch_buf[slot] = p;
        scratch_len[slot] = want;
    }
    return scratch_buf[slot];
}

static inline uint8_t clip8(int32_t v) {
    if (v >= ((int32_t)1 << PRECISION_BITS) * 256) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

/* Pillow's precompute_coeffs (bilinear) + normalize_coeffs_8bpc. Returns ksize or -1. */
static int precompute(int in_size, double in0, double in1, int out_size, int **bounds_p,
                      int32_t **kk_p) {
    double scale = (in1 - in0) / out_size;
    double filterscale = scale > 1.0 ? scale : 1.0;
    double support = 1.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *k = malloc(sizeof(double) * ksize);
    int *bounds = malloc(sizeof(int) * out_size * 2);
    int32_t *kk = malloc(sizeof(int32_t) * (size_t)out_size * ksize);
    if (!k || !bounds || !kk) {
        free(k); free(bounds); free(kk);
        return -1;
    }
    double ss = 1.0 / filterscale;
    for (int xx = 0; xx < out_size; xx++) {
        double center = in0 + (xx + 0.5) * scale;
        double ww = 0.0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            double w = (x + xmin - center + 0.5) * ss;
            if (w < 0) w = -w;
            w = w < 1.0 ? 1.0 - w : 0.0;
            k[x] = w;
            ww += w;
        }
        for (int x = 0; x < ksize; x++) {
            double v = 0.0;
            if (x < xmax) v = ww != 0.0 ? k[x] / ww : k[x];
            kk[xx * ksize + x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
                                       : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        bounds[xx * 2] = xmin;
        bounds[xx * 2 + 1] = xmax;
    }
    free(k);
    *bounds_p = bounds;
    *kk_p = kk;
    return ksize;
}

static void pass_horizontal_generic(const uint8_t *src, int sw, int first, int rows, int ow,
                                    const int *bounds, const int32_t *kk, int ksize,
                                    uint8_t *dst) {
    for (int y = 0; y < rows; y++) {
        const uint8_t *row = src + (size_t)(y + first) * sw * 4;
        uint8_t *out = dst + (size_t)y * ow * 4;
        for (int xx = 0; xx < ow; xx++) {
            int xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1];
            const int32_t *k = kk + (size_t)xx * ksize;
            const uint8_t *p = row + (size_t)xmin * 4;
            int32_t s[4] = {1 << (PRECISION_BITS - 1), 1 << (PRECISION_BITS - 1),
                            1 << (PRECISION_BITS - 1), 1 << (PRECISION_BITS - 1)};
            for (int x = 0; x < xmax; x++) {
                for (int c = 0; c < 4; c++) s[c] += (int32_t)p[4 * x + c] * k[x];
            }
            for (int c = 0; c < 4; c++) out[4 * xx + c] = clip8(s[c]);
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* One RGBX pixel is one 4 x int32 vector: widen (pmovzxbd), multiply by the tap (pmulld),
 * accumulate; then shift and saturate to 0..255 exactly as clip8 does. */
__attribute__((target("sse4.1")))
static void pass_horizontal_sse41(const uint8_t *src, int sw, int first, int rows, int ow,
                                  const int *bounds, const int32_t *kk, int ksize,
                                  uint8_t *dst) {
    const __m128i half = _mm_set1_epi32(1 << (PRECISION_BITS - 1));
    for (int y = 0; y < rows; y++) {
        const uint8_t *row = src + (size_t)(y + first) * sw * 4;
        uint8_t *out = dst + (size_t)y * ow * 4;
        for (int xx = 0; xx < ow; xx++) {
            int xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1];
            const int32_t *k = kk + (size_t)xx * ksize;
            const uint8_t *p = row + (size_t)xmin * 4;
            __m128i s = half;
            for (int x = 0; x < xmax; x++) {
                int32_t px;
                memcpy(&px, p + 4 * x, 4);
                __m128i v = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(px));
                s = _mm_add_epi32(s, _mm_mullo_epi32(v, _mm_set1_epi32(k[x])));
            }
            s = _mm_srai_epi32(s, PRECISION_BITS);
            s = _mm_packus_epi16(_mm_packs_epi32(s, s), s);
            int32_t r = _mm_cvtsi128_si32(s);
            memcpy(out + 4 * xx, &r, 4);
        }
    }
}
#endif

static void pass_horizontal(const uint8_t *src, int sw, int first, int rows, int ow,
                            const int *bounds, const int32_t *kk, int ksize, uint8_t *dst) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("sse4.1")) {
        pass_horizontal_sse41(src, sw, first, rows, ow, bounds, kk, ksize, dst);
        return;
    }
#endif
    pass_horizontal_generic(src, sw, first, rows, ow, bounds, kk, ksize, dst);
}

M5_CLONES
static void pass_vertical(const uint8_t *src, int width, int oh, const int *bounds,
                          const int32_t *kk, int ksize, uint8_t *dst, int32_t *acc) {
    int n = width * 4;
    for (int yy = 0; yy < oh; yy++) {
        int ymin = bounds[yy * 2], ymax = bounds[yy * 2 + 1];
        const int32_t *k = kk + (size_t)yy * ksize;
        for (int i = 0; i < n; i++) acc[i] = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < ymax; y++) {
            const uint8_t *row = src + (size_t)(y + ymin) * n;
            int32_t w = k[y];
            for (int i = 0; i < n; i++) acc[i] += (int32_t)row[i] * w;
        }
        uint8_t *out = dst + (size_t)yy * n;
        for (int i = 0; i < n; i++) out[i] = clip8(acc[i]);
    }
}

int m5_resample_rgbx(const uint8_t *src, int sw, int sh, double bx0, double by0, double bx1,
                     double by1, int ow, int oh, uint8_t *dst) {
    int *bh = NULL, *bv = NULL;
    int32_t *kh = NULL, *kv = NULL, *acc = NULL;
    uint8_t *tmp = NULL;
    int rc = -1;
    /* scratch slots 0-1 belong to the caller (decoded region, oriented region) */
    /* Pillow passes the box as C floats */
    bx0 = (float)bx0; by0 = (float)by0; bx1 = (float)bx1; by1 = (float)by1;
    int need_h = ow != sw || bx0 != 0 || bx1 != sw;
    int need_v = oh != sh || by0 != 0 || by1 != sh;
    int ksh = precompute(sw, bx0, bx1, ow, &bh, &kh);
    int ksv = precompute(sh, by0, by1, oh, &bv, &kv);
    if (ksh < 0 || ksv < 0) goto done;
    int first = bv[0];
    int last = bv[oh * 2 - 2] + bv[oh * 2 - 1];
    const uint8_t *vin = src;
    int vwidth = sw;
    if (need_h) {
        tmp = m5_scratch(2, (size_t)ow * (last - first) * 4 + 4);
        if (!tmp) goto done;
        pass_horizontal(src, sw, first, last - first, ow, bh, kh, ksh, tmp);
        for (int i = 0; i < oh; i++) bv[i * 2] -= first;
        vin = tmp;
        vwidth = ow;
    }
    if (need_v) {
        acc = m5_scratch(3, sizeof(int32_t) * (size_t)vwidth * 4);
        if (!acc) goto done;
        pass_vertical(vin, vwidth, oh, bv, kv, ksv, dst, acc);
    } else if (need_h) {
        memcpy(dst, tmp, (size_t)ow * oh * 4);
    } else {
        memcpy(dst, src + (size_t)first * sw * 4, (size_t)ow * oh * 4);
    }
    rc = 0;
done:
    free(bh); free(kh); free(bv); free(kv);
    return rc;
}

void m5_write_output(const uint8_t *r, int ow, int oh, int flip, int mode, const float *mean,
                     const float *inv_std, void *out) {
    size_t plane = (size_t)ow * oh;
    /* normalisation through a 3 x 256 table: the same float32 arithmetic, done once per value */
    float lut[3][256];
    _Float16 lut16[3][256];
    if (mode >= M5_OUT_F32_CHW) {
        const float s255 = 1.0f / 255.0f;
        for (int c = 0; c < 3; c++)
            for (int v = 0; v < 256; v++) {
                lut[c][v] = ((float)v * s255 - mean[c]) * inv_std[c];
                lut16[c][v] = (_Float16)lut[c][v];
            }
    }
    int step = flip ? -4 : 4;
    for (int y = 0; y < oh; y++) {
        const uint8_t *p0 = r + (size_t)y * ow * 4 + (flip ? (size_t)(ow - 1) * 4 : 0);
        size_t o = (size_t)y * ow;
        if (mode == M5_OUT_U8_HWC) {
            uint8_t *d = (uint8_t *)out + o * 3;
            const uint8_t *p = p0;
            for (int x = 0; x < ow; x++, p += step) {
                d[3 * x] = p[0]; d[3 * x + 1] = p[1]; d[3 * x + 2] = p[2];
            }
        } else if (mode == M5_OUT_U8_CHW) {
            uint8_t *d = (uint8_t *)out + o;
            for (int c = 0; c < 3; c++) {
                const uint8_t *p = p0 + c;
                uint8_t *dc = d + c * plane;
                for (int x = 0; x < ow; x++, p += step) dc[x] = *p;
            }
        } else if (mode == M5_OUT_F32_CHW) {
            float *d = (float *)out + o;
            for (int c = 0; c < 3; c++) {
                const uint8_t *p = p0 + c;
                const float *t = lut[c];
                float *dc = d + c * plane;
                int x = 0;
#if defined(__x86_64__) && defined(__SSE2__)
                /* streaming stores: the destination (a batch slot) is not read here again,
                 * so skip reading its lines into the cache first */
                if (((uintptr_t)dc & 15) == 0) {
                    for (; x + 4 <= ow; x += 4, p += 4 * step) {
                        __m128 v = _mm_setr_ps(t[p[0]], t[p[step]], t[p[2 * step]],
                                               t[p[3 * step]]);
                        _mm_stream_ps(dc + x, v);
                    }
                }
#endif
                for (; x < ow; x++, p += step) dc[x] = t[*p];
            }
        } else {
            _Float16 *d = (_Float16 *)out + o;
            for (int c = 0; c < 3; c++) {
                const _Float16 *t16 = lut16[c];
                const uint8_t *p = p0 + c;
                _Float16 *dc = d + c * plane;
                for (int x = 0; x < ow; x++, p += step) dc[x] = t16[*p];
            }
        }
    }
    m5_store_fence();  /* streaming stores are visible before the reply leaves the worker */
}

#if defined(__x86_64__) && defined(__SSE2__)
static void m5_store_fence(void) { _mm_sfence(); }
#else
static void m5_store_fence(void) {}
#endif

void m5_orient_rgbx(const uint8_t *src, int sw, int sh, int orientation, uint8_t *dst, int dw,
                    int dh) {
    const uint32_t *s = (const uint32_t *)src;
    uint32_t *d = (uint32_t *)dst;
    for (int y = 0; y < dh; y++) {
        for (int x = 0; x < dw; x++) {
            int sx, sy;
            switch (orientation) {
                case 2: sx = sw - 1 - x; sy = y; break;
                case 3: sx = sw - 1 - x; sy = sh - 1 - y; break;
                case 4: sx = x; sy = sh - 1 - y; break;
                case 5: sx = y; sy = x; break;
                case 6: sx = y; sy = sh - 1 - x; break;
                case 7: sx = sw - 1 - y; sy = sh - 1 - x; break;
                case 8: sx = sw - 1 - y; sy = x; break;
                default: sx = x; sy = y; break;
            }
            d[(size_t)y * dw + x] = s[(size_t)sy * sw + sx];
        }
    }
}
