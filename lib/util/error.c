/* util/error.c - status code texts and the per-thread detail message. */
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* One buffer per thread, like libgit2's git_error_last(): a failing call
 * writes it, kvi_error_last() (kv_error_last() in api/) reads it, and threads never see each other's.
 * It is the only thread-local state in the library and holds no resources. */
static _Thread_local char error_message[512];

int kvi_error(int code, const char *fmt, ...)
{
    /* Formatted apart first: callers often wrap the last message,
     * kvi_error(rc, "context: %s", kvi_error_last()), and vsnprintf must not
     * read the buffer it writes. */
    char formatted[sizeof error_message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(formatted, sizeof formatted, fmt, ap);
    va_end(ap);
    memcpy(error_message, formatted, sizeof error_message);
    return code;
}

const char *kvi_error_last(void)
{
    return error_message;
}

const char *kvi_strerror(int code)
{
    switch (code) {
    case KV_OK: return "success";
    case KV_ENOTFOUND: return "key not found";
    case KV_ECONFLICT: return "version conflict";
    case KV_ETOOBIG: return "too big";
    case KV_EINVAL: return "invalid argument";
    case KV_ETIMEDOUT: return "timed out";
    case KV_EUNAVAILABLE: return "not enough replicas available";
    case KV_EUNKNOWN_OUTCOME: return "outcome unknown: the write may or may not have been applied";
    case KV_ECORRUPT: return "corrupt record";
    case KV_EIO: return "I/O error";
    case KV_ECLOSED: return "handle or connection closed";
    case KV_ENOMEM: return "out of memory";
    case KV_ENOTSUP: return "not supported";
    case KV_EBUSY: return "busy (a locked store, an address in use, or a topology change in "
                          "progress)";
    case KV_EPERM: return "not permitted: authenticate first";
    /* cluster/coordinator.h's KVI_ENOT_REPLICA, which a replica answers */
    case KVI_INTERNAL_STATUS: return "not a replica of the key in this node's ring (the "
                                     "rings differ: a topology change is under way)";
    default: return "unknown error code";
    }
}
