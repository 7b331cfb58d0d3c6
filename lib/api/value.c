/* api/value.c - the public accessors of kv_value (format/value.h). */
#include <kv/value.h>
#include "format/value.h"

const void *kv_value_data(const kv_value *v, size_t *len)
{
    return kvi_value_data(v, len);
}

uint64_t kv_value_version(const kv_value *v)
{
    return kvi_value_version(v);
}

uint64_t kv_value_expiry_ms(const kv_value *v)
{
    return kvi_value_expiry_ms(v);
}

size_t kv_value_sibling_count(const kv_value *v)
{
    return kvi_value_sibling_count(v);
}

const void *kv_value_sibling(const kv_value *v, size_t i, size_t *len)
{
    return kvi_value_sibling(v, i, len);
}

const void *kv_value_context(const kv_value *v, size_t *len)
{
    return kvi_value_context(v, len);
}

void kv_value_free(kv_value *v)
{
    kvi_value_free(v);
}
