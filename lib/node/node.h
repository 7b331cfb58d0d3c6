/*
 * node/node.h - a storage node: an embedded store served over the binary
 * protocol and the HTTP/JSON API.
 *
 * Threads: the node's servers run their own threads; kvi_node_store may be
 * used from any thread; kvi_node_stop must not race with other calls.
 */
#ifndef KVI_NODE_H
#define KVI_NODE_H

#include <kv/kv.h>
#include "util/log.h"

typedef struct kvi_node kvi_node;

int kvi_node_start(kvi_node **out, const kv_node_options *opts, const kvi_logger *log);
/* Stops the servers (finishing requests already read), then closes the
 * store. */
void kvi_node_stop(kvi_node *n);
/* Logs (at warn) how many requests since the last report took the node's
 * slow-request threshold or longer, and the slowest; nothing when there
 * were none. A thread of the node runs it once a minute. */
void kvi_node_report(kvi_node *n);
/* The node's own store (kv_compact on a node handle compacts it). */
struct kvi_embedded;
struct kvi_embedded *kvi_node_store(const kvi_node *n);
void kvi_node_ports(const kvi_node *n, int *binary_port, int *http_port);
/* Data calls on the node: in a cluster they run through the coordinator
 * (cluster/coordinator.h), alone against the node's store. flags are the
 * request's frame flags (KVI_FRAME_FLAG_SIBLINGS, _FORWARDED). */
struct kvi_read_report;
int kvi_node_put(kvi_node *n, uint64_t *out_version, const void *key, size_t key_len,
                 const void *value, size_t value_len, const kv_write_options *wo,
                 unsigned flags);
int kvi_node_delete(kvi_node *n, uint64_t *out_version, const void *key, size_t key_len,
                    const kv_write_options *wo, unsigned flags);
int kvi_node_cas(kvi_node *n, uint64_t *out_version, const void *key, size_t key_len,
                 uint64_t expected, const void *value, size_t value_len,
                 const kv_write_options *wo, unsigned flags);
int kvi_node_get(kvi_node *n, kv_value **out, const void *key, size_t key_len,
                 const kv_read_options *ro, unsigned flags, struct kvi_read_report *report);
int kvi_node_batch(kvi_node *n, kv_batch *b, const kv_write_options *wo,
                   const kv_read_options *ro, unsigned flags);
/* A page of a scan (node_scan.c): of the node's store alone, of the
 * cluster's keys in a cluster. `after` is a position (format/scan.h), or
 * for _text a cursor (NULL or "" = the start); limit and options are
 * checked here (kvi_check_scan). flags: KVI_FRAME_FLAG_SIBLINGS for every
 * live sibling. KV_OK with *out (the caller's), or the failure. */
struct kv_scan_page;
int kvi_node_scan(kvi_node *n, struct kv_scan_page **out, const void *after, size_t after_len,
                  size_t limit, const kv_scan_options *so, unsigned flags);
int kvi_node_scan_text(kvi_node *n, struct kv_scan_page **out, const char *cursor,
                       size_t limit, const kv_scan_options *so, unsigned flags);
/* The frame flags of the node's own policy. */
unsigned kvi_node_flags(const kvi_node *n);

/* Snapshots the node's store (storage/backup.h) into dir (len bytes, checked here
 * by kvi_check_backup_dir), or, with own_subdir (a client's backup of the
 * whole cluster), into dir/<node id>. Fills entry, a JSON object, with the
 * outcome. KV_OK or the failure's code. */
struct cJSON;
int kvi_node_backup(kvi_node *n, const char *dir, size_t len, int own_subdir,
                    struct cJSON *entry);

/* Appends the JSON description of the cluster as this node sees it. */
struct kvi_buf;
void kvi_node_describe(const kvi_node *n, struct kvi_buf *out);
/* Starts an anti-entropy repair round on the node (or joins the one
 * running): *round receives its id. KV_OK, KV_ENOTSUP (not in a cluster),
 * KV_EUNAVAILABLE (stopping). */
int kvi_node_repair_start(kvi_node *n, uint64_t *round);
/* A topology change asked for by an operator (kv_topology_change): waits
 * until it is recorded; *out_json (cJSON_free it) the record's epoch and
 * change in progress. KV_OK or the refusal (kv_error_last says why). */
int kvi_node_topology_change(kvi_node *n, const char *change, const char *node_id,
                             char **out_json);

#endif
