/* util/error.h - the per-thread detail message behind kv_error_last(). */
#ifndef KVI_ERROR_H
#define KVI_ERROR_H

#include <kv/common.h>

/* Sets this thread's detail message (printf format) and returns code, so
 * callers can write `return kvi_error(KV_EINVAL, "key is empty");`. */
int kvi_error(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
