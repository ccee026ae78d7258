/*
 * seed_images.c — writes the JPEG and WebP seeds of the image fuzz target (run by
 * tests/fuzz/make_corpus.py; not part of the library or the tests). Usage: seed_images DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <webp/encode.h>

static void save(const char *dir, const char *name, const unsigned char *d, size_t n) {
    char p[1024];
    snprintf(p, sizeof p, "%s/seed-%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(d, 1, n, f) != n || fclose(f)) { perror(p); exit(1); }
}

static void jpeg(const char *dir, const char *name, int w, int h, int comps, J_COLOR_SPACE cs, int progressive,
                 int quality) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *buf = NULL;
    unsigned long len = 0;
    jpeg_mem_dest(&c, &buf, &len);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = cs;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    unsigned char row[64 * 4];
    while (c.next_scanline < c.image_height) {
        for (int x = 0; x < w * comps; x++) row[x] = (unsigned char)(x * 17 + c.next_scanline * 29);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    save(dir, name, buf, len);
    free(buf);
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    jpeg(argv[1], "rgb.jpg", 9, 7, 3, JCS_RGB, 0, 75);
    jpeg(argv[1], "gray-progressive.jpg", 16, 3, 1, JCS_GRAYSCALE, 1, 50);
    jpeg(argv[1], "cmyk.jpg", 4, 4, 4, JCS_CMYK, 0, 90);
    unsigned char px[6 * 5 * 4];
    for (int i = 0; i < (int)sizeof px; i++) px[i] = (unsigned char)(i * 7);
    uint8_t *out;
    size_t n = WebPEncodeRGB(px, 6, 5, 6 * 3, 80, &out);
    if (!n) return 1;
    save(argv[1], "lossy.webp", out, n);
    WebPFree(out);
    n = WebPEncodeLosslessRGBA(px, 6, 5, 6 * 4, &out);
    if (!n) return 1;
    save(argv[1], "lossless-alpha.webp", out, n);
    WebPFree(out);
    return 0;
}
