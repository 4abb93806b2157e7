/* Region decoding of JPEG images with libjpeg-turbo (DCT scaling, column crop, row skip).
 *
 * Every function reports failure by returning non-zero and writing a message into err; no
 * function prints, exits or longjmps out to its caller. All functions are safe to call
 * without the Python GIL.
 */
#ifndef M5JPEG_H
#define M5JPEG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int width;        /* stored width (before EXIF orientation) */
    int height;       /* stored height */
    int components;   /* 1, 3 or 4 */
    int colorspace;   /* libjpeg J_COLOR_SPACE of the file */
    int progressive;  /* 1 for progressive JPEG */
    int orientation;  /* EXIF orientation 1..8 (1 when absent or invalid) */
} m5_jpeg_info;

int m5_jpeg_read_info(const uint8_t *data, size_t len, m5_jpeg_info *info,
                      char *err, size_t errlen);

/* Decode [x0, x0 + w) x [y0, y0 + h) of the image scaled by scale_num / 8 (coordinates in
 * scaled pixels, already clipped to the scaled image) as RGBX into out (rows of w * 4 bytes,
 * caller-allocated, w * h * 4 bytes; X is 255). Images with more than max_pixels stored pixels are
 * refused. Grayscale is expanded to RGB; CMYK/YCCK are converted to RGB the way Pillow does
 * (Adobe-inverted CMYK). */
#define M5_JPEG_FAST_IDCT 1      /* JDCT_IFAST instead of JDCT_ISLOW */
#define M5_JPEG_FAST_UPSAMPLE 2  /* plain chroma replication instead of fancy upsampling */

int m5_jpeg_decode_region(const uint8_t *data, size_t len, int scale_num,
                          int x0, int y0, int w, int h, uint8_t *out,
                          long long max_pixels, int flags, char *err, size_t errlen);

/* Scaled output size for scale_num / 8 (what libjpeg computes). */
void m5_jpeg_scaled_size(int width, int height, int scale_num, int *out_w, int *out_h);

#endif
