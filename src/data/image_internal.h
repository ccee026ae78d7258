/*
 * image_internal.h — what the image files share inside src/data (not a contract for other parts):
 * the per-format decoders that image.c dispatches to after sniffing the magic bytes, and the
 * pixel-count check every decoder runs after reading the header and before decoding.
 * defines: cm_decode_jpeg, cm_decode_png, cm_decode_webp, cm_image_check_size, cm_what
 */
#ifndef CM_IMAGE_INTERNAL_H
#define CM_IMAGE_INTERNAL_H

#include "data/image.h"

/* The name used in error messages ("image" when the caller gave none). */
static inline const char *cm_what(const char *what) { return what && *what ? what : "image"; }

/* Refuse w x h images that are empty or exceed max_pixels (0 = CM_DEFAULT_MAX_PIXELS); allocate
   out->rgb (w*h*3) when accepted. Called by each decoder between header and pixel data. */
cm_status cm_image_check_size(const char *what, const char *fmt, long long w, long long h,
                              size_t max_pixels, CmImage *out);

cm_status cm_decode_jpeg(const uint8_t *bytes, size_t len, const char *what, size_t max_pixels, CmImage *out);
cm_status cm_decode_png(const uint8_t *bytes, size_t len, const char *what, size_t max_pixels, CmImage *out);
cm_status cm_decode_webp(const uint8_t *bytes, size_t len, const char *what, size_t max_pixels, CmImage *out);

#endif
