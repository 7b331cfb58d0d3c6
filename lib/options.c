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
 * only its prefix is written (and read, by kvi_*_options_upgrade). Each
 * prefix ends where that version's last field ends (not at the next
 * field's offset, which may lie past the end of the caller's struct). */
#define FIELD_END(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

/* The size of version v's prefix of kv_node_options; 0 when unknown. */
static size_t node_prefix(unsigned int v)
{
    switch (v) {
    case 1: return FIELD_END(kv_node_options, vnodes);
    case 2: return FIELD_END(kv_node_options, internode_timeout_ms);
    case 3: return FIELD_END(kv_node_options, failure_pause_ms);
    case KV_NODE_OPTIONS_VERSION: return sizeof(kv_node_options);
    default: return 0;
    }
}

static size_t client_prefix(unsigned int v)
{
    switch (v) {
    case 1: return FIELD_END(kv_client_options, log_level);
    case 2: return FIELD_END(kv_client_options, merge_ctx);
    case 3: return FIELD_END(kv_client_options, tls_key_pem);
    case KV_CLIENT_OPTIONS_VERSION: return sizeof(kv_client_options);
    default: return 0;
    }
}

#define DEFINE_GROWN(fn, upgrade, type, current, initializer, prefix)       \
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
    }                                                                      \
    int upgrade(type *out, const type *in)                                 \
    {                                                                      \
        type defaults = initializer;                                       \
        *out = defaults;                                                   \
        if (!in)                                                           \
            return KV_OK;                                                  \
        if (prefix(in->version) == 0)                                      \
            return kvi_error(KV_EINVAL, "options: unknown version %u", in->version); \
        memcpy(out, in, prefix(in->version));                              \
        out->version = current;                                            \
        return KV_OK;                                                      \
    }

DEFINE_GROWN(kv_node_options_init, kvi_node_options_upgrade, kv_node_options,
             KV_NODE_OPTIONS_VERSION, KV_NODE_OPTIONS_INIT, node_prefix)
DEFINE_GROWN(kv_client_options_init, kvi_client_options_upgrade, kv_client_options,
             KV_CLIENT_OPTIONS_VERSION, KV_CLIENT_OPTIONS_INIT, client_prefix)

static size_t write_prefix(unsigned int v)
{
    switch (v) {
    case 1: return FIELD_END(kv_write_options, context_len);
    case KV_WRITE_OPTIONS_VERSION: return sizeof(kv_write_options);
    default: return 0;
    }
}

DEFINE_GROWN(kv_write_options_init, kvi_write_options_upgrade, kv_write_options,
             KV_WRITE_OPTIONS_VERSION, KV_WRITE_OPTIONS_INIT, write_prefix)
