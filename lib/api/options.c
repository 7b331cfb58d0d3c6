/* api/options.c - the _init functions of the versioned option structs
 * (their versions' lengths are util/options.h's). */
#include <stddef.h>
#include <string.h>

#include <kv/options.h>
#include <kv/scan.h>
#include "util/error.h"
#include "util/options.h"

#define DEFINE_INIT(fn, type, current, initializer)                        \
    int fn(type *opts, unsigned int version)                               \
    {                                                                      \
        if (!opts)                                                         \
            return kvi_error(KV_EINVAL, #fn ": opts is NULL");             \
        if (version != current)                                            \
            return kvi_error(KV_EINVAL, #fn ": unknown version %u", version); \
        type defaults = initializer;                                       \
        *opts = defaults;                                                  \
        return KV_OK;                                                      \
    }

DEFINE_INIT(kv_read_options_init, kv_read_options, KV_READ_OPTIONS_VERSION, KV_READ_OPTIONS_INIT)
DEFINE_INIT(kv_scan_options_init, kv_scan_options, KV_SCAN_OPTIONS_VERSION, KV_SCAN_OPTIONS_INIT)

/* Structs that grew: only the caller's version's prefix is written. */
#define DEFINE_GROWN(fn, type, initializer, prefix)                         \
    int fn(type *opts, unsigned int version)                               \
    {                                                                      \
        if (!opts)                                                         \
            return kvi_error(KV_EINVAL, #fn ": opts is NULL");             \
        if (prefix(version) == 0)                                          \
            return kvi_error(KV_EINVAL, #fn ": unknown version %u", version); \
        type defaults = initializer;                                       \
        defaults.version = version;                                        \
        memcpy(opts, &defaults, prefix(version));                          \
        return KV_OK;                                                      \
    }

DEFINE_GROWN(kv_open_options_init, kv_open_options, KV_OPEN_OPTIONS_INIT,
             kvi_open_options_prefix)
DEFINE_GROWN(kv_node_options_init, kv_node_options, KV_NODE_OPTIONS_INIT,
             kvi_node_options_prefix)
DEFINE_GROWN(kv_client_options_init, kv_client_options, KV_CLIENT_OPTIONS_INIT,
             kvi_client_options_prefix)
DEFINE_GROWN(kv_write_options_init, kv_write_options, KV_WRITE_OPTIONS_INIT,
             kvi_write_options_prefix)
