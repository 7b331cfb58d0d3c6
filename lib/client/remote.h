/*
 * client/remote.h - the data calls of a client handle: through the router's view
 * and the coordinator when the cluster is known, straight to the endpoints
 * otherwise; the MERGE policy's callback runs here.
 *
 * Threads: as the handle: every call from many threads at once.
 */
#ifndef KVI_REMOTE_H
#define KVI_REMOTE_H

#include <kv/kv.h>
#include "cluster/coordinator.h"

int kvi_remote_put(kv *db, uint64_t *out_version, const void *key, size_t key_len,
                   const void *value, size_t value_len, const kv_write_options *opts);
int kvi_remote_delete(kv *db, uint64_t *out_version, const void *key, size_t key_len,
                      const kv_write_options *opts);
int kvi_remote_cas(kv *db, uint64_t *out_version, const void *key, size_t key_len,
                   uint64_t expected, const void *value, size_t value_len,
                   const kv_write_options *opts);
/* report (may be NULL) says which replicas answered what. */
int kvi_remote_get(kv *db, kv_value **out, const void *key, size_t key_len,
                   const kv_read_options *opts, kvi_read_report *report);
/* MERGE: runs the handle's merge callback on a value's siblings. *out
 * receives the result's holder (kvi_merge_result_free it, also on failure);
 * *data and *len the merged value, pointing into it. */
int kvi_merge_run(kv *db, kv_merge_result **out, const unsigned char **data, size_t *len,
                  const void *key, size_t key_len, const kv_value *siblings);
void kvi_merge_result_free(kv_merge_result *res);
/* What kv_merge_result_set does (api/api.c defines it over this). */
int kvi_merge_result_set(kv_merge_result *result, const void *data, size_t len);

int kvi_remote_batch(kv *db, kv_batch *b, const kv_write_options *wopts,
                     const kv_read_options *ropts);

#endif
