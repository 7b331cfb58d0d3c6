/*
 * net/server.h - the binary protocol's TCP server: accepts connections,
 * cuts their bytes into frames, hands each request to a handler and writes
 * the responses back.
 *
 * Each of io_threads threads runs an event loop (net/loop.h: its own, or
 * for the first one a loop the caller lends) and accepts on the shared
 * listening socket (EPOLLEXCLUSIVE), so a connection lives on one thread
 * and needs no locks. A slow or stalled client costs only its own
 * buffers: reads never block, and a connection idle for idle_timeout_ms
 * (a half-sent frame included) is closed, unless it is waiting on the
 * server (requests on a worker, or bytes of the budget).
 *
 * Memory is bounded in bytes: what all connections hold (input buffers,
 * request bodies queued for workers, answers not yet written) is kept under
 * max_buffered_bytes. Near the bound the server stops reading (backpressure:
 * the clients' sends block) rather than failing; a frame that can never fit,
 * or that has waited two seconds for room, is answered KV_ENOMEM "server
 * busy: N bytes buffered" and the connection goes on. The last sixteenth of
 * the bound (at most 1 MiB) is kept for those refusals. Each request has
 * 4 KiB set aside for its answer before it runs; answers are never dropped,
 * so a larger one may take the count past the bound by its excess until it
 * is written.
 *
 * Framing errors are answered with an error frame: an unknown opcode or a
 * malformed body keeps the connection; a bad magic, version, checksum or an
 * oversize length closes it, since the stream can no longer be trusted.
 */
#ifndef KVI_SERVER_H
#define KVI_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "format/frame.h"
#include "format/message.h"
#include "util/log.h"

/* Handles one checksum-verified request frame and appends exactly one
 * response frame to out. Called on an I/O thread or a worker, concurrently
 * from several. Answers of offloaded requests may go out in any order; the
 * request id pairs them up. */
typedef void (*kvi_request_fn)(void *ctx, const kvi_frame_header *h,
                               const unsigned char *body, kvi_buf *out);

/* Says where a request runs: 0 on the I/O thread that read it, or 1..
 * KVI_SERVER_MAX_POOLS on a thread of that worker pool. Requests that wait
 * on other nodes must run on a pool, so that I/O threads never block; and
 * requests that other nodes' pooled requests wait on (replication) must run
 * inline or on another pool, so nodes waiting on each other cannot exhaust
 * one pool each and deadlock. Called on the I/O thread. */
#define KVI_SERVER_MAX_POOLS 2u
/* Or KVI_SERVER_ASYNC: the async_start handler takes it on the I/O thread
 * and answers it later, from any thread (an event-driven coordinator). */
#define KVI_SERVER_ASYNC ((int)KVI_SERVER_MAX_POOLS + 1)
/* Or KVI_SERVER_LOOP_BATCH: gathered on the I/O thread with the other such
 * frames its iteration reads, and handed to loop_batch together at the
 * end of the iteration, on that thread (incoming replication: one
 * multi-get and one WriteBatch for all of them). */
#define KVI_SERVER_LOOP_BATCH ((int)KVI_SERVER_MAX_POOLS + 2)
typedef int (*kvi_offload_fn)(void *ctx, const kvi_frame_header *h);

/* A request taken by async_start and not answered yet. */
typedef void kvi_server_pending;
/* Called on the I/O thread for a request the offload function marked
 * KVI_SERVER_ASYNC. body stays valid until the answer. Returns 0 when it
 * took the request: it appends exactly one response frame to out (from
 * any thread) and then calls kvi_server_answer(p), exactly once, now or
 * later. Or returns 1..KVI_SERVER_MAX_POOLS to have the request run on
 * that pool instead (out untouched). */
typedef int (*kvi_async_fn)(void *ctx, kvi_server_pending *p, const kvi_frame_header *h,
                            const unsigned char *body, kvi_buf *out);
/* Hands the answer of a pending request back to its connection. Any
 * thread. The server's stop waits for every pending request's answer. */
void kvi_server_answer(kvi_server_pending *p);

/* Runs several requests of one pool at once: those that queued up while
 * the pool's threads were busy, up to KVI_SERVER_MAX_BATCH, so that a
 * handler can share work between them (replication writes them with one
 * sync). Appends exactly one response frame to each reqs[i].out. */
#define KVI_SERVER_MAX_BATCH 64u
typedef struct kvi_server_request {
    const kvi_frame_header *h;
    const unsigned char *body;
    kvi_buf *out;
} kvi_server_request;
typedef void (*kvi_batch_fn)(void *ctx, kvi_server_request *reqs, size_t n);

/* Takes the KVI_SERVER_LOOP_BATCH frames an iteration read (at most
 * KVI_SERVER_MAX_LOOP_BATCH at once), on the I/O thread, which it must not
 * block for long. Each request is answered as an async_start one is: one
 * response frame appended to reqs[i].out, then kvi_server_answer(ps[i]),
 * exactly once, now or later from any thread; reqs[i].body stays valid
 * until then. */
#define KVI_SERVER_MAX_LOOP_BATCH 256u
typedef void (*kvi_loop_batch_fn)(void *ctx, kvi_server_pending **ps, kvi_server_request *reqs,
                                  size_t n);

/* Per-connection state of the gate, zeroed when the connection is accepted. */
#define KVI_SERVER_GATE_STATE 96u
/* Called on the I/O thread for each complete, checksum-verified request
 * frame before it is dispatched (unknown opcodes included). state is the
 * connection's KVI_SERVER_GATE_STATE bytes. Returns 0 to dispatch the frame
 * as usual, 1 when the gate answered it itself (it appended exactly one
 * response frame to out): a handshake step, or a refusal; 2 as 1, and the
 * connection closes once the answer is written (a failed authentication).
 * NULL gate: every frame is dispatched. conn says what the connection's
 * transport proved: KVI_CONN_* bits. */
#define KVI_CONN_TLS 1u           /* the connection is over TLS */
#define KVI_CONN_CERT_VERIFIED 2u /* and its client showed a certificate the CA signed */
typedef int (*kvi_gate_fn)(void *ctx, unsigned char *state, unsigned conn,
                           const kvi_frame_header *h, const unsigned char *body, kvi_buf *out);

typedef struct kvi_server_config {
    const char *listen_addr;   /* "HOST:PORT"; port 0 picks a free port */
    unsigned io_threads;       /* >= 1 */
    uint32_t max_body;         /* frame body limit */
    uint32_t idle_timeout_ms;  /* close connections silent this long */
    unsigned max_connections;
    kvi_request_fn handler;
    void *handler_ctx;
    kvi_offload_fn offload;    /* NULL: every request runs on its I/O thread */
    unsigned workers[KVI_SERVER_MAX_POOLS]; /* threads of each pool */
    /* Per pool: run queued requests in batches (NULL: one by one through
     * handler). */
    kvi_batch_fn batch[KVI_SERVER_MAX_POOLS];
    /* Takes the requests marked KVI_SERVER_ASYNC (NULL: they run on the
     * I/O thread). */
    kvi_async_fn async_start;
    /* Takes the requests marked KVI_SERVER_LOOP_BATCH (NULL: they run on
     * the I/O thread one by one). */
    kvi_loop_batch_fn loop_batch;
    const kvi_logger *log;     /* borrowed; must outlive the server */
    /* Bound on the bytes all connections hold (see above); 0: the default,
     * KVI_SERVER_DEFAULT_MAX_BUFFERED. Keep it well above max_body: a frame
     * larger than the bound is always refused. */
    size_t max_buffered_bytes;
    /* Access control (see kvi_gate_fn): it sees each frame once, after the
     * frame has been admitted to the byte budget (its answer's room set
     * aside) and before the handler or a worker does. State is aligned for
     * any type. */
    kvi_gate_fn gate;
    void *gate_ctx;
    /* TLS on every connection (net/tls.h): the server's credentials,
     * borrowed, must outlive the server; NULL: plain TCP. The handshake
     * runs in the loop, before any frame is read. */
    const struct kvi_tls *tls;
    /* A loop run by someone else (a node's peers loop) for the first I/O
     * thread, so that the requests it coordinates there answer their
     * connections with no hand-over between threads; NULL: every I/O
     * thread has a loop and thread of its own. It must run until
     * kvi_server_stop returns, and kvi_server_stop must not be called on
     * it. */
    struct kvi_loop *loop;
    /* A socket already listening on listen_addr (kvi_listen), which the
     * server takes over and closes, whether or not it starts; read only
     * when has_listen_fd. A node binds both its ports before it serves
     * either, so a client that reached one finds the other open. */
    int has_listen_fd;
    int listen_fd;
} kvi_server_config;

#define KVI_SERVER_DEFAULT_MAX_BUFFERED ((size_t)256u * 1024u * 1024u)

typedef struct kvi_server kvi_server;

int kvi_server_start(kvi_server **out, const kvi_server_config *cfg);
/* The port actually listened on. */
int kvi_server_port(const kvi_server *s);
/* The bytes connections hold right now, as counted against
 * max_buffered_bytes (for tests and metrics). Any thread. */
size_t kvi_server_buffered_bytes(const kvi_server *s);
/* Stops accepting and reading; answers every request already read (the
 * worker pools finish all they have queued) and gives the connections up
 * to 2 s in all, once the last job is done, to take their answers (a
 * client that does not read is not waited for); then closes every
 * connection and joins the threads. Blocks as long as the slowest queued
 * request runs. NULL: no-op. */
void kvi_server_stop(kvi_server *s);

/* Appends an error response frame (used by handlers too). */
void kvi_error_frame(kvi_buf *out, uint8_t opcode, uint64_t request_id,
                     int status, uint64_t version, const char *message);

#endif
