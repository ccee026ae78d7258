/*
 * image_jpeg.c — JPEG decoding and encoding with libjpeg-turbo, as Pillow 9.4 drives it.
 *
 * Decoding matches PIL's JpegImagePlugin + JpegDecode.c: libjpeg defaults (ISLOW IDCT, fancy
 * upsampling); 1 component -> "L" (replicated to RGB), 3 -> "RGB", 4 -> "CMYK" read with rawmode
 * "CMYK;I" (every byte inverted: PIL assumes Adobe's inverted CMYK, and libjpeg converts YCCK to
 * CMYK first), then Pillow 9.4's cmyk2rgb: R = (255-K) - MULDIV255(C, 255-K), MULDIV255(a,b) =
 * (t + (t >> 8)) >> 8 with t = a*b + 128 (same for G/M, B/Y). EXIF orientation is ignored.
 * Errors: libjpeg's error_exit longjmps back here (setjmp) and becomes a cm_error naming the input.
 * Truncated data (libjpeg's "premature end of data" warning, JWRN_JPEG_EOF) is an error, because
 * PIL with LOAD_TRUNCATED_IMAGES=False raises "image file is truncated"; other libjpeg warnings
 * (e.g. corrupt entropy data) are ignored as PIL ignores them, so such files decode to whatever
 * libjpeg recovers. The pixel limit is checked after jpeg_read_header, before decompression starts.
 *
 * Encoding (cm_jpeg_encode): libjpeg defaults (4:2:0 chroma subsampling, ISLOW DCT, JFIF header,
 * baseline Huffman tables), quality CM_JPEG_QUALITY_DEFAULT (95) when 0 is given, as PIL's
 * Image.save(..., quality=95) writes it.
 */
#include "data/image_internal.h"

#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} JErr;

static void j_error_exit(j_common_ptr c) {
    JErr *e = (JErr *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jb, 1);
}

/* Warnings (level -1): premature end of data is fatal (PIL raises); others are ignored. */
static void j_emit_message(j_common_ptr c, int level) {
    JErr *e = (JErr *)c->err;
    if (level < 0) {
        if (c->err->msg_code == JWRN_JPEG_EOF) {
            snprintf(e->msg, sizeof e->msg, "truncated JPEG data (premature end of data)");
            longjmp(e->jb, 1);
        }
        c->err->num_warnings++;
    }
}

static void j_output_message(j_common_ptr c) { (void)c; }

static void j_init_err(JErr *e) {
    jpeg_std_error(&e->pub);
    e->pub.error_exit = j_error_exit;
    e->pub.emit_message = j_emit_message;
    e->pub.output_message = j_output_message;
    e->msg[0] = 0;
}

static inline uint8_t muldiv255(int a, int b) {
    int t = a * b + 128;
    return (uint8_t)((t + (t >> 8)) >> 8);
}

cm_status cm_decode_jpeg(const uint8_t *bytes, size_t len, const char *what, size_t max_pixels, CmImage *out) {
    struct jpeg_decompress_struct cinfo;
    JErr jerr;
    uint8_t *volatile row = NULL;          /* CMYK / gray scanline */
    volatile int have_out = 0;
    out->w = out->h = 0;
    out->rgb = NULL;
    if (len > (size_t)0xFFFFFFFFu)
        return cm_error(CM_ERR_DECODE, "%s: JPEG data larger than 4 GiB", cm_what(what));

    j_init_err(&jerr);
    cinfo.err = &jerr.pub;
    if (setjmp(jerr.jb)) {
        jpeg_destroy_decompress(&cinfo);
        cm_free(row);
        if (have_out) cm_image_free(out);
        return cm_error(CM_ERR_DECODE, "%s: JPEG decode error: %s", cm_what(what), jerr.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, bytes, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);

    int nc = cinfo.num_components;
    if (nc == 1) cinfo.out_color_space = JCS_GRAYSCALE;
    else if (nc == 3) cinfo.out_color_space = JCS_RGB;
    else if (nc == 4) cinfo.out_color_space = JCS_CMYK;
    else {
        jpeg_destroy_decompress(&cinfo);
        return cm_error(CM_ERR_UNSUPPORTED, "%s: JPEG with %d components is not supported", cm_what(what), nc);
    }
    /* Bomb check before jpeg_start_decompress allocates anything image-sized. */
    cm_status st = cm_image_check_size(what, "JPEG", cinfo.image_width, cinfo.image_height, max_pixels, out);
    if (st != CM_OK) {
        jpeg_destroy_decompress(&cinfo);
        return st;
    }
    have_out = 1;

    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height;
    CM_ASSERT(w == out->w && h == out->h && cinfo.output_components == nc);
    if (nc != 3) {
        row = cm_malloc((size_t)w * nc, "JPEG scanline");
        if (!row) {
            jpeg_destroy_decompress(&cinfo);
            cm_image_free(out);
            return CM_ERR_OOM;
        }
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        int y = (int)cinfo.output_scanline;
        uint8_t *dst = out->rgb + (size_t)y * w * 3;
        if (nc == 3) {
            JSAMPROW rows[1] = {dst};
            jpeg_read_scanlines(&cinfo, rows, 1);
            continue;
        }
        JSAMPROW rows[1] = {row};
        jpeg_read_scanlines(&cinfo, rows, 1);
        if (nc == 1) {
            for (int x = 0; x < w; x++) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = row[x];
        } else {
            for (int x = 0; x < w; x++) {
                const uint8_t *p = row + 4 * x;
                int c = 255 - p[0], m = 255 - p[1], yy = 255 - p[2], nk = p[3]; /* nk = 255 - (255 - raw K) */
                dst[3 * x + 0] = (uint8_t)(nk - muldiv255(c, nk));
                dst[3 * x + 1] = (uint8_t)(nk - muldiv255(m, nk));
                dst[3 * x + 2] = (uint8_t)(nk - muldiv255(yy, nk));
            }
        }
    }
    /* PIL stops after the last scanline; whatever follows (EOI, trailing bytes) is not checked. */
    jpeg_abort_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    cm_free(row);
    return CM_OK;
}

/* The libjpeg part of cm_jpeg_encode (setjmp in its own frame: nothing it reads is changed
   between setjmp and a longjmp). */
static cm_status jpeg_encode_rgb(const CmImage *img, int q, uint8_t **out, size_t *len) {
    struct jpeg_compress_struct cinfo;
    JErr jerr;
    /* libjpeg's memory destination mallocs (and reallocs) mem.buf; the caller frees it, also
       after an error. In a struct whose address escapes, so it is current after longjmp. */
    struct { unsigned char *buf; unsigned long size; } mem = {NULL, 0};
    j_init_err(&jerr);
    cinfo.err = &jerr.pub;
    if (setjmp(jerr.jb)) {
        jpeg_destroy_compress(&cinfo);
        free(mem.buf);
        return cm_error(CM_ERR_FORMAT, "JPEG encode error: %s", jerr.msg);
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &mem.buf, &mem.size);
    cinfo.image_width = (JDIMENSION)img->w;
    cinfo.image_height = (JDIMENSION)img->h;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, q, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW rows[1] = {img->rgb + (size_t)cinfo.next_scanline * img->w * 3};
        jpeg_write_scanlines(&cinfo, rows, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *out = mem.buf;
    *len = mem.size;
    return CM_OK;
}

cm_status cm_jpeg_encode(const CmImage *img, int quality, uint8_t **out, size_t *len) {
    *out = NULL;
    *len = 0;
    if (!img || !img->rgb || img->w <= 0 || img->h <= 0 || img->w > 65500 || img->h > 65500)
        return cm_error(CM_ERR_ARG, "cm_jpeg_encode: bad image %dx%d", img ? img->w : 0, img ? img->h : 0);
    if (quality < 0 || quality > 100) return cm_error(CM_ERR_ARG, "cm_jpeg_encode: quality %d not in 1..100", quality);
    return jpeg_encode_rgb(img, quality ? quality : CM_JPEG_QUALITY_DEFAULT, out, len);
}
