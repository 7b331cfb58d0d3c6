/* format/batch.c - building batches and reading their results. */
#include "format/batch.h"

#include <stdlib.h>
#include <string.h>

#include <kv/options.h>
#include "format/value.h"
#include "util/error.h"
#include "util/validate.h"

int kvi_batch_new(kv_batch **out)
{
    if (!out)
        return kvi_error(KV_EINVAL, "kv_batch_new: out is NULL");
    *out = calloc(1, sizeof **out);
    return *out ? KV_OK : kvi_error(KV_ENOMEM, "out of memory creating a batch");
}

static int append(kv_batch *b, kv_batch_op kind, const void *key, size_t key_len,
                  const void *value, size_t value_len, uint64_t ttl_s)
{
    if (!b)
        return kvi_error(KV_EINVAL, "batch is NULL");
    if (key_len == 0)
        return kvi_error(KV_EINVAL, "batch operation %zu: key is empty", b->count);
    if (!key || (value_len && !value))
        return kvi_error(KV_EINVAL, "batch operation %zu: NULL pointer with a non-zero length", b->count);
    if (b->count >= KV_BATCH_MAX_OPS)
        return kvi_error(KV_ETOOBIG, "a batch holds at most %u operations", KV_BATCH_MAX_OPS);
    /* The absolute ceilings; the handle's own, lower limits are checked when
     * the batch runs. Checked before allocating. */
    if (key_len > KV_MAX_KEY_SIZE_LIMIT)
        return kvi_error(KV_ETOOBIG, "batch operation %zu: key is %zu bytes, the ceiling is %u",
                         b->count, key_len, KV_MAX_KEY_SIZE_LIMIT);
    if (value_len > KV_MAX_VALUE_SIZE_LIMIT)
        return kvi_error(KV_ETOOBIG, "batch operation %zu: value is %zu bytes, the ceiling is %u",
                         b->count, value_len, KV_MAX_VALUE_SIZE_LIMIT);
    if (b->count == b->capacity) {
        size_t cap = b->capacity ? b->capacity * 2 : 8;
        kvi_batch_op *ops = realloc(b->ops, cap * sizeof *ops);
        if (!ops)
            return kvi_error(KV_ENOMEM, "out of memory growing a batch");
        b->ops = ops;
        b->capacity = cap;
    }
    unsigned char *bytes = malloc(key_len + value_len + 1);
    if (!bytes)
        return kvi_error(KV_ENOMEM, "out of memory copying a batch operation");
    memcpy(bytes, key, key_len);
    if (value_len)
        memcpy(bytes + key_len, value, value_len);
    kvi_batch_op *op = &b->ops[b->count++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->key = bytes;
    op->key_len = key_len;
    op->value = bytes + key_len;
    op->value_len = value_len;
    op->ttl_s = ttl_s;
    b->executed = 0;
    return KV_OK;
}

int kvi_batch_put(kv_batch *b, const void *key, size_t key_len,
                 const void *value, size_t value_len, uint64_t ttl_s)
{
    return append(b, KV_BATCH_PUT, key, key_len, value, value_len, ttl_s);
}

int kvi_batch_get(kv_batch *b, const void *key, size_t key_len)
{
    return append(b, KV_BATCH_GET, key, key_len, NULL, 0, 0);
}

int kvi_batch_delete(kv_batch *b, const void *key, size_t key_len)
{
    return append(b, KV_BATCH_DELETE, key, key_len, NULL, 0, 0);
}

size_t kvi_batch_count(const kv_batch *b)
{
    return b ? b->count : 0;
}

int kvi_batch_result(const kv_value **out_value, uint64_t *out_version,
                    const kv_batch *b, size_t i)
{
    if (out_value)
        *out_value = NULL;
    if (out_version)
        *out_version = 0;
    if (!b || i >= b->count)
        return kvi_error(KV_EINVAL, "batch result %zu is out of range", i);
    if (!b->executed)
        return kvi_error(KV_EINVAL, "the batch has not been executed");
    const kvi_batch_op *op = &b->ops[i];
    if (out_value)
        *out_value = op->result;
    if (out_version)
        *out_version = op->version;
    return op->status;
}

void kvi_batch_reset_results(kv_batch *b)
{
    for (size_t i = 0; i < b->count; i++) {
        kvi_value_free(b->ops[i].result);
        b->ops[i].result = NULL;
        b->ops[i].status = KV_OK;
        b->ops[i].version = 0;
    }
    b->executed = 0;
}

void kvi_batch_clear(kv_batch *b)
{
    if (!b)
        return;
    kvi_batch_reset_results(b);
    for (size_t i = 0; i < b->count; i++)
        free(b->ops[i].key);
    b->count = 0;
}

void kvi_batch_free(kv_batch *b)
{
    if (!b)
        return;
    kvi_batch_clear(b);
    free(b->ops);
    free(b);
}

int kvi_batch_prepare(const kvi_limits *l, kv_batch *b, const kv_write_options *wopts,
                      const kv_read_options *ropts)
{
    if (!b || b->count == 0)
        return kvi_error(KV_EINVAL, "the batch is NULL or empty");
    if (b->count > KV_BATCH_MAX_OPS)
        return kvi_error(KV_ETOOBIG, "a batch holds at most %u operations", KV_BATCH_MAX_OPS);
    int rc = KV_OK;
    if (wopts && ((rc = kvi_check_level(wopts->consistency, wopts->w, "w")) != KV_OK ||
                  (rc = kvi_check_ttl(wopts->ttl_s)) != KV_OK))
        return rc;
    if (ropts && (rc = kvi_check_level(ropts->consistency, ropts->r, "r")) != KV_OK)
        return rc;
    kvi_batch_reset_results(b);
    b->executed = 1;
    for (size_t i = 0; i < b->count; i++) {
        kvi_batch_op *op = &b->ops[i];
        rc = kvi_check_batch_op(l, i, op->kind == KV_BATCH_PUT, op->key, op->key_len, op->value,
                                op->value_len, op->ttl_s);
        if (rc != KV_OK) {
            op->status = rc;
            return rc;
        }
    }
    return KV_OK;
}

void kvi_batch_public_results(kv_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->count; i++)
        if (b->ops[i].status != KV_OK)
            b->ops[i].status = kvi_public_status(b->ops[i].status);
}
