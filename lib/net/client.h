/*
 * net/client.h - the remote client: the data calls travel over the binary
 * protocol to a node.
 *
 * Threads: every function may be called from many threads at once, except
 * kvi_client_close. Calls share a few persistent connections, with many
 * requests in flight on each, driven by an event loop (net/loop.h): on a
 * thread of the client's own, or, with the manual_loop option, by the
 * application (kvi_client_run). Completion callbacks run on the loop's
 * thread; a blocking call made from one fails with KV_EBUSY.
 */
#ifndef KVI_CLIENT_H
#define KVI_CLIENT_H

#include <pthread.h>
#include <time.h>

#include <kv/kv.h>
#include "format/state.h"
#include "util/log.h"

typedef struct kvi_client kvi_client;

int kvi_client_open(kvi_client **out, const char *const *endpoints, size_t count,
                    const kv_client_options *opts, const kvi_logger *log);
/* A loop that several clients share, on a thread of its own: a node's
 * connections to all its peers, or a client handle's to every member, so
 * that their I/O and callbacks run on one thread. Counted: the creator's
 * reference (kvi_client_loop_release) and one per client on it; the last
 * to go stops the thread. */
typedef struct kvi_client_loop kvi_client_loop;
int kvi_client_loop_new(kvi_client_loop **out);
void kvi_client_loop_release(kvi_client_loop *l);
/* The event loop inside (to lend it to a server whose requests the
 * clients' callbacks answer). Not for a manual loop. */
struct kvi_loop;
struct kvi_loop *kvi_client_loop_event_loop(kvi_client_loop *l);
/* The loop a client runs on (to open others on it). */
kvi_client_loop *kvi_client_loop_of(kvi_client *c);
/* kvi_client_open on a shared loop. */
int kvi_client_open_on(kvi_client **out, const char *const *endpoints, size_t count,
                       const kv_client_options *opts, const kvi_logger *log,
                       kvi_client_loop *loop);
/* Ends every request (callbacks run with KV_EUNAVAILABLE or, for a write
 * that was sent, KV_EUNKNOWN_OUTCOME) and frees the client. Not from a
 * callback of its loop, and with no blocking call running. */
void kvi_client_close(kvi_client *c);

/* Measures every answered request of c, from its submission to its
 * answer, into latency (util/metrics.h), which must outlive c; NULL: stop.
 * Set before the client is used. */
struct kvi_latency;
void kvi_client_set_latency(kvi_client *c, struct kvi_latency *latency);

/* Runs one iteration of a manual_loop client's loop, waiting at most
 * timeout_ms for work: the number of callbacks run, or a negative code
 * (KV_EINVAL when the client has a thread of its own). */
int kvi_client_run(kvi_client *c, int timeout_ms);
/* Readable when the client's loop has work (for a manual_loop client). */
int kvi_client_fd(const kvi_client *c);
/* Waits until *done, which a request's callback sets holding lock and
 * then signals cond: on cond while the client's own thread runs the loop;
 * for a manual_loop client, driving the loop whenever no other thread
 * does, and handing it to a waiting thread when letting go (client.c,
 * "waiting on a manual loop"). Not on the loop's thread. */
void kvi_client_wait(kvi_client *c, pthread_mutex_t *lock, pthread_cond_t *cond,
                     const int *done);
/* KV_EBUSY (message set) on the client's loop thread, where a blocking
 * call would wait for itself (a completion callback); KV_OK elsewhere. */
int kvi_client_refuse_on_loop(const kvi_client *c);
/* Blocking calls waiting for another thread to hand them a manual loop
 * (parked), now: for tests. */
size_t kvi_client_parked(kvi_client *c);

/* --------------------------------------------------- asynchronous requests */

/* How a request ended, told on the loop thread. */
typedef struct kvi_reply {
    int rc;                      /* KV_OK: the node answered (whatever its status) */
    const kvi_frame_header *h;   /* of the answer, when rc is KV_OK */
    const unsigned char *body;   /* the answer's body: valid during the callback only */
    const char *why;             /* rc != KV_OK: what happened */
    int retryable;               /* rc != KV_OK: nothing was applied; sending again is safe */
} kvi_reply;
typedef void (*kvi_reply_fn)(void *ctx, const kvi_reply *reply);

#define KVI_SUBMIT_WRITE 1u /* a lost answer means "unknown outcome" */
#define KVI_SUBMIT_RETRY 2u /* send once more on a new connection when it is safe */

/* Sends a request: frame was begun with kvi_frame_begin and holds the body;
 * the client takes it (on failure too) and fills in the header. KV_OK: fn
 * runs exactly once, on the loop thread, when the request ends (answer,
 * timeout, broken connection, or the client closing). Otherwise fn never
 * runs. Any thread, the loop's included (callbacks may submit). */
int kvi_client_submit(kvi_client *c, kvi_buf *frame, uint8_t opcode, uint16_t extra_flags,
                      unsigned flags, kvi_reply_fn fn, void *ctx);
/* Decodes a reply into resp (pointing into the reply's body): KV_OK, or the
 * error (an error frame's status and message, or the reply's own). */
int kvi_reply_decode(kvi_response *resp, const kvi_reply *reply, uint8_t opcode);

/* The value of a decoded GET answer (every sibling, the version, expiry
 * and context), copied; NULL when out of memory. Reads resp's siblings. */
kv_value *kvi_value_from_response(kvi_response *resp);

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
/* A request whose body and answer are each one `bytes` value: anti-entropy's
 * (KVI_OP_AE_DIGEST, KVI_OP_AE_KEYS: bodies of format/ae.h) and
 * KVI_OP_REPAIR_START. The answer's value replaces answer's contents. Sent
 * as a read: safe to send again. Drives a manual loop itself, as every
 * blocking call does. */
int kvi_client_value_call(kvi_client *c, uint8_t opcode, const void *body, size_t len, kvi_buf *answer);

/* kvi_client_value_call sent as a write: an answer lost after the request
 * reached the socket is KV_EUNKNOWN_OUTCOME, and it is never sent twice
 * (KVI_OP_BACKUP). */
int kvi_client_value_write(kvi_client *c, uint8_t opcode, const void *body, size_t len,
                           kvi_buf *answer);

/* kvi_client_submit of a request whose body is one `bytes` value (as
 * kvi_client_value_call's), asynchronously. */
int kvi_client_submit_value(kvi_client *c, uint8_t opcode, const void *body, size_t len,
                            unsigned flags, kvi_reply_fn fn, void *ctx);

/* A client to the member at addr (on loop when not NULL), proving the
 * cluster secret and on TLS as creds say (may be NULL). */
struct kvi_credentials;
int kvi_client_open_peer(kvi_client **out, const char *addr, const kv_client_options *co,
                         const struct kvi_credentials *creds, const kvi_logger *log,
                         kvi_client_loop *loop);

/* KV_OK when a connection to the node is up or can be made now. */
int kvi_client_connect(kvi_client *c);
/* kvi_client_connect without waiting: fn runs exactly once, on the loop
 * thread, with rc KV_OK once a connection is up (inside this call when one
 * is up already and the caller is on the loop thread), or the failure.
 * KV_OK, or KV_ENOMEM (fn never runs). Any thread. */
int kvi_client_connect_async(kvi_client *c, kvi_reply_fn fn, void *ctx);
/* The event loop the client's connections and callbacks run on: a
 * coordinator that talks to several members through clients sharing one
 * loop runs its state machines there. */
struct kvi_loop;
struct kvi_loop *kvi_client_event_loop(const kvi_client *c);
/* Connections of a node to its peers start from the node's own listen
 * host (kvi_addr_source), as Cassandra binds to listen_address, so peers
 * and packet filters see which node connects. NULL or a wildcard host:
 * the kernel picks. Set before use. */
void kvi_client_set_source(kvi_client *c, const char *listen);
/* Credentials shown on every new connection (copied; set before use): the
 * cluster secret (a node's connections to its peers prove it), or a client
 * token. NULL/0 clears them. KV_OK or KV_ENOMEM. */
int kvi_client_set_credentials(kvi_client *c, const unsigned char *secret, size_t secret_len,
                               const char *token);
/* TLS credentials for every new connection, borrowed (must outlive the
 * client; set before use): a node's own, for its connections to peers.
 * A client handle makes its own from its options. */
struct kvi_tls;
void kvi_client_set_tls(kvi_client *c, const struct kvi_tls *tls);
/* Frame flags sent with every request of this client (set before use). */
void kvi_client_set_flags(kvi_client *c, uint16_t flags);

/* Makes every new connection start with an exchange whose answer shows
 * whether the endpoint is a libkv node (client.c, PROBE_ID): a PING when
 * there is no handshake. For the endpoints an application gives
 * (kv_client_open), which may be a node's HTTP port by mistake; a node's
 * connections to its members skip it, so that starting a call never waits
 * on a member that is paused. */
void kvi_client_set_probe(kvi_client *c, int on);
uint32_t kvi_client_timeout_ms(const kvi_client *c);
/* When the node last answered anything on this client (CLOCK_MONOTONIC ms;
 * 0 = never): first-hand evidence that it is alive. */
uint64_t kvi_client_last_answer_ms(kvi_client *c);
/* At most this many requests in flight per connection (0 = no limit; set
 * before use). A request waits up to the request timeout for a slot, then
 * fails with KV_EUNAVAILABLE (not sent). A request that timed out keeps its
 * slot until the node answers it or the connection is replaced. */
void kvi_client_set_max_inflight(kvi_client *c, unsigned max_per_connection);
/* A CLOCK_MONOTONIC deadline ms from now. */
struct timespec kvi_deadline_after(uint32_t ms);

/* ------------------------------------------------------- fan-out calls
 *
 * A coordinator sends one request to each of several nodes and waits until
 * enough have answered. Each call is started (sent) at once; the fan-out
 * counts the calls that completed and those answered with status KV_OK.
 * Calls still pending when the caller has heard enough are given up by
 * kvi_call_finish: the request was sent and the node still acts on it, but
 * its answer is dropped. (Built on kvi_client_submit, for coordinators that
 * still block a thread per request.) */
typedef struct kvi_fanout {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned done; /* calls completed: answered, failed or never sent */
    unsigned ok;   /* of those, answered with KV_OK or KV_ENOTFOUND */
} kvi_fanout;

void kvi_fanout_init(kvi_fanout *fo);
void kvi_fanout_destroy(kvi_fanout *fo);
/* Counts an operation done without a call (the coordinator's own replica). */
void kvi_fanout_local(kvi_fanout *fo, int ok);
/* Waits until want_ok calls answered KV_OK, or total completed, or the
 * deadline passed; returns how many answered KV_OK. */
unsigned kvi_fanout_wait(kvi_fanout *fo, unsigned want_ok, unsigned total,
                         const struct timespec *deadline);

typedef struct kvi_call kvi_call;
/* Sends req (with extra frame flags) and returns the call to finish, or
 * NULL when out of memory; either way it is counted in fo. A call that
 * could not be sent completes at once. */
kvi_call *kvi_call_start(kvi_client *c, kvi_fanout *fo, const kvi_request *req,
                         uint16_t extra_flags, int is_write);
/* The same with an already encoded request body (forwarding). */
kvi_call *kvi_call_start_raw(kvi_client *c, kvi_fanout *fo, uint8_t opcode, const void *body,
                             size_t body_len, uint16_t extra_flags, int is_write);
/* 1 when the call has completed (answered, failed, or never sent; NULL
 * too), so kvi_call_finish will not give it up: a driver that feeds each
 * answer to a state machine as it comes asks this after each wake-up. */
int kvi_call_done(kvi_call *call);
/* Ends a call (NULL is accepted): KV_OK with the response's header and body
 * (malloc'd; the caller frees it) when the node answered, whatever its
 * status; otherwise what no answer means (KV_EUNAVAILABLE, KV_ETIMEDOUT,
 * KV_EUNKNOWN_OUTCOME for a write). Frees the call. */
int kvi_call_finish(kvi_call *call, kvi_frame_header *h, unsigned char **body);
/* Runs fn(ctx, delivered) exactly once, when the call ends: delivered is 1
 * when the node answered KV_OK, 0 when it answered an error, the request
 * could not be sent, or the connection failed first. Calls given up on by
 * kvi_call_finish end later, on the client's loop thread, at the latest
 * when the request times out (fn must not block long or take a lock held
 * around kvi_call_* calls). Set before
 * kvi_call_finish; a NULL call runs fn(ctx, 0) at once. fn owns ctx. A
 * coordinator uses it to keep a hint for a replica that never took a
 * write, even one it stopped waiting for. */
typedef void (*kvi_call_after_fn)(void *ctx, int delivered);
void kvi_call_set_after(kvi_call *call, kvi_call_after_fn fn, void *ctx);
/* Decodes an answer; an error frame's status and message become the result. */
int kvi_call_decode(kvi_response *resp, uint8_t opcode, const kvi_frame_header *h,
                    const unsigned char *body);

#endif
