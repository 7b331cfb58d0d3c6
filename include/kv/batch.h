/*
 * kv/batch.h - batches of put, get and delete operations.
 *
 * Build a batch, run it with kv_batch_execute, then read one result per
 * operation, in the order the operations were added.
 *
 * On an embedded handle a batch is atomic: its writes land in one RocksDB
 * WriteBatch, no other writer interleaves with it, and each operation sees
 * the effects of the operations before it in the same batch (a get after a
 * put of the same key returns the put's value). In a cluster each operation
 * stands alone, like DynamoDB's BatchWriteItem.
 *
 * Threads: a kv_batch is used by one thread at a time.
 *
 * Part of the libkv public API; include <kv/kv.h> rather than this file.
 */
#ifndef KV_BATCH_H
#define KV_BATCH_H

#include "common.h"
#include "value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kv_batch kv_batch;

/** Kinds of batch operation. */
typedef enum kv_batch_op {
    KV_BATCH_PUT = 1,
    KV_BATCH_GET = 2,
    KV_BATCH_DELETE = 3
} kv_batch_op;

/**
 * kv_batch_new - create an empty batch.
 * @param out  receives the batch; the caller owns it and frees it with
 *             kv_batch_free.
 * @return KV_OK, KV_EINVAL (out is NULL) or KV_ENOMEM.
 */
KV_API int kv_batch_new(kv_batch **out);

/**
 * kv_batch_put - append a put. Key and value are copied.
 * @param ttl_s  time to live in seconds, 0 = never expires
 * @return KV_OK; KV_EINVAL for a NULL batch, a NULL key or value pointer with
 *         a non-zero length, or an empty key; KV_ETOOBIG when the batch
 *         already holds KV_BATCH_MAX_OPS operations or the key or value is
 *         over the absolute limits (the handle's own limits are checked by
 *         kv_batch_execute); KV_ENOMEM.
 */
KV_API int kv_batch_put(kv_batch *b, const void *key, size_t key_len,
                        const void *value, size_t value_len, uint64_t ttl_s);

/**
 * kv_batch_get - append a get. The key is copied.
 * @return as kv_batch_put.
 */
KV_API int kv_batch_get(kv_batch *b, const void *key, size_t key_len);

/**
 * kv_batch_delete - append a delete. The key is copied.
 * @return as kv_batch_put.
 */
KV_API int kv_batch_delete(kv_batch *b, const void *key, size_t key_len);

/** kv_batch_count - number of operations in the batch (0 for NULL). */
KV_API size_t kv_batch_count(const kv_batch *b);

/**
 * kv_batch_result - the outcome of operation i after kv_batch_execute.
 *
 * @param out_value    for a successful get: receives the value, owned by the
 *                     batch and valid until the batch is cleared, executed
 *                     again or freed; NULL otherwise. May be NULL.
 * @param out_version  receives the new version (put, delete) or the read
 *                     version (get); may be NULL.
 * @param b            an executed batch
 * @param i            index of the operation, in the order added
 * @return the operation's status: KV_OK; KV_ENOTFOUND (get or delete of an
 *         absent key); KV_ETOOBIG or KV_EINVAL for the operation that made
 *         the whole batch fail; KV_ECORRUPT; or KV_EINVAL when i is out of
 *         range or the batch has not been executed.
 */
KV_API int kv_batch_result(const kv_value **out_value, uint64_t *out_version,
                           const kv_batch *b, size_t i);

/**
 * kv_batch_clear - remove every operation and result, keeping the memory for
 * reuse. NULL is a no-op.
 */
KV_API void kv_batch_clear(kv_batch *b);

/** kv_batch_free - release the batch and its results. NULL is a no-op. */
KV_API void kv_batch_free(kv_batch *b);

#ifdef __cplusplus
}
#endif
#endif /* KV_BATCH_H */
