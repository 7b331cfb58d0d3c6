/* net/http_routes.h - what http.c (the libmicrohttpd side) and http_routes.c (routing and handlers) share; internal to the HTTP server. */
#ifndef KVI_HTTP_ROUTES_H
#define KVI_HTTP_ROUTES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include <kv/kv.h>
#include "net/http.h"
#include "net/http_json.h"
#include "format/message.h"

/* Slack on top of the encoded value for the rest of a single-key body. */
#define KVI_HTTP_BODY_SLACK (64u * 1024u)
/* Least body limit of a batch. */
#define KVI_HTTP_BATCH_BODY (16u * 1024u * 1024u)

/* A bearer token a request may present (not NUL-terminated). */
typedef struct kvi_http_token {
    char *text;
    size_t len;
} kvi_http_token;

/* Immutable after kvi_http_start, so worker threads read it without locks
 * (but for the count of asynchronous operations, under its lock). */
struct kvi_http {
    struct MHD_Daemon *daemon;
    const kvi_http_ops *ops;
    void *ops_ctx;
    int policies;           /* see kvi_http_config */
    kvi_logger log;
    kvi_metrics *metrics;
    int own_metrics;        /* cfg->metrics was NULL: /metrics still works */
    uint32_t max_key_size;
    uint32_t max_value_size;
    size_t body_limit;      /* PUT and CAS bodies */
    size_t batch_limit;     /* batch bodies */
    int port;
    char node_id[160];
    char address[160];      /* binary protocol, "HOST:PORT"; "" if none */
    char http_address[160]; /* this server, "HOST:PORT" with the real port */
    void (*describe)(void *ctx, kvi_buf *out); /* /v1/cluster; may be NULL */
    void *describe_ctx;
    void (*hotkeys)(void *ctx, kvi_buf *out);  /* /v1/hotkeys; may be NULL */
    int (*predict)(void *ctx, kvi_buf *out, const kv_read_options *ro,
                   const kv_write_options *wo, double t_ms, const char **why);
    void (*status_async)(void *ctx, unsigned timeout_ms, kvi_http_done_fn done,
                         void *done_ctx); /* /v1/status; may be NULL */
    kvi_http_token *tokens; /* n_tokens 0: no authentication */
    size_t n_tokens;
    /* HTTPS: copies of the PEM text, NULL for plain HTTP. MHD keeps
     * pointers to them, so they live as long as the daemon. */
    char *tls_cert, *tls_key;
    /* The first message MHD logs from the thread running kvi_http_start,
     * for its error if the start fails. Written and read by that thread
     * only: mhd_log, also called by the workers, compares ids first. */
    pthread_t starter;
    char start_msg[256];
    /* Asynchronous operations in flight (kvi_http_async). MHD must not be
     * stopped while one holds a connection suspended, so kvi_http_stop
     * sets stopping (later requests run the blocking operations) and waits
     * for live to reach 0. */
    pthread_mutex_t async_lock;
    pthread_cond_t async_idle;
    unsigned async_live;
    int stopping;
};

/* Where an asynchronous operation is: started, its connection suspended
 * waiting for it, or ended with its result stored. */
enum {
    KVI_HTTP_ASYNC_RUNNING = 0,
    KVI_HTTP_ASYNC_SUSPENDED = 1,
    KVI_HTTP_ASYNC_DONE = 2
};

/* One request's asynchronous operation, from its start to the answer built
 * from its result. The connection and the operation's completion each hold
 * a reference, and whichever lets go last frees it: a connection that goes
 * away first (the client hung up as the answer came) leaves the result to
 * be freed by the completion, never touched through freed memory. */
typedef struct kvi_http_async {
    kvi_http *server;
    struct MHD_Connection *mc;
    atomic_int state;       /* KVI_HTTP_ASYNC_* */
    atomic_int refs;
    /* The result, written by the completion before state becomes DONE. */
    int rc;
    uint64_t version;
    kv_value *value;
    char *json; /* GET /v1/status's document */
    size_t json_len;
    char message[512];
    /* A batch's: the batch its operation runs and the parsed body its
     * answer names the operations from (NULL and empty otherwise). Held
     * here, not by the connection, because the operation writes into the
     * batch until it ends, and the connection may be gone by then. */
    kv_batch *batch;
    kvi_http_batch_body body;
} kvi_http_async;

/* Frees a's result (value, batch and body) and a; called by whichever of
 * the connection and the completion lets go of it last. */
void kvi_http_async_free(kvi_http_async *a);

typedef enum kvi_http_route {
    KVI_HTTP_ROUTE_NONE = 0,
    KVI_HTTP_ROUTE_KV,      /* /v1/kv/{key} */
    KVI_HTTP_ROUTE_CAS,     /* /v1/kv/{key}/cas */
    KVI_HTTP_ROUTE_BATCH,   /* POST /v1/kv/batch */
    KVI_HTTP_ROUTE_HEALTH,
    KVI_HTTP_ROUTE_CLUSTER,
    KVI_HTTP_ROUTE_METRICS,
    KVI_HTTP_ROUTE_HOTKEYS, /* GET /v1/hotkeys */
    KVI_HTTP_ROUTE_BACKUP,  /* POST /v1/admin/backup */
    KVI_HTTP_ROUTE_SCAN,    /* GET /v1/kv?cursor=&limit= */
    KVI_HTTP_ROUTE_PREDICT, /* GET /v1/consistency/prediction */
    KVI_HTTP_ROUTE_STATUS,  /* GET /v1/status */
    KVI_HTTP_ROUTE_UI       /* GET / and /ui: the status page */
} kvi_http_route;

typedef enum kvi_http_method {
    KVI_HTTP_OTHER = 0,
    KVI_HTTP_GET,
    KVI_HTTP_PUT,
    KVI_HTTP_DELETE,
    KVI_HTTP_POST
} kvi_http_method;

/* One TCP connection (MHD's socket context). Its requests come one after
 * another, so the buffers are reused across keep-alive requests and the
 * state below describes the request in progress. */
typedef struct kvi_http_conn {
    kvi_http *server;
    struct MHD_Connection *mc;
    kvi_http_async *async;  /* the request's operation in flight, else NULL */
    uint64_t expected;      /* a CAS's expected version, for its 409 */
    int active;             /* a request has started and not completed */
    int answered;           /* its response is queued */
    uint64_t start_ns;
    kvi_metric_op mop;
    kvi_http_route route;
    kvi_http_method method;
    int wants_body;         /* the handler reads the body; else discarded */
    size_t body_limit;
    uint64_t body_seen;     /* bytes uploaded so far, kept or not */
    kv_read_options ropts;
    kv_write_options wopts;
    kvi_http_policy policy; /* ?policy= */
    int force_base64;       /* ?encoding=base64 */
    /* The answer; status 0 = not decided yet. */
    unsigned status;
    int kv_status;          /* for the metrics */
    const char *content_type;
    const char *allow;      /* Allow header of a 405, else NULL */
    const char *challenge;  /* WWW-Authenticate header of a 401, else NULL */
    const char *csp;        /* Content-Security-Policy header, else NULL */
    kvi_buf key;            /* the decoded key */
    kvi_buf context;        /* ?context=, decoded */
    kvi_buf cursor;         /* ?cursor=, decoded, NUL-terminated (scan) */
    size_t limit;           /* ?limit= (scan); 0: not given */
    int keys_only;          /* ?keysOnly=true (scan) */
    double t_ms;            /* ?t= (prediction); < 0: not given */
    unsigned timeout_ms;    /* ?timeoutMs= (status); 0: not given */
    kvi_buf body;           /* the request body, at most body_limit bytes */
    kvi_buf out;            /* the response body */
} kvi_http_conn;

/* First call of a request, headers in: checks the bearer token (when the
 * server has tokens), routes it and checks the method, key and query
 * parameters. Sets c->route, c->mop, c->body_limit, c->wants_body;
 * on an error it decides the answer (c->status != 0). */
void kvi_http_route_request(kvi_http_conn *c, struct MHD_Connection *mc,
                            const char *url, const char *method);

/* The whole body is in and no answer is decided yet: runs the request
 * against the store and decides the answer. */
void kvi_http_handle(kvi_http_conn *c);

/* Decides the answer of a get, put, delete or CAS from its operation's
 * result (blocking or asynchronous: one way to build it). Takes r->value.
 * Also that of a batch run asynchronously, whose batch and body are in
 * c->async (a blocking batch is answered by its handler, with the same
 * code). */
void kvi_http_finish(kvi_http_conn *c, kvi_http_result *r);

/* For a request about to start an asynchronous operation: its state, with
 * c->async set, or NULL (the server is stopping, or out of memory), when
 * the blocking operation must run instead. */
kvi_http_async *kvi_http_async_begin(kvi_http_conn *c);
/* The operation's completion (a kvi_http_done_fn over kvi_http_async). */
void kvi_http_async_done(void *ctx, kvi_http_result *r);

/* Decides an error answer: status, the JSON error body with code and
 * message, and the KV code recorded in the metrics. */
void kvi_http_error(kvi_http_conn *c, unsigned status, const char *code, int kv_status,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
