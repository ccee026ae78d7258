/*
 * image_png.c — PNG decoding with libpng, converted to RGB as Pillow 9.4 does it
 * (PngImagePlugin's mode table, then Image.convert('RGB')):
 *   gray 1/2/4/8 bit   "1"/"L;2"/"L;4"/"L": scaled to 0..255 (x255, x85, x17), replicated
 *   gray 16 bit        mode "I" (I;16B): convert('RGB') CLIPS the 16-bit value to 0..255 (i2rgb),
 *                      it does not scale: v >= 255 -> 255
 *   gray+alpha 8/16    "LA" / "LA;16B": the high byte of L replicated, alpha dropped
 *   RGB 8/16           "RGB" / "RGB;16B": the high byte of each sample
 *   RGBA 8/16          "RGBA" / "RGBA;16B": the high byte, alpha dropped (no premultiplication)
 *   palette 1/2/4/8    "P": each index through the PLTE colours; indices beyond the PLTE entries
 *                      get Pillow's initial palette, the grey ramp (i, i, i)
 * tRNS never changes the RGB values (PIL keeps it as info["transparency"]); gAMA/iCCP/sRGB are
 * ignored, as PIL ignores them. Interlaced (Adam7) images are de-interlaced by libpng.
 * Errors: libpng's error callback longjmps back (png_jmpbuf); reading past the end of the input is
 * reported as truncated data. Chunks after the image data are not read (PIL ignores their errors).
 */
#include "data/image_internal.h"

#include <png.h>
#include <setjmp.h>
#include <string.h>

typedef struct {
    const uint8_t *p;
    size_t len, pos;
    char msg[200];
} PngSrc;

static void png_read_mem(png_structp png, png_bytep dst, png_size_t n) {
    PngSrc *s = png_get_io_ptr(png);
    if (n > s->len - s->pos) {
        png_error(png, "truncated PNG data (read past the end of the input)");
    }
    memcpy(dst, s->p + s->pos, n);
    s->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg) {
    PngSrc *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

/* Convert one decoded row (layout given by color type / bit depth after png_set_packing and
   png_set_expand_gray_1_2_4_to_8) to RGB. */
static void png_row_to_rgb(const uint8_t *src, uint8_t *dst, int w, int ctype, int depth, const uint8_t pal[256][3]) {
    int x;
    switch (ctype) {
    case PNG_COLOR_TYPE_GRAY:
        if (depth == 16) {
            for (x = 0; x < w; x++) {
                unsigned v = (unsigned)src[2 * x] << 8 | src[2 * x + 1];
                dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = (uint8_t)(v > 255 ? 255 : v);
            }
        } else {
            for (x = 0; x < w; x++) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = src[x];
        }
        break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: {
        int step = depth == 16 ? 4 : 2;
        for (x = 0; x < w; x++) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = src[step * x];
        break;
    }
    case PNG_COLOR_TYPE_RGB:
        if (depth == 16) {
            for (x = 0; x < 3 * w; x++) dst[x] = src[2 * x];
        } else {
            memcpy(dst, src, (size_t)3 * w);
        }
        break;
    case PNG_COLOR_TYPE_RGB_ALPHA: {
        int bps = depth == 16 ? 2 : 1;
        for (x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) dst[3 * x + c] = src[(4 * x + c) * bps];
        break;
    }
    case PNG_COLOR_TYPE_PALETTE:
        for (x = 0; x < w; x++) memcpy(dst + 3 * x, pal[src[x]], 3);
        break;
    }
}

cm_status cm_decode_png(const uint8_t *bytes, size_t len, const char *what, size_t max_pixels, CmImage *out) {
    PngSrc src = {bytes, len, 0, {0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    if (!png) return cm_error(CM_ERR_OOM, "%s: cannot create PNG reader", cm_what(what));
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return cm_error(CM_ERR_OOM, "%s: cannot create PNG reader", cm_what(what));
    }
    uint8_t *volatile raw = NULL;           /* whole image (interlaced) or one row */
    volatile int have_out = 0;
    out->w = out->h = 0;
    out->rgb = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        cm_free(raw);
        if (have_out) cm_image_free(out);
        return cm_error(CM_ERR_DECODE, "%s: PNG decode error: %s", cm_what(what), src.msg);
    }
    png_set_read_fn(png, &src, png_read_mem);
    /* libpng's own default limits (1e6 x 1e6) are looser than ours; ours is checked below. */
    png_read_info(png, info);
    png_uint_32 w32, h32;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &w32, &h32, &depth, &ctype, &interlace, NULL, NULL);

    cm_status st = cm_image_check_size(what, "PNG", (long long)w32, (long long)h32, max_pixels, out);
    if (st != CM_OK) {
        png_destroy_read_struct(&png, &info, NULL);
        return st;
    }
    have_out = 1;
    int w = (int)w32, h = (int)h32;

    uint8_t pal[256][3];
    for (int i = 0; i < 256; i++) pal[i][0] = pal[i][1] = pal[i][2] = (uint8_t)i;
    if (ctype == PNG_COLOR_TYPE_PALETTE) {
        png_colorp plte = NULL;
        int n_plte = 0;
        if (png_get_PLTE(png, info, &plte, &n_plte) & PNG_INFO_PLTE) {
            for (int i = 0; i < n_plte && i < 256; i++) {
                pal[i][0] = plte[i].red;
                pal[i][1] = plte[i].green;
                pal[i][2] = plte[i].blue;
            }
        }
    }
    if (depth < 8) {
        if (ctype == PNG_COLOR_TYPE_GRAY) png_set_expand_gray_1_2_4_to_8(png);
        else png_set_packing(png);     /* palette indices, one byte each */
    }
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    int channels = png_get_channels(png, info);
    int out_depth = png_get_bit_depth(png, info);
    CM_ASSERT(rowbytes >= (size_t)w * channels * (out_depth == 16 ? 2 : 1));

    if (passes > 1) {
        size_t total;
        if (!cm_mul_ok(rowbytes, (size_t)h, &total)) png_error(png, "image too large");
        raw = cm_malloc(total, "PNG rows");
        if (!raw) png_error(png, "out of memory");
        png_bytep *rows = cm_malloc(sizeof(png_bytep) * (size_t)h, "PNG row pointers");
        if (!rows) png_error(png, "out of memory");
        for (int y = 0; y < h; y++) rows[y] = raw + (size_t)y * rowbytes;
        /* rows is freed on both paths: after png_read_image, and (below) on error via raw's owner */
        png_bytep *volatile rows_v = rows;
        if (setjmp(png_jmpbuf(png))) {
            cm_free(rows_v);
            png_destroy_read_struct(&png, &info, NULL);
            cm_free(raw);
            cm_image_free(out);
            return cm_error(CM_ERR_DECODE, "%s: PNG decode error: %s", cm_what(what), src.msg);
        }
        png_read_image(png, rows);
        cm_free(rows);
        for (int y = 0; y < h; y++)
            png_row_to_rgb(raw + (size_t)y * rowbytes, out->rgb + (size_t)y * w * 3, w, ctype, out_depth, pal);
    } else {
        raw = cm_malloc(rowbytes, "PNG row");
        if (!raw) png_error(png, "out of memory");
        for (int y = 0; y < h; y++) {
            png_read_row(png, raw, NULL);
            png_row_to_rgb(raw, out->rgb + (size_t)y * w * 3, w, ctype, out_depth, pal);
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    cm_free(raw);
    return CM_OK;
}
