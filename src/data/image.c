/*
 * image.c — image decoding entry points: the format is chosen by the magic bytes (never by the
 * file name, as PIL does), the pixel-count limit refuses decompression bombs after the header and
 * before any pixel is decoded, and the WebP decoder (libwebp). JPEG lives in image_jpeg.c, PNG in
 * image_png.c. Every decoder returns 8-bit interleaved RGB as PIL's Image.open(...).convert('RGB')
 * gives it (DESIGN §5: convert right after decoding; EXIF orientation is not applied).
 * Also the public clipmod_image_* / clipmod_preprocess* wrappers of include/clipmod.h.
 */
#include "data/image_internal.h"

#include <string.h>
#include <webp/decode.h>

const char *cm_image_sniff(const uint8_t *b, size_t len) {
    if (len >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return "jpeg";
    if (len >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return "png";
    if (len >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4)) return "webp";
    if (len >= 6 && (!memcmp(b, "GIF87a", 6) || !memcmp(b, "GIF89a", 6))) return "gif";
    if (len >= 2 && b[0] == 'B' && b[1] == 'M') return "bmp";
    if (len >= 4 && (!memcmp(b, "II*\0", 4) || !memcmp(b, "MM\0*", 4))) return "tiff";
    return NULL;
}

cm_status cm_image_check_size(const char *what, const char *fmt, long long w, long long h,
                              size_t max_pixels, CmImage *out) {
    out->w = out->h = 0;
    out->rgb = NULL;
    if (max_pixels == 0) max_pixels = CM_DEFAULT_MAX_PIXELS;
    if (w <= 0 || h <= 0)
        return cm_error(CM_ERR_DECODE, "%s: %s header gives an empty image (%lldx%lld)", cm_what(what), fmt, w, h);
    if (w > (1LL << 30) || h > (1LL << 30) || (unsigned long long)w * (unsigned long long)h > max_pixels)
        return cm_error(CM_ERR_OOM, "%s: %s image of %lldx%lld = %.0f pixels exceeds the limit of %zu pixels "
                        "(decompression bomb?); refused before decoding", cm_what(what), fmt, w, h,
                        (double)w * (double)h, max_pixels);
    size_t n;
    if (!cm_mul_ok((size_t)w * (size_t)h, 3, &n))
        return cm_error(CM_ERR_OOM, "%s: %lldx%lld image too large", cm_what(what), w, h);
    out->rgb = cm_malloc(n, cm_what(what));
    if (!out->rgb) return CM_ERR_OOM;
    out->w = (int)w;
    out->h = (int)h;
    return CM_OK;
}

void cm_image_free(CmImage *img) {
    if (!img) return;
    cm_free(img->rgb);
    img->rgb = NULL;
    img->w = img->h = 0;
}

cm_status cm_image_decode(const uint8_t *bytes, size_t len, const char *what, size_t max_pixels, CmImage *out) {
    out->w = out->h = 0;
    out->rgb = NULL;
    if (!bytes || len == 0) return cm_error(CM_ERR_DECODE, "%s: empty image data (0 bytes)", cm_what(what));
    const char *fmt = cm_image_sniff(bytes, len);
    if (!fmt) {
        char hex[3 * 8 + 1] = {0};
        for (size_t i = 0; i < len && i < 8; i++) snprintf(hex + 3 * i, 4, "%02x ", bytes[i]);
        if (hex[0]) hex[strlen(hex) - 1] = 0;
        return cm_error(CM_ERR_DECODE, "%s: not a JPEG, PNG or WebP image (first bytes: %s)", cm_what(what), hex);
    }
    cm_status st;
    if (!strcmp(fmt, "jpeg")) st = cm_decode_jpeg(bytes, len, what, max_pixels, out);
    else if (!strcmp(fmt, "png")) st = cm_decode_png(bytes, len, what, max_pixels, out);
    else if (!strcmp(fmt, "webp")) st = cm_decode_webp(bytes, len, what, max_pixels, out);
    else return cm_error(CM_ERR_UNSUPPORTED, "%s: %s images are not supported (only JPEG, PNG and WebP)", cm_what(what), fmt);
    if (st != CM_OK) cm_image_free(out);
    return st;
}

cm_status cm_image_load(const char *path, size_t max_pixels, CmImage *out) {
    out->w = out->h = 0;
    out->rgb = NULL;
    uint8_t *buf;
    size_t len;
    /* 1 GiB of compressed bytes is far beyond any image the pixel limit lets through. */
    cm_status st = cm_read_file(path, (size_t)1 << 30, &buf, &len);
    if (st != CM_OK) return st;
    st = cm_image_decode(buf, len, path, max_pixels, out);
    cm_free(buf);
    return st;
}

/* ---- WebP ---------------------------------------------------------------------------------- */

static const char *webp_status_str(VP8StatusCode s) {
    switch (s) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "corrupt bitstream";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "truncated data";
    default: return "error";
    }
}

/* PIL (9.4, WebPAnimDecoder in MODE_RGBA, then convert('RGB') drops alpha) gives the decoded RGB
   values as they are, not premultiplied; libwebp's MODE_RGB output is the same numbers. */
cm_status cm_decode_webp(const uint8_t *bytes, size_t len, const char *what, size_t max_pixels, CmImage *out) {
    WebPDecoderConfig cfg;
    if (!WebPInitDecoderConfig(&cfg)) return cm_error(CM_ERR_DECODE, "%s: libwebp version mismatch", cm_what(what));
    VP8StatusCode s = WebPGetFeatures(bytes, len, &cfg.input);
    if (s != VP8_STATUS_OK)
        return cm_error(CM_ERR_DECODE, "%s: WebP header: %s", cm_what(what), webp_status_str(s));
    if (cfg.input.has_animation)
        return cm_error(CM_ERR_UNSUPPORTED, "%s: animated WebP is not supported", cm_what(what));
    cm_status st = cm_image_check_size(what, "WebP", cfg.input.width, cfg.input.height, max_pixels, out);
    if (st != CM_OK) return st;
    cfg.output.colorspace = MODE_RGB;
    cfg.output.is_external_memory = 1;
    cfg.output.u.RGBA.rgba = out->rgb;
    cfg.output.u.RGBA.stride = out->w * 3;
    cfg.output.u.RGBA.size = (size_t)out->w * out->h * 3;
    s = WebPDecode(bytes, len, &cfg);
    WebPFreeDecBuffer(&cfg.output);
    if (s != VP8_STATUS_OK) {
        cm_image_free(out);
        return cm_error(CM_ERR_DECODE, "%s: WebP decode: %s", cm_what(what), webp_status_str(s));
    }
    return CM_OK;
}

/* ---- public API (include/clipmod.h, images section) ---------------------------------------- */

clipmod_status clipmod_image_load(const char *path, clipmod_image *out) {
    CmImage im;
    cm_status st = cm_image_load(path, 0, &im);
    out->width = im.w;
    out->height = im.h;
    out->rgb = im.rgb;
    return st;
}

clipmod_status clipmod_image_decode(const uint8_t *bytes, size_t len, const char *name, clipmod_image *out) {
    CmImage im;
    cm_status st = cm_image_decode(bytes, len, name, 0, &im);
    out->width = im.w;
    out->height = im.h;
    out->rgb = im.rgb;
    return st;
}

void clipmod_image_free(clipmod_image *img) {
    if (!img) return;
    cm_free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}

clipmod_status clipmod_preprocess(const clipmod_image *img, float *out) {
    if (!img || !img->rgb) return cm_error(CM_ERR_ARG, "clipmod_preprocess: no image");
    CmImage im = {img->width, img->height, img->rgb};
    return cm_transform_eval(&im, 224, &CM_CLIP_NORMALIZE, out);
}

clipmod_status clipmod_preprocess_file(const char *path, float *out) {
    CmImage im;
    cm_status st = cm_image_load(path, 0, &im);
    if (st != CM_OK) return st;
    st = cm_transform_eval(&im, 224, &CM_CLIP_NORMALIZE, out);
    cm_image_free(&im);
    return st;
}
