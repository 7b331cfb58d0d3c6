/* util/options.c - the versions of the option structs: how long each
 * version's struct is, and its upgrade to the current version. */
#include <stddef.h>
#include <string.h>

#include "util/options.h"

#include <kv/options.h>
#include "util/error.h"

/* Structs that grew: an older version's caller has a shorter struct, so
 * only its prefix is written (by kv_*_options_init) and read (by
 * kvi_*_options_upgrade). Each prefix ends where that version's last field
 * ends (not at the next field's offset, which may lie past the end of the
 * caller's struct). */
#define FIELD_END(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

size_t kvi_open_options_prefix(unsigned int v)
{
    switch (v) {
    case 1: return FIELD_END(kv_open_options, log_level);
    case KV_OPEN_OPTIONS_VERSION: return sizeof(kv_open_options);
    default: return 0;
    }
}

size_t kvi_node_options_prefix(unsigned int v)
{
    switch (v) {
    case 1: return FIELD_END(kv_node_options, vnodes);
    case 2: return FIELD_END(kv_node_options, internode_timeout_ms);
    case 3: return FIELD_END(kv_node_options, failure_pause_ms);
    case 4: return FIELD_END(kv_node_options, max_buffered_bytes);
    case 5: return FIELD_END(kv_node_options, slow_request_ms);
    case 6: return FIELD_END(kv_node_options, ae_digest_bits);
    case 7: return FIELD_END(kv_node_options, stream_bytes_per_s);
    case 8: return FIELD_END(kv_node_options, replace);
    case KV_NODE_OPTIONS_VERSION: return sizeof(kv_node_options);
    default: return 0;
    }
}

size_t kvi_client_options_prefix(unsigned int v)
{
    switch (v) {
    case 1: return FIELD_END(kv_client_options, log_level);
    case 2: return FIELD_END(kv_client_options, merge_ctx);
    case 3: return FIELD_END(kv_client_options, tls_key_pem);
    case 4: return FIELD_END(kv_client_options, max_inflight);
    case KV_CLIENT_OPTIONS_VERSION: return sizeof(kv_client_options);
    default: return 0;
    }
}

size_t kvi_write_options_prefix(unsigned int v)
{
    switch (v) {
    case 1: return FIELD_END(kv_write_options, context_len);
    case KV_WRITE_OPTIONS_VERSION: return sizeof(kv_write_options);
    default: return 0;
    }
}

#define DEFINE_UPGRADE(upgrade, type, current, initializer, prefix)         \
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

DEFINE_UPGRADE(kvi_open_options_upgrade, kv_open_options, KV_OPEN_OPTIONS_VERSION,
               KV_OPEN_OPTIONS_INIT, kvi_open_options_prefix)
DEFINE_UPGRADE(kvi_node_options_upgrade, kv_node_options, KV_NODE_OPTIONS_VERSION,
               KV_NODE_OPTIONS_INIT, kvi_node_options_prefix)
DEFINE_UPGRADE(kvi_client_options_upgrade, kv_client_options, KV_CLIENT_OPTIONS_VERSION,
               KV_CLIENT_OPTIONS_INIT, kvi_client_options_prefix)
DEFINE_UPGRADE(kvi_write_options_upgrade, kv_write_options, KV_WRITE_OPTIONS_VERSION,
               KV_WRITE_OPTIONS_INIT, kvi_write_options_prefix)
