/* options.c - the _init functions of the versioned option structs. */
#include <stddef.h>
#include <string.h>

#include "options.h"

#include <kv/options.h>
#include "util/error.h"

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

DEFINE_INIT(kv_open_options_init, kv_open_options, KV_OPEN_OPTIONS_VERSION, KV_OPEN_OPTIONS_INIT)
DEFINE_INIT(kv_read_options_init, kv_read_options, KV_READ_OPTIONS_VERSION, KV_READ_OPTIONS_INIT)

/* Structs that grew: an older version's caller has a shorter struct, so
 * only its prefix is written (and read, by kvi_*_options_upgrade). */
#define V1_NODE_SIZE offsetof(kv_node_options, policy)
#define V1_CLIENT_SIZE offsetof(kv_client_options, policy)
#define V1_WRITE_SIZE offsetof(kv_write_options, home_only)

#define DEFINE_GROWN(fn, upgrade, type, current, initializer, v1_size)      \
    int fn(type *opts, unsigned int version)                               \
    {                                                                      \
        if (!opts)                                                         \
            return kvi_error(KV_EINVAL, #fn ": opts is NULL");             \
        if (version != current && version != 1)                            \
            return kvi_error(KV_EINVAL, #fn ": unknown version %u", version); \
        type defaults = initializer;                                       \
        defaults.version = version;                                        \
        memcpy(opts, &defaults, version == current ? sizeof defaults : v1_size); \
        return KV_OK;                                                      \
    }                                                                      \
    int upgrade(type *out, const type *in)                                 \
    {                                                                      \
        type defaults = initializer;                                       \
        *out = defaults;                                                   \
        if (!in)                                                           \
            return KV_OK;                                                  \
        if (in->version != current && in->version != 1)                    \
            return kvi_error(KV_EINVAL, "options: unknown version %u", in->version); \
        memcpy(out, in, in->version == current ? sizeof *out : v1_size);   \
        out->version = current;                                            \
        return KV_OK;                                                      \
    }

DEFINE_GROWN(kv_node_options_init, kvi_node_options_upgrade, kv_node_options,
             KV_NODE_OPTIONS_VERSION, KV_NODE_OPTIONS_INIT, V1_NODE_SIZE)
DEFINE_GROWN(kv_client_options_init, kvi_client_options_upgrade, kv_client_options,
             KV_CLIENT_OPTIONS_VERSION, KV_CLIENT_OPTIONS_INIT, V1_CLIENT_SIZE)

DEFINE_GROWN(kv_write_options_init, kvi_write_options_upgrade, kv_write_options,
             KV_WRITE_OPTIONS_VERSION, KV_WRITE_OPTIONS_INIT, V1_WRITE_SIZE)
