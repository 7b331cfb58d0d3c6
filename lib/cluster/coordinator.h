/*
 * cluster/coordinator.h - runs one request against the replicas of its key:
 * quorums, replication, read repair and conflict resolution.
 *
 * Used by a client handle (view->self == -1: it reads from the replicas
 * itself and sends writes to the coordinating replica) and by a node (for
 * the requests it receives over either protocol). See docs/design/CLUSTER.md.
 *
 * Writes: a node in the key's preference list coordinates: it applies the
 * write to its own store (minting the dot and the scalar version), sends
 * the resulting state to the other replicas in parallel (REPLICATE) and
 * answers after W acknowledgements, its own included. Anyone else forwards
 * the write to the first reachable replica of the preference list.
 *
 * Reads: ask R replicas of the preference list for their state (GET_STATE),
 * the next ones when one fails or the answers are slow, answer after R,
 * merge by causality, and send the merged state to the replicas that
 * answered with less: waiting for them when R > 1, so that a later read at
 * R never goes backwards, and in the background at R = 1.
 *
 * Each request is a state machine driven by the answers of the replicas
 * (cluster/coord_op.h): no thread waits on a replica. kvi_coord_read_start
 * and kvi_coord_write_start start one and call back once it ends;
 * kvi_coord_read and kvi_coord_write_run are the same, waited for. A batch
 * is a state machine that starts its operations as those, a bounded number
 * at once (kvi_coord_batch_start; kvi_coord_batch waits for it).
 *
 * Threads: every function may be called from many threads at once. The
 * waiting calls block their thread for up to the internode timeout, and
 * must not be called on the loop of the view's connections (KV_EBUSY).
 * Callbacks run on that loop (or, in a view with no other member, inside
 * the start call).
 */
#ifndef KVI_COORDINATOR_H
#define KVI_COORDINATOR_H

#include <pthread.h>
#include <stdatomic.h>

#include <kv/kv.h>
#include "cluster/view.h"
#include "storage/embedded.h"
#include "util/error.h"

/* On the wire only: a node asked for a key it is not a replica of (its
 * ring differs from the asker's). A client learns the ring again. */
#define KVI_ENOT_REPLICA (KVI_INTERNAL_STATUS)
/* In a read report: the replica's answer was not waited for (R answered
 * first). */
#define KVI_ENOT_WAITED (KVI_INTERNAL_STATUS - 1)
/* In a read report: the replica was not asked (R others answered). */
#define KVI_ENOT_ASKED (KVI_INTERNAL_STATUS - 2)

typedef enum kvi_write_kind {
    KVI_WRITE_PUT = 1,
    KVI_WRITE_DELETE = 2,
    KVI_WRITE_CAS = 3
} kvi_write_kind;

typedef struct kvi_coord_write {
    kvi_write_kind kind;
    const void *key;
    size_t key_len;
    const void *value;       /* PUT and CAS */
    size_t value_len;
    uint64_t ttl_s;          /* 0 = none */
    uint64_t expected_version; /* CAS */
    const void *context;     /* an encoded version vector from a read; may be empty */
    size_t context_len;
    kv_consistency consistency;
    unsigned w;              /* for KV_CONSISTENCY_EXPLICIT */
    /* The SIBLINGS and MERGE policies: a write without a context is
     * concurrent with what replicas hold. Otherwise (LWW) it supersedes
     * what the coordinator holds. */
    int siblings;
    /* Forwarded by another node: coordinate it here, never forward again. */
    int forwarded;
    /* Only home replicas count toward W: no stand-ins (Riak's pw). */
    int home_only;
} kvi_coord_write;

/* Who answered a read, for `kvctl get --verbose`. */
typedef struct kvi_replica_answer {
    char node[KVI_DVV_MAX_ID + 1];
    int status;          /* KV_OK, KV_ENOTFOUND, or why it did not answer */
    uint64_t version;    /* the highest version it holds (tombstones too) */
    unsigned siblings;   /* how many it holds */
    int repaired;        /* it was sent the merged state */
} kvi_replica_answer;

typedef struct kvi_read_report {
    size_t n;
    kvi_replica_answer answers[16];
    unsigned required;   /* R */
} kvi_read_report;

/* Counts the requests alive on behalf of one owner (a node, a client
 * handle): a request outlives its answer until the last message it sent
 * has ended, and holds the view (whose connections log through the
 * owner's logger) until then. The owner waits for none to be left before
 * it frees what they use. */
typedef struct kvi_coord_tracker {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned alive;
} kvi_coord_tracker;
void kvi_coord_tracker_init(kvi_coord_tracker *t);
/* Waits until no request is alive, then frees t's parts. */
void kvi_coord_tracker_drain(kvi_coord_tracker *t);

/* The coordinator's environment: the view (a reference is held by the
 * caller for the call), this node's store (NULL in a client), and limits. */
typedef struct kvi_coord_env {
    kvi_view *view;
    kvi_embedded *local;
    const kvi_logger *log;
    /* Whether the failure detector holds member node_id to be down (NULL:
     * no detector, as in a client). Down replicas are not counted as
     * reachable, are sent no replication, and are read from only when too
     * few others are up. */
    int (*is_down)(void *ctx, const char *node_id);
    void *is_down_ctx;
    /* A replica refused a request as routed by an older ring than its own:
     * learn the newer ring from it, at addr (may be NULL; same ctx). A
     * client learns it when the request fails (client/remote.c). */
    void (*ring_stale)(void *ctx, const char *addr);
    /* This node's view now, with a reference (same ctx; NULL: none): a
     * write refused as routed by an older ring is routed again by it. */
    kvi_view *(*fresh_view)(void *ctx);
    /* Where this node keeps hints for homes that did not take a write
     * (NULL in a client). */
    struct kvi_hints *hints;
    /* Counts writes that a stand-in acknowledged (may be NULL). */
    atomic_uint_fast64_t *sloppy_writes;
    /* Counts replicas sent a merged state by read repair (may be NULL). */
    atomic_uint_fast64_t *read_repairs;
    /* The owner's count of requests alive (required). */
    kvi_coord_tracker *tracker;
    /* Where a write coordinated on this stage's loop is applied, with the
     * iteration's other writes (NULL: each write in place). */
    struct kvi_write_stage *stage;
    /* Where a request that took the slow-request threshold is logged, with
     * its replicas' times (util/slow_log.h; NULL: nowhere). */
    struct kvi_slow_log *slow;
} kvi_coord_env;

/* How an asynchronous request ended. */
typedef struct kvi_coord_result {
    int rc;
    const char *why;       /* rc != KV_OK: the message (valid during the callback) */
    uint64_t version;      /* a write's new version, or the current one with KV_ECONFLICT */
    /* A read's value; the callback may take it (and set it NULL), else it
     * is freed after the callback. */
    kv_value *value;
    /* A read's report when one was asked for (valid during the callback). */
    const kvi_read_report *report;
} kvi_coord_result;
typedef void (*kvi_coord_done_fn)(void *ctx, kvi_coord_result *r);

/* A read, as kvi_coord_read (not SERIAL: KV_EINVAL). want_report: fill
 * r->report. KV_OK: fn runs exactly once; otherwise (KV_EINVAL, KV_ENOMEM)
 * it never does. key is copied. */
int kvi_coord_read_start(const kvi_coord_env *env, const void *key, size_t key_len,
                         kv_consistency consistency, unsigned r, int siblings, int want_report,
                         kvi_coord_done_fn fn, void *ctx);

/* Whether a write must go through per-key Paxos (SERIAL, a CAS at the
 * default level, or a key that has seen SERIAL writes): then it is run by
 * kvi_coord_write_run, not kvi_coord_write_start. 1, 0, or a negative
 * code (reading the Paxos state failed). */
int kvi_coord_write_needs_serial(const kvi_coord_env *env, const kvi_coord_write *w);

/* A write that does not need Paxos, as kvi_coord_write_run. The request's
 * key, value and context are copied. KV_OK: fn runs exactly once;
 * otherwise (KV_ENOMEM) it never does. */
int kvi_coord_write_start(const kvi_coord_env *env, const kvi_coord_write *w,
                          kvi_coord_done_fn fn, void *ctx);

/* Helpers shared with the SERIAL driver (cluster/serial.c). */
/* The key's home replicas (its preference list), as member indexes; at
 * most 16. */
size_t kvi_coord_homes(const kvi_view *v, const void *key, size_t key_len, uint32_t *out);
/* With a topology change in progress (v->future): the key's future homes
 * that are not among its n current homes (member indexes, into out), and
 * for each current home whether it is a future home too (in_future[i]).
 * 0 pending, and every in_future[i] 1, with no change. */
size_t kvi_coord_pending(const kvi_view *v, const void *key, size_t key_len,
                         const uint32_t *homes, size_t n, uint32_t *out,
                         unsigned char *in_future);
/* 1 when member is a future home of token (a change in progress). */
int kvi_coord_future_home(const kvi_view *v, uint64_t token, uint32_t member);
/* The route of a replica request for key in v (format/message.h): a
 * hash of the replicas the request's kind goes to, which a replica
 * computes from its own ring to tell whether a sender on another epoch
 * routed the key as it would. A read (GET_STATE, READ_STATE): the current
 * homes that answer reads. A write (REPLICATE): the homes of both rings
 * (kvi_serial_homes_hash). */
uint64_t kvi_coord_route_hash(const kvi_view *v, uint8_t opcode, const void *key,
                              size_t key_len);
/* Whether the failure detector holds member down (never this node), unless
 * it answered within the last two seconds. */
int kvi_coord_down(const kvi_coord_env *env, uint32_t member);
/* How long a coordinator waits for the replicas. */
uint32_t kvi_coord_timeout_ms(const kvi_view *v);

/* A put, delete or CAS. *out_version (may be NULL) receives the new
 * version, or the current one with KV_ECONFLICT. KV_OK, KV_ECONFLICT,
 * KV_EINVAL (a malformed context, bad consistency), KV_ETOOBIG (sibling
 * limit), KV_EUNAVAILABLE (known not applied), KV_EUNKNOWN_OUTCOME (may
 * have applied), KV_ECORRUPT, KV_EIO. */
int kvi_coord_write_run(const kvi_coord_env *env, const kvi_coord_write *w,
                        uint64_t *out_version);

/* A read. siblings: return every live sibling (SIBLINGS, MERGE) instead of
 * the latest write. report may be NULL. KV_OK, KV_ENOTFOUND,
 * KV_EUNAVAILABLE or KV_ETIMEDOUT (fewer than R answered), KV_ETOOBIG
 * (the merged state would pass the sibling limit), KV_EINVAL. */
int kvi_coord_read(const kvi_coord_env *env, kv_value **out, const void *key, size_t key_len,
                   kv_consistency consistency, unsigned r, int siblings,
                   kvi_read_report *report);

/* Runs each operation of a batch on its own (no atomicity across keys);
 * each has its own status in b. The operations run at once, a bounded
 * number at a time, as the reads, writes and SERIAL rounds of
 * kvi_coord_read and kvi_coord_write_run would run them one by one; those
 * on one key run in the batch's order. b (but not wo or ro) must stay
 * valid, and untouched, until fn runs; fn gets r->rc KV_OK once every
 * operation has its result. KV_OK: fn runs exactly once, on the loop of
 * the view's connections (or inside this call in a view with no other
 * member); otherwise (KV_ENOMEM) it never does. Counted by env->tracker
 * until its last operation has ended. */
int kvi_coord_batch_start(const kvi_coord_env *env, kv_batch *b, const kv_write_options *wo,
                          const kv_read_options *ro, int siblings, kvi_coord_done_fn fn,
                          void *ctx);

/* kvi_coord_batch_start, waited for. Returns KV_OK once all have run, or
 * KV_EBUSY on the loop of the view's connections. */
int kvi_coord_batch(const kvi_coord_env *env, kv_batch *b, const kv_write_options *wo,
                    const kv_read_options *ro, int siblings);

#endif
