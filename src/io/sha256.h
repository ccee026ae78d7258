/*
 * sha256.h — SHA-256 of a file, streamed (OpenSSL EVP): checkpoints record their base model's.
 * defines: cm_sha256_file
 */
#ifndef CM_IO_SHA256_H
#define CM_IO_SHA256_H

#include "common/common.h"

/* 64 lowercase hex chars + NUL into out. Errors name the file. */
cm_status cm_sha256_file(const char *path, char out[65]);

#endif
