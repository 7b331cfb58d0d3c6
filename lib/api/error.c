/* api/error.c - the public error and version calls, over util/error.h. */
#include <kv/common.h>
#include "util/error.h"

const char *kv_error_last(void)
{
    return kvi_error_last();
}

const char *kv_strerror(int code)
{
    return kvi_strerror(code);
}

const char *kv_version(int *major, int *minor, int *patch)
{
    if (major)
        *major = KV_VERSION_MAJOR;
    if (minor)
        *minor = KV_VERSION_MINOR;
    if (patch)
        *patch = KV_VERSION_PATCH;
    return KV_VERSION_STRING;
}
