/* util/error.h - the per-thread detail message behind kv_error_last(), and
 * the status codes' texts behind kv_strerror(): the library's own names for
 * them (api/error.c defines the public ones over these). */
#ifndef KVI_ERROR_H
#define KVI_ERROR_H

#include <kv/common.h>

/* Sets this thread's detail message (printf format) and returns code, so
 * callers can write `return kvi_error(KV_EINVAL, "key is empty");`. */
int kvi_error(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* This thread's last detail message (never NULL). */
const char *kvi_error_last(void);
/* The text of a KV_* code. */
const char *kvi_strerror(int code);

/* Codes of the library's own, between its modules, are this and below.
 * They never reach a caller of the public API (kvi_public_status). */
#define KVI_INTERNAL_STATUS (-100)

#endif
