/*
 * client.h - the remote client: the data calls travel over the binary
 * protocol to a node.
 *
 * Threads: every function may be called from many threads at once, except
 * kvi_client_close. Calls share a few persistent connections, with many
 * requests in flight on each; a reader thread per connection hands each
 * response to the caller waiting for its request id.
 */
#ifndef KVI_CLIENT_H
#define KVI_CLIENT_H

#include <kv/kv.h>
#include "cluster/state.h"
#include "util/log.h"

typedef struct kvi_client kvi_client;

int kvi_client_open(kvi_client **out, const char *const *endpoints, size_t count,
                    const kv_client_options *opts, const kvi_logger *log);
void kvi_client_close(kvi_client *c);

int kvi_client_ping(kvi_client *c);
int kvi_client_put(kvi_client *c, uint64_t *out_version, const void *key, size_t key_len,
                   const void *value, size_t value_len, const kv_write_options *opts);
int kvi_client_get(kvi_client *c, kv_value **out, const void *key, size_t key_len,
                   const kv_read_options *opts);
int kvi_client_delete(kvi_client *c, uint64_t *out_version, const void *key,
                      size_t key_len, const kv_write_options *opts);
int kvi_client_cas(kvi_client *c, uint64_t *out_version, const void *key, size_t key_len,
                   uint64_t expected_version, const void *value, size_t value_len,
                   const kv_write_options *opts);
int kvi_client_batch(kvi_client *c, kv_batch *b, const kv_write_options *wopts,
                     const kv_read_options *ropts);

/* The node's CLUSTER description (JSON) into out. */
int kvi_client_cluster(kvi_client *c, kvi_buf *out);

/* Between nodes. A key's replicated state from the node (its values point
 * into holder; free it with kvi_buf_free). KV_ENOTFOUND when it has none. */
int kvi_client_get_state(kvi_client *c, kvi_state *out, kvi_buf *holder, const void *key,
                         size_t key_len);
/* Sends a state for the node to merge into its own; *version (may be NULL)
 * receives the merged state's version. */
int kvi_client_replicate(kvi_client *c, uint64_t *version, const void *key, size_t key_len,
                         const kvi_state *state);

#endif
