/* Pillow-exact bilinear resampling of RGBX images and the fused output writer.
 *
 * Images are 4 bytes per pixel (R, G, B, X) so that one pixel is one 4-lane vector: the
 * horizontal pass accumulates a pixel per multiply-add, the vertical pass runs along whole
 * rows; both vectorise. The arithmetic is Pillow's ImagingResample for 8-bit images (bilinear
 * filter, coefficients in 22-bit fixed point, rounding and clamping after each pass), so the
 * results are bit-identical to Image.resize(BILINEAR, box=...). Functions are compiled for
 * AVX2, SSE4.1 and baseline x86-64 and picked at load time (GCC target_clones).
 */
#ifndef M5RESAMPLE_H
#define M5RESAMPLE_H

#include <stdint.h>

#include <stddef.h>

enum { M5_OUT_U8_HWC = 0, M5_OUT_U8_CHW = 1, M5_OUT_F32_CHW = 2, M5_OUT_F16_CHW = 3 };

#define M5_SCRATCH_SLOTS 5

/* A per-thread buffer of at least n bytes, reused across calls (slot 0..4; the resampler uses
 * slots 2 and 3, the output buffer slot 4). NULL when out of memory. */
void *m5_scratch(int slot, size_t n);

/* Resample box (bx0, by0, bx1, by1) of src (sw x sh RGBX) to ow x oh RGBX in dst.
 * Returns 0, or -1 when out of memory. */
int m5_resample_rgbx(const uint8_t *src, int sw, int sh, double bx0, double by0, double bx1,
                     double by1, int ow, int oh, uint8_t *dst);

/* Write the RGBX image r (ow x oh) into out in the given mode, mirrored when flip. */
void m5_write_output(const uint8_t *r, int ow, int oh, int flip, int mode, const float *mean,
                     const float *inv_std, void *out);

/* Turn a stored-orientation RGBX region (sw x sh) into its displayed orientation (dw x dh)
 * for EXIF orientation 2..8. */
void m5_orient_rgbx(const uint8_t *src, int sw, int sh, int orientation, uint8_t *dst, int dw,
                    int dh);

#endif
