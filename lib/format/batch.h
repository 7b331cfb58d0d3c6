/* format/batch.h - the inside of a kv_batch, shared by the backends. */
#ifndef KVI_BATCH_H
#define KVI_BATCH_H

#include <kv/batch.h>
#include "util/validate.h"

typedef struct kvi_batch_op {
    kv_batch_op kind;
    unsigned char *key;   /* key_len bytes, followed by the value (one allocation) */
    size_t key_len;
    unsigned char *value; /* value_len bytes, inside the key's allocation */
    size_t value_len;
    uint64_t ttl_s;
    /* Results, valid once the batch has been executed. */
    int status;
    uint64_t version;
    kv_value *result;     /* a successful get's value, owned by the batch */
} kvi_batch_op;

struct kv_batch {
    kvi_batch_op *ops;
    size_t count;
    size_t capacity;
    int executed;
};

/* What kv_batch_new, _put, _get, _delete, _count, _result, _clear and
 * _free do (include/kv/batch.h), for the layers below api/. */
int kvi_batch_new(kv_batch **out);
int kvi_batch_put(kv_batch *b, const void *key, size_t key_len, const void *value,
                  size_t value_len, uint64_t ttl_s);
int kvi_batch_get(kv_batch *b, const void *key, size_t key_len);
int kvi_batch_delete(kv_batch *b, const void *key, size_t key_len);
size_t kvi_batch_count(const kv_batch *b);
int kvi_batch_result(const kv_value **out_value, uint64_t *out_version, const kv_batch *b,
                     size_t i);
void kvi_batch_clear(kv_batch *b);
void kvi_batch_free(kv_batch *b);

/* Drops the results of an earlier execution, before running it again. */
void kvi_batch_reset_results(kv_batch *b);

/* Readies b to run against a store with limits l: checks the options and
 * every operation through the validation layer before any runs (one bad
 * operation fails the batch, and its result names it), and drops earlier
 * results. KV_OK or the first failure. */
int kvi_batch_prepare(const kvi_limits *l, kv_batch *b, const kv_write_options *wopts,
                      const kv_read_options *ropts);
/* Turns each failed operation's status into a public code. */
void kvi_batch_public_results(kv_batch *b);

#endif
