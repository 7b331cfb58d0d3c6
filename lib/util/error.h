/* util/error.h - the per-thread detail message behind kv_error_last(). */
#ifndef KVI_ERROR_H
#define KVI_ERROR_H

#include <kv/common.h>

/* Sets this thread's detail message (printf format) and returns code, so
 * callers can write `return kvi_error(KV_EINVAL, "key is empty");`. */
int kvi_error(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Codes of the library's own, between its modules, are this and below.
 * They never reach a caller of the public API (kvi_public_status). */
#define KVI_INTERNAL_STATUS (-100)

#endif
