/*
 * net/http.h - the HTTP/JSON API (BRIEF section 4) on libmicrohttpd, in
 * thread-pool + epoll mode.
 *
 *   PUT    /v1/kv/{key}        {"value": "...", "ttl": 3600, "encoding": "base64"?}
 *   GET    /v1/kv/{key}
 *   DELETE /v1/kv/{key}
 *   POST   /v1/kv/{key}/cas    {"expectedVersion": 5, "newValue": "..."}
 *   POST   /v1/kv/batch        {"operations": [...]}
 *   GET    /v1/health, GET /v1/cluster, GET /metrics
 *   GET    /v1/status          this node's and each member's description
 *   GET    / and /ui           the status page (HTML, net/ui/status.html)
 *
 * {key} is everything after "/v1/kv/", '/' included, percent-decoded with
 * its length (binary-safe); only POST has endpoints under a key, so
 * ".../cas" is a plain key for GET, PUT and DELETE (docs/HTTP.md, Keys).
 *
 * Requests are served by the operations cfg->ops (a node's data calls, or
 * in tests a handle's), so the HTTP layer has no storage logic of its own.
 * A get, put, delete, CAS or batch whose operation has an asynchronous
 * form is started by the server's thread, which then suspends the
 * connection and serves others; the operation's completion resumes it
 * (libmicrohttpd's inter-thread channel, an eventfd), and the same thread
 * kind builds the answer. kvi_http_stop waits for the operations in flight
 * to end.
 *
 * With tokens configured, every request but GET /v1/health, /metrics and
 * the status page itself (/ and /ui: static, no data; its requests to
 * /v1/status carry the token) needs "Authorization: Bearer TOKEN" (RFC 6750), else 401 before any of
 * its body is read (docs/HTTP.md). With a certificate and key, the server
 * speaks HTTPS only, through libmicrohttpd's GnuTLS.
 */
#ifndef KVI_HTTP_H
#define KVI_HTTP_H

#include <stdint.h>

#include <kv/kv.h>
#include "util/log.h"
#include "util/metrics.h"

/* The conflict policy a request asks for with ?policy= (KVI_HTTP_POLICY_OWN:
 * none, the store's own). */
typedef enum kvi_http_policy {
    KVI_HTTP_POLICY_OWN = 0,
    KVI_HTTP_POLICY_LWW = 1,
    KVI_HTTP_POLICY_SIBLINGS = 2
} kvi_http_policy;

/* How an asynchronous operation ended (see kvi_http_ops). */
typedef struct kvi_http_result {
    int rc;              /* a public KV_* code */
    const char *message; /* rc != KV_OK: why; valid during the done call */
    uint64_t version;    /* a write's new version, or the current one with
                          * KV_ECONFLICT */
    kv_value *value;     /* a get's value (KV_OK): the done function owns it */
    char *json;          /* a document answered as it is (GET /v1/status),
                          * malloc'd: the done function owns it */
    size_t json_len;
} kvi_http_result;
typedef void (*kvi_http_done_fn)(void *done_ctx, kvi_http_result *r);

/* How long GET /v1/status gives the members to answer: by default, and at
 * most (?timeoutMs=). */
#define KVI_HTTP_STATUS_TIMEOUT_MS 1000u
#define KVI_HTTP_STATUS_MAX_TIMEOUT_MS 60000u

/* What the server runs requests against. Each call returns a KV_* code
 * (public codes only), with its detail in this thread's kvi_error_last(),
 * and is made from the server's worker threads. The options are at the
 * current version. batch runs b (built with kvi_batch_*) and leaves each
 * operation's public result in it. backup snapshots the store into dir
 * (checked by kvi_check_backup_dir) and sets *report to kv_backup's JSON
 * report (malloc'd). */
typedef struct kvi_http_ops {
    int (*get)(void *ctx, kvi_http_policy p, kv_value **out, const void *key, size_t key_len,
               const kv_read_options *ro);
    int (*put)(void *ctx, kvi_http_policy p, uint64_t *out_version, const void *key,
               size_t key_len, const void *value, size_t value_len,
               const kv_write_options *wo);
    int (*del)(void *ctx, kvi_http_policy p, uint64_t *out_version, const void *key,
               size_t key_len, const kv_write_options *wo);
    int (*cas)(void *ctx, kvi_http_policy p, uint64_t *out_version, const void *key,
               size_t key_len, uint64_t expected, const void *value, size_t value_len,
               const kv_write_options *wo);
    int (*batch)(void *ctx, kvi_http_policy p, kv_batch *b, const kv_write_options *wo,
                 const kv_read_options *ro);
    int (*backup)(void *ctx, char **report, const char *dir);
    /* GET /v1/kv: a page of a scan (kv_scan; cursor NULL = the start). May
     * be NULL: the endpoint then answers 501. */
    int (*scan)(void *ctx, kvi_http_policy p, kv_scan_page **out, const char *cursor,
                size_t limit, const kv_scan_options *so);
    /* Optional asynchronous forms of get, put, del and cas (each NULL: the
     * blocking one runs on the server's thread). Each calls done exactly
     * once, on any thread, possibly before it returns (an invalid request,
     * a store of its own); the server's thread is free meanwhile. Key,
     * value and options are borrowed for the call only: an operation that
     * outlives it copies them. */
    void (*get_async)(void *ctx, kvi_http_policy p, const void *key, size_t key_len,
                      const kv_read_options *ro, kvi_http_done_fn done, void *done_ctx);
    void (*put_async)(void *ctx, kvi_http_policy p, const void *key, size_t key_len,
                      const void *value, size_t value_len, const kv_write_options *wo,
                      kvi_http_done_fn done, void *done_ctx);
    void (*del_async)(void *ctx, kvi_http_policy p, const void *key, size_t key_len,
                      const kv_write_options *wo, kvi_http_done_fn done, void *done_ctx);
    void (*cas_async)(void *ctx, kvi_http_policy p, const void *key, size_t key_len,
                      uint64_t expected, const void *value, size_t value_len,
                      const kv_write_options *wo, kvi_http_done_fn done, void *done_ctx);
    /* Optional asynchronous form of batch (NULL: the blocking one runs on
     * the server's thread). b is the caller's until done runs, and must not
     * be touched meanwhile: done gets KV_OK once each operation's public
     * result is in b, else the failure of the whole batch. done runs
     * exactly once, on any thread, possibly before this returns; the
     * options are borrowed for the call only. */
    void (*batch_async)(void *ctx, kvi_http_policy p, kv_batch *b, const kv_write_options *wo,
                        const kv_read_options *ro, kvi_http_done_fn done, void *done_ctx);
} kvi_http_ops;

typedef struct kvi_http_config {
    const char *listen_addr;  /* "HOST:PORT"; port 0 picks a free port */
    unsigned threads;         /* thread-pool size, >= 2 */
    const kvi_http_ops *ops;  /* borrowed; requests run through it */
    void *ops_ctx;
    /* Requests may ask for a policy (?policy=lww or siblings); 0: the
     * parameter is refused. */
    int policies;
    const char *node_id;      /* for /v1/cluster */
    const char *binary_addr;  /* for /v1/cluster, the binary protocol's address */
    int binary_port;
    uint32_t max_key_size;    /* the store's limits, for 413 before parsing */
    uint32_t max_value_size;
    kvi_metrics *metrics;     /* borrowed; may be NULL */
    const kvi_logger *log;    /* borrowed */
    /* GET /v1/cluster: appends the cluster's JSON description; NULL = this
     * node alone, from node_id and the addresses above. */
    void (*describe)(void *ctx, kvi_buf *out);
    void *describe_ctx;
    /* GET /v1/hotkeys: appends the hottest keys as JSON (with describe_ctx);
     * NULL: the endpoint answers 404. */
    void (*hotkeys)(void *ctx, kvi_buf *out);
    /* GET /v1/consistency/prediction (with describe_ctx): appends the
     * staleness predicted for reads at ro and writes at wo, t_ms after the
     * write (t_ms < 0: a fixed list of delays); KV_EINVAL with *why when
     * the question has no answer. NULL: the endpoint answers 404. */
    int (*predict)(void *ctx, kvi_buf *out, const kv_read_options *ro,
                   const kv_write_options *wo, double t_ms, const char **why);
    /* GET /v1/status (with describe_ctx): calls done exactly once, on any
     * thread, possibly before it returns, with the status JSON in the
     * result's json (KV_OK) or a failure: this node's description and each
     * member's, as the status page shows them (docs/HTTP.md), the members
     * given timeout_ms to answer. The connection is suspended meanwhile, so
     * no HTTP thread waits on a member. NULL: this server alone, its
     * GET /v1/cluster answer as its one node. */
    void (*status_async)(void *ctx, unsigned timeout_ms, kvi_http_done_fn done, void *done_ctx);
    /* Bearer tokens, any of which a request may present; n_tokens 0 = no
     * authentication. Each is 1..KVI_HTTP_TOKEN_MAX bytes of RFC 6750
     * b64token (A-Z a-z 0-9 - . _ ~ + / then any '='), else kvi_http_start
     * fails with KV_EINVAL. Copied: the array and strings may go after
     * kvi_http_start returns. */
    const char *const *tokens;
    size_t n_tokens;
    /* HTTPS: the server's certificate (chain, leaf first) and its private
     * key, unencrypted, as PEM text; both or neither (neither: plain HTTP).
     * Copied. kvi_http_start fails with KV_EINVAL when only one is given,
     * one is empty, or libmicrohttpd refuses them (not PEM, a key that does
     * not match the certificate), and with KV_ENOTSUP when libmicrohttpd
     * was built without TLS. */
    const char *tls_cert_pem;
    const char *tls_key_pem;
} kvi_http_config;

#define KVI_HTTP_TOKEN_MAX 4096u

typedef struct kvi_http kvi_http;

int kvi_http_start(kvi_http **out, const kvi_http_config *cfg);
int kvi_http_port(const kvi_http *h);
void kvi_http_stop(kvi_http *h);

#endif
