/* api/batch.c - building a kv_batch and reading its results (format/batch.h;
 * kv_batch_execute is in api.c). */
#include <kv/batch.h>
#include "format/batch.h"

int kv_batch_new(kv_batch **out)
{
    return kvi_batch_new(out);
}

int kv_batch_put(kv_batch *b, const void *key, size_t key_len, const void *value,
                 size_t value_len, uint64_t ttl_s)
{
    return kvi_batch_put(b, key, key_len, value, value_len, ttl_s);
}

int kv_batch_get(kv_batch *b, const void *key, size_t key_len)
{
    return kvi_batch_get(b, key, key_len);
}

int kv_batch_delete(kv_batch *b, const void *key, size_t key_len)
{
    return kvi_batch_delete(b, key, key_len);
}

size_t kv_batch_count(const kv_batch *b)
{
    return kvi_batch_count(b);
}

int kv_batch_result(const kv_value **out_value, uint64_t *out_version, const kv_batch *b,
                    size_t i)
{
    return kvi_batch_result(out_value, out_version, b, i);
}

void kv_batch_clear(kv_batch *b)
{
    kvi_batch_clear(b);
}

void kv_batch_free(kv_batch *b)
{
    kvi_batch_free(b);
}
