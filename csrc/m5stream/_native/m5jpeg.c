/* See m5jpeg.h. Errors inside libjpeg longjmp back to the function that called it. */
#include "m5jpeg.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char *err;
    size_t errlen;
} m5_error_mgr;

static void m5_error_exit(j_common_ptr cinfo) {
    m5_error_mgr *e = (m5_error_mgr *)cinfo->err;
    char buf[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, buf);
    snprintf(e->err, e->errlen, "%s", buf);
    longjmp(e->jump, 1);
}

static void m5_emit_message(j_common_ptr cinfo, int level) {
    /* A premature end of data means a truncated file: libjpeg would fill the rest with grey
     * and carry on; we refuse instead. Other warnings (extraneous bytes...) are harmless. */
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        m5_error_exit(cinfo);
    }
}

static void m5_setup_errors(struct jpeg_decompress_struct *cinfo, m5_error_mgr *e,
                            char *err, size_t errlen) {
    cinfo->err = jpeg_std_error(&e->pub);
    e->pub.error_exit = m5_error_exit;
    e->pub.emit_message = m5_emit_message;
    e->err = err;
    e->errlen = errlen;
}

static unsigned read16(const uint8_t *p, int big) {
    return big ? ((unsigned)p[0] << 8) | p[1] : ((unsigned)p[1] << 8) | p[0];
}

static unsigned long read32(const uint8_t *p, int big) {
    return big ? ((unsigned long)p[0] << 24) | ((unsigned long)p[1] << 16) |
                     ((unsigned long)p[2] << 8) | p[3]
               : ((unsigned long)p[3] << 24) | ((unsigned long)p[2] << 16) |
                     ((unsigned long)p[1] << 8) | p[0];
}

/* EXIF orientation (tag 0x0112 in IFD0) from an APP1 payload, 1 if absent or invalid. */
static int exif_orientation(const uint8_t *p, unsigned len) {
    if (len < 14 || memcmp(p, "Exif\0\0", 6) != 0) return 1;
    const uint8_t *t = p + 6;
    unsigned tlen = len - 6;
    int big;
    if (t[0] == 'M' && t[1] == 'M') big = 1;
    else if (t[0] == 'I' && t[1] == 'I') big = 0;
    else return 1;
    unsigned long ifd = read32(t + 4, big);
    if (ifd + 2 > tlen) return 1;
    unsigned n = read16(t + ifd, big);
    for (unsigned i = 0; i < n; i++) {
        unsigned long e = ifd + 2 + 12UL * i;
        if (e + 12 > tlen) return 1;
        if (read16(t + e, big) == 0x0112) {
            unsigned v = read16(t + e + 8, big);
            return (v >= 1 && v <= 8) ? (int)v : 1;
        }
    }
    return 1;
}

int m5_jpeg_read_info(const uint8_t *data, size_t len, m5_jpeg_info *info, char *err,
                      size_t errlen) {
    struct jpeg_decompress_struct cinfo;
    m5_error_mgr e;
    m5_setup_errors(&cinfo, &e, err, errlen);
    jpeg_create_decompress(&cinfo);
    if (setjmp(e.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    jpeg_mem_src(&cinfo, data, (unsigned long)len);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&cinfo, TRUE);
    info->width = (int)cinfo.image_width;
    info->height = (int)cinfo.image_height;
    info->components = cinfo.num_components;
    info->colorspace = (int)cinfo.jpeg_color_space;
    info->progressive = cinfo.progressive_mode ? 1 : 0;
    info->orientation = 1;
    for (jpeg_saved_marker_ptr m = cinfo.marker_list; m != NULL; m = m->next) {
        if (m->marker == JPEG_APP0 + 1) {
            info->orientation = exif_orientation(m->data, m->data_length);
            if (info->orientation != 1) break;
        }
    }
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

void m5_jpeg_scaled_size(int width, int height, int scale_num, int *out_w, int *out_h) {
    *out_w = (int)(((long)width * scale_num + 7) / 8);
    *out_h = (int)(((long)height * scale_num + 7) / 8);
}

static inline uint8_t cmyk_channel(int c, int k) {
    /* Pillow: Adobe CMYK is stored inverted; RGB = (255 - C') * (255 - K') / 255 with the
     * inverted values, i.e. c * k / 255 on the raw samples. */
    int v = c * k;
    return (uint8_t)((v + 128 + ((v + 128) >> 8)) >> 8);
}

int m5_jpeg_decode_region(const uint8_t *data, size_t len, int scale_num, int x0, int y0,
                          int w, int h, uint8_t *out, long long max_pixels, int flags,
                          char *err, size_t errlen) {
    struct jpeg_decompress_struct cinfo;
    m5_error_mgr e;
    uint8_t *volatile row = NULL;
    m5_setup_errors(&cinfo, &e, err, errlen);
    jpeg_create_decompress(&cinfo);
    if (setjmp(e.jump)) {
        free(row);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    jpeg_mem_src(&cinfo, data, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    if (max_pixels > 0 && (long long)cinfo.image_width * cinfo.image_height > max_pixels) {
        snprintf(err, errlen, "image of %ux%u pixels exceeds the limit of %lld pixels",
                 cinfo.image_width, cinfo.image_height, max_pixels);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_EXT_RGBX;
    cinfo.scale_num = (unsigned)scale_num;
    cinfo.scale_denom = 8;
    cinfo.dct_method = (flags & M5_JPEG_FAST_IDCT) ? JDCT_IFAST : JDCT_ISLOW;
    cinfo.do_fancy_upsampling = (flags & M5_JPEG_FAST_UPSAMPLE) ? FALSE : TRUE;
    jpeg_start_decompress(&cinfo);
    int ow = (int)cinfo.output_width, oh = (int)cinfo.output_height;
    if (x0 < 0 || y0 < 0 || w <= 0 || h <= 0 || x0 + w > ow || y0 + h > oh) {
        snprintf(err, errlen, "region %dx%d+%d+%d outside the %dx%d scaled image", w, h, x0,
                 y0, ow, oh);
        jpeg_abort_decompress(&cinfo);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    /* Ask for a few more columns than needed: at the right edge of a cropped decode the
     * fancy chroma upsampling lacks its neighbour and differs from a full decode. */
    int cx0 = x0 - 4 < 0 ? 0 : x0 - 4;
    int cx1 = x0 + w + 4 > ow ? ow : x0 + w + 4;
    JDIMENSION xoff = (JDIMENSION)cx0, cw = (JDIMENSION)(cx1 - cx0);
    if (cw < (JDIMENSION)ow) {
        jpeg_crop_scanline(&cinfo, &xoff, &cw);  /* widens to iMCU boundaries */
    }
    int shift = x0 - (int)xoff;
    int nc = cinfo.output_components;
    row = (uint8_t *)malloc((size_t)cw * nc);
    if (row == NULL) {
        snprintf(err, errlen, "out of memory");
        jpeg_abort_decompress(&cinfo);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    if (y0 > 0) jpeg_skip_scanlines(&cinfo, (JDIMENSION)y0);
    for (int y = 0; y < h; y++) {
        JSAMPROW rp = row;
        if (jpeg_read_scanlines(&cinfo, &rp, 1) != 1) {
            snprintf(err, errlen, "decoder returned no scanline at row %d", y0 + y);
            free(row);
            jpeg_abort_decompress(&cinfo);
            jpeg_destroy_decompress(&cinfo);
            return 1;
        }
        uint8_t *dst = out + (size_t)y * w * 4;
        const uint8_t *src = row + (size_t)shift * nc;
        if (!cmyk) {
            memcpy(dst, src, (size_t)w * 4);
        } else {
            for (int x = 0; x < w; x++) {
                int k = src[4 * x + 3];
                dst[4 * x] = cmyk_channel(src[4 * x], k);
                dst[4 * x + 1] = cmyk_channel(src[4 * x + 1], k);
                dst[4 * x + 2] = cmyk_channel(src[4 * x + 2], k);
                dst[4 * x + 3] = 255;
            }
        }
    }
    free(row);
    jpeg_abort_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return 0;
}
