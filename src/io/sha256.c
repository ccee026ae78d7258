/*
 * sha256.c — SHA-256 of a file (see sha256.h).
 */
#include "io/sha256.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

cm_status cm_sha256_file(const char *path, char out[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return cm_error(CM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        fclose(f); EVP_MD_CTX_free(ctx);
        return cm_error(CM_ERR_OOM, "%s: SHA-256 init failed", path);
    }
    size_t cap = 1 << 20, n;
    unsigned char *buf = cm_malloc(cap, "sha256 buffer");
    if (!buf) { fclose(f); EVP_MD_CTX_free(ctx); return CM_ERR_OOM; }
    while ((n = fread(buf, 1, cap, f)) > 0) EVP_DigestUpdate(ctx, buf, n);
    bool err = ferror(f);
    fclose(f);
    cm_free(buf);
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    if (err) return cm_error(CM_ERR_IO, "%s: read error while hashing", path);
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
    return CM_OK;
}
