/* value.c - the kv_value returned by kv_get. */
#include "value.h"

#include <stdlib.h>
#include <string.h>

struct kv_value {
    uint64_t version;
    uint64_t expiry_ms;
    size_t len;
    unsigned char data[]; /* len bytes; never NULL, even when empty */
};

kv_value *kvi_value_new(const void *data, size_t len, uint64_t version,
                        uint64_t expiry_ms)
{
    kv_value *v = malloc(sizeof *v + len + 1);
    if (!v)
        return NULL;
    v->version = version;
    v->expiry_ms = expiry_ms;
    v->len = len;
    if (len)
        memcpy(v->data, data, len);
    v->data[len] = 0; /* convenience for text values; not part of len */
    return v;
}

const void *kv_value_data(const kv_value *v, size_t *len)
{
    if (len)
        *len = v ? v->len : 0;
    return v ? v->data : NULL;
}

uint64_t kv_value_version(const kv_value *v)
{
    return v ? v->version : 0;
}

uint64_t kv_value_expiry_ms(const kv_value *v)
{
    return v ? v->expiry_ms : 0;
}

size_t kv_value_sibling_count(const kv_value *v)
{
    return v ? 1 : 0;
}

const void *kv_value_sibling(const kv_value *v, size_t i, size_t *len)
{
    if (!v || i != 0) {
        if (len)
            *len = 0;
        return NULL;
    }
    return kv_value_data(v, len);
}

const void *kv_value_context(const kv_value *v, size_t *len)
{
    /* Single-replica values have no causal context to carry. */
    if (len)
        *len = 0;
    return v ? v->data + v->len : NULL;
}

void kv_value_free(kv_value *v)
{
    free(v);
}
