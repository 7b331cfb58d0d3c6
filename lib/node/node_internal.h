/*
 * node/node_internal.h - the node's parts shared by node.c (lifecycle, data
 * calls, request dispatch), node_replica.c (replication requests) and
 * node_figures.c (failure figures). Not installed.
 */
#ifndef KVI_NODE_INTERNAL_H
#define KVI_NODE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "cluster/anti_entropy.h"
#include "cluster/coordinator.h"
#include "cluster/handoff.h"
#include "cluster/hints.h"
#include "cluster/membership.h"
#include "cluster/stream.h"
#include "net/auth.h"
#include "storage/embedded.h"
#include "storage/keylock.h"
#include "net/http.h"
#include "format/message.h"
#include "net/server.h"
#include "node/node.h"
#include "util/slow_log.h"
#include "util/hotkeys.h"
#include "util/metrics.h"
#include "util/ticker.h"
#include "util/validate.h"

/* How far ahead of this node's clock a replicated write time may be. */
#define KVI_MAX_WRITE_AHEAD_MS (24ull * 3600u * 1000u)

struct kvi_node {
    kvi_embedded *store; /* the embedded store underneath */
    kvi_logger store_log; /* its logger (the store options' log_fn) */
    kvi_limits limits;  /* its key and value limits, for every door */
    int siblings;       /* the node's policy is SIBLINGS (else LWW) */
    kvi_server *binary;
    kvi_http *http;
    kvi_metrics *metrics;
    /* The keys this node coordinates most reads and writes of, lately
     * (GET /v1/hotkeys, kvctl top). */
    kvi_hotkeys *hotkeys;
    /* The latency of this node's requests to each peer, by peer id (its
     * view's connections record it; a cluster only). */
    kvi_latency_set *peer_latency;
    kvi_membership *membership;
    kvi_hints hints;          /* kept for homes that missed writes */
    kvi_handoff *handoff;     /* gives them back */
    kvi_anti_entropy *ae;     /* exchanges with the members (NULL: not clustered) */
    /* Tombstones purged once every replica has them (cluster/purge.h):
     * a thread that looks every second and passes over the data when a
     * member's repair or the clock may have made one purgeable. */
    kvi_ticker purger;
    uint64_t purge_window_ms, purge_margin_ms;
    uint64_t purge_seen_repaired; /* the oldest member repair at the last pass */
    uint64_t purge_next_due_ms;   /* from the last pass; 0: none */
    uint64_t purge_last_pass_ms;
    atomic_uint_fast64_t tombstones_purged;
    atomic_uint_fast64_t tombstones_pending;
    /* Builds the digest in the background when no clean close kept one,
     * then re-verifies it against the data (node_digest.c). */
    kvi_ticker digest_keeper;
    unsigned digest_stripes[KVI_KEYLOCK_STRIPES];/* every key lock stripe, to hold them all */
    uint32_t digest_next;          /* the next segment to look at */
    uint32_t digest_run;           /* segments a run, adapted to the keys found */
    uint64_t *digest_scratch;      /* a run's figures */
    uint64_t digest_started_ms;
    atomic_uint_fast64_t digest_mismatches; /* segments the verification corrected */
    atomic_uint_fast64_t digest_passes;     /* whole verification passes */
    kvi_ticker paxos_sweeper; /* removes settled Paxos records */
    kvi_ticker reporter;      /* logs the last minute's slow requests */
    uint32_t slow_ms;         /* the slow-request threshold */
    kvi_slow_log slow_log;    /* one line per slow coordinated request */
    atomic_uint_fast64_t sloppy_writes;
    /* Streams of a topology change (node_stream.c). */
    uint64_t stream_bytes_per_s;         /* 0: the default */
    atomic_uint_fast64_t streamed_bytes; /* records taken in by streams */
    atomic_uint_fast64_t streamed_records;
    atomic_uint_fast64_t streams_active;
    atomic_int cleanup_running;          /* a cleanup drops foreign ranges */
    /* GET /v1/status (node_status.c): set when the node begins to stop;
     * the runs waiting on members (peers loop only); the task that ends
     * them. */
    atomic_int status_stopping;
    struct status_run *status_runs;
    kvi_loop_task status_stop_task;
    kvi_stream_progress stream_progress; /* of the stream running */
    pthread_mutex_t stream_lock;         /* guards the three below */
    char stream_what[96];                /* "join of n4" */
    char stream_sources[256];            /* the sources' ids, comma-separated */
    uint64_t stream_started_ms;          /* wall clock; 0: no stream running */
    atomic_uint_fast64_t read_repairs;  /* replicas repaired by reads coordinated here */
    uint64_t read_repairs_reported;     /* the count at the last report (reporter thread) */
    kvi_coord_tracker coord_ops; /* requests this node coordinates, alive */
    /* The peers loop's writes of an iteration, applied together: the writes
     * coordinated here and the replication that loop reads. */
    struct kvi_write_stage *stage;
    char *node_id;
    char *listen_addr;
    char *http_addr;
    int binary_port;
    int http_port;
    kvi_auth *auth;           /* the binary protocol's gate */
    unsigned char *secret;    /* the cluster secret, for connections to peers */
    kvi_credentials peer_creds; /* points at secret and tls_out */
    struct kvi_tls *tls_in;   /* the binary server's TLS credentials; NULL: none */
    struct kvi_tls *tls_out;  /* this node's, for its connections to peers */
    const kvi_logger *log;
};

/* A node given other members (or seeds) serves the cluster's data; alone,
 * it is its embedded store served over the network. */
int kvi_node_clustered(kvi_node *n);

/* node_topology.c: the membership's stream_gains (cluster/membership.h),
 * and TOPOLOGY_CHANGE's body (JSON {"change", "node"}) run, with the
 * record's JSON appended to answer. */
struct kvi_topology;
int kvi_node_stream_gains(void *ctx, kvi_membership *m, const struct kvi_topology *t,
                          char *err, size_t err_size);
int kvi_node_topology_change_op(kvi_node *n, const void *body, size_t len, kvi_buf *answer);

/* Appends a response frame for a call that returned rc (KV_OK or an error
 * whose detail is this thread's kvi_error_last()). */
void kvi_node_respond(kvi_buf *out, const kvi_frame_header *h, int rc, kvi_response *resp);

/* Appends a GET's answer frame with the value v (borrowed). */
void kvi_node_respond_value(kvi_buf *out, const kvi_frame_header *h, const kv_value *v);
/* The coordinator's environment, with a reference on the view (the caller
 * drops it); KV_OK or KV_EUNAVAILABLE while membership is incomplete. */
struct kvi_coord_env;
int kvi_node_coord_env(kvi_node *n, struct kvi_coord_env *env);
/* node_async.c: the requests a clustered node coordinates without a
 * thread waiting on the replicas (kvi_async_fn). */
int kvi_node_async_start(void *ctx, kvi_server_pending *p, const kvi_frame_header *h,
                         const unsigned char *body, kvi_buf *out);
/* node_batch.c: a BATCH request. kvi_node_run_batch runs it on the
 * calling thread (a node alone: in its embedded store) and appends its
 * answer. kvi_node_batch_start starts it on the peers' loop and answers it
 * through kvi_server_answer (KV_OK), or does not take it (another code:
 * out untouched). */
int kvi_node_run_batch(kvi_node *n, kvi_request *req, const kvi_frame_header *h, kvi_buf *out);
int kvi_node_batch_start(kvi_node *n, kvi_server_pending *p, const kvi_frame_header *h,
                         const unsigned char *body, kvi_buf *out);
/* Starts a batch of the HTTP API on a clustered node (flags: the frame
 * flags of its policy) as kvi_node_batch_start starts a binary one; b stays
 * the caller's and must be left alone until done gets the result (public
 * codes, each operation's in b), once, on any thread. */
void kvi_node_batch_http(kvi_node *n, kv_batch *b, const kv_write_options *wo,
                         const kv_read_options *ro, unsigned flags, kvi_http_done_fn done,
                         void *done_ctx);
/* Starts a GET, PUT, DELETE or CAS of the HTTP API (opcode, the frame
 * flags of its policy; req borrowed for the call) as kvi_node_async_start
 * starts a binary one; done gets its result (public codes), once. */
void kvi_node_async_http(kvi_node *n, uint8_t opcode, unsigned flags, const kvi_request *req,
                         kvi_http_done_fn done, void *done_ctx);
/* node_http.c: the HTTP server's operations (net/http.h) on this node. */
extern const kvi_http_ops kvi_node_http_ops;

/* The binary protocol's request handler (kvi_request_fn). */
void kvi_node_handle_request(void *ctx, const kvi_frame_header *h, const unsigned char *body,
                             kvi_buf *out);

/* node_replica.c */
int kvi_node_replica_op(kvi_node *n, const kvi_request *req, const kvi_frame_header *h,
                        kvi_buf *out);
int kvi_node_paxos_op(kvi_node *n, const kvi_request *req, const kvi_frame_header *h,
                      kvi_buf *out);
int kvi_node_hint_op(kvi_node *n, const kvi_request *req, const kvi_frame_header *h,
                     kvi_buf *out);
/* The server's loop_batch: REPLICATE and REPAIR merged on the I/O loop. */
/* node_writes.c: the puts, deletes and CASes of a node alone that an I/O
 * loop read in one iteration (KVI_SERVER_LOOP_BATCH), made and answered
 * together. */
void kvi_node_local_writes(kvi_node *n, kvi_server_pending **ps, kvi_server_request *reqs,
                           size_t n_reqs);
void kvi_node_replication_loop_batch(void *ctx, kvi_server_pending **ps,
                                     kvi_server_request *reqs, size_t n_reqs);

/* node_ae.c: anti-entropy's AE_DIGEST and AE_KEYS requests from a peer,
 * answered from this node's own store (format/ae.h). */
int kvi_node_ae_op(kvi_node *n, const kvi_request *req, const kvi_frame_header *h,
                   kvi_buf *out);

/* node_scan.c: SCAN and SCAN_RANGE requests, and GET /v1/kv (an op of the
 * HTTP server's table). */
int kvi_node_scan_op(kvi_node *n, const kvi_request *req, const kvi_frame_header *h,
                     kvi_buf *out);
int kvi_node_http_scan(void *ctx, kvi_http_policy p, kv_scan_page **out, const char *cursor,
                       size_t limit, const kv_scan_options *so);

/* node_digest.c: the digest keeper's tick (kvi_tick_fn), and a
 * recomputation of segments [first, end) now (every key lock held a run
 * at a time), after data went by other means than writes (a cleanup).
 * KV_OK, KV_EIO, KV_ENOMEM. */
uint32_t kvi_node_digest_tick(void *ctx);
int kvi_node_digest_recheck(kvi_node *n, uint32_t first, uint32_t end);

/* node_purge.c: the purger's tick (kvi_tick_fn). */
uint32_t kvi_node_purge_tick(void *ctx);

/* node_figures.c: the failure figures in GET /metrics (kvi_metrics_extra_fn). */
void kvi_node_render_metrics(void *ctx, kvi_buf *b);
/* Counts a request of a client (or of the embedding application) for key
 * among the node's hot keys. */
void kvi_node_count_key(kvi_node *n, kvi_hotkey_kind kind, const void *key, size_t key_len);
/* The hottest keys as JSON (GET /v1/hotkeys, "hotKeys" of the
 * description). */
void kvi_node_render_hotkeys(void *ctx, kvi_buf *out);
/* node_status.c: GET /v1/status, this node's description and each
 * member's, asked over the binary protocol; done gets the document once
 * every member has answered or timeout_ms has passed (kvi_http_config's
 * status_async). */
void kvi_node_status_async(void *ctx, unsigned timeout_ms, kvi_http_done_fn done, void *done_ctx);
/* Before the HTTP server stops: status requests waiting on members are
 * answered now with what they have, so that a long ?timeoutMs= does not
 * hold the node's stop. */
void kvi_node_status_stop(kvi_node *n);

/* node_pbs.c: GET /v1/consistency/prediction (kvi_http_config.predict):
 * appends the prediction for reads at ro's level and writes at wo's (the
 * default level meaning ONE), at t_ms after the write, or at a fixed list
 * of delays when t_ms < 0. KV_EINVAL with *why (static) when it cannot. */
int kvi_node_predict(void *ctx, kvi_buf *out, const kv_read_options *ro,
                     const kv_write_options *wo, double t_ms, const char **why);
/* Appends ,"peerLatency":{...} to the description: this node's round
 * trips to each peer, for kvctl predict-consistency. */
void kvi_node_describe_peer_latency(const kvi_node *n, kvi_buf *out);

#endif
