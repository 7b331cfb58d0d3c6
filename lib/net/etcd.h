/*
 * net/etcd.h - a small etcd v3 client over etcd's JSON gateway (HTTP/1.1
 * POSTs to /v3/... with libcurl; net/etcd_json.h has the pure half): read,
 * compare-and-put and list keys under one prefix, hold a key for as long as
 * this process lives (a session: a lease kept alive from a thread), and
 * watch one key (a streamed /v3/watch held from a thread).
 *
 * Endpoints. A handle names up to KVI_ETCD_MAX_ENDPOINTS members of one etcd
 * cluster. A call tries them in turn, starting from the last one that
 * answered; one that refuses, cannot be reached, times out or answers that
 * it is unavailable (no leader) is skipped for the next within the same
 * call. Each attempt is bounded by timeout_ms, so a call takes at most
 * endpoints x timeout_ms. Plain HTTP only (no TLS, no etcd auth).
 *
 * Writes are never sent twice: kvi_etcd_put_if moves to the next endpoint
 * only when the request cannot have reached etcd (the connection failed, or
 * etcd said it has no leader). A failure after the request went out is
 * KV_EUNKNOWN_OUTCOME: the write may or may not have been applied (read the
 * key to know), as resending it could report a conflict with itself.
 *
 * Keys. Every key is relative to the handle's prefix: "k" is stored in etcd
 * as PREFIX "/" "k". Keys are NUL-terminated strings; values any bytes.
 *
 * Errors come back as status codes (include/kv/common.h), with the detail
 * in the thread's message (util/error.h) naming the handle
 * (kvi_etcd_describe), the endpoint and curl's or etcd's error text.
 *
 * Threads: a handle is safe to use from many threads at once, except
 * kvi_etcd_close, which must not run concurrently with any other call on
 * it (nor from a watch callback). The session and the watch each run on a
 * thread of their own, started by the handle; the watch callback runs on
 * the watch's thread and may call the handle's other functions.
 */
#ifndef KVI_ETCD_H
#define KVI_ETCD_H

#include <stddef.h>
#include <stdint.h>

#include "net/etcd_json.h" /* KVI_ETCD_MAX_ENDPOINTS, KVI_ETCD_DEFAULT_PREFIX */
#include "util/buf.h"
#include "util/log.h"

/* Largest answer read from etcd (a bigger one is KV_EIO). */
#define KVI_ETCD_MAX_ANSWER (16u << 20)

typedef struct kvi_etcd kvi_etcd;

typedef struct kvi_etcd_config {
    /*
     * "etcd://HOST[:PORT][,HOST[:PORT]...][/PREFIX]" (copied). HOST is a
     * name, an IPv4 address or an IPv6 address in brackets; PORT 1..65535,
     * 2379 when left out. PREFIX is one or more '/'-separated segments of
     * printable ASCII other than '?', '#' and '%', no empty or "."/".."
     * segment; trailing slashes are dropped. No PREFIX (or just "/"):
     * KVI_ETCD_DEFAULT_PREFIX.
     */
    const char *url;
    uint32_t timeout_ms;    /* of one HTTP request to one endpoint; 0 = 2000 */
    const kvi_logger *log;  /* borrowed; outlives the handle; may be NULL */
} kvi_etcd_config;

/**
 * kvi_etcd_open - parse cfg into a handle. Contacts nothing: an etcd that
 * is down is found out by the first call.
 * @param out  receives the handle (NULL on failure); close it with
 *             kvi_etcd_close
 * @return KV_OK; KV_EINVAL when cfg or its URL is wrong, the message naming
 *         what (not etcd://, no host, a bad port, an empty endpoint, more
 *         than KVI_ETCD_MAX_ENDPOINTS, a bad prefix); KV_ENOMEM; KV_EIO
 *         when libcurl cannot be initialised.
 */
int kvi_etcd_open(kvi_etcd **out, const kvi_etcd_config *cfg);

/**
 * kvi_etcd_close - stop the watch and the session (promptly: a transfer in
 * progress is cut short), revoke the session's lease (one attempt, so that
 * its key goes at once; if etcd does not answer, the key goes when the
 * lease expires), and free the handle. NULL is a no-op.
 */
void kvi_etcd_close(kvi_etcd *e);

/**
 * kvi_etcd_describe - "etcd at 127.0.0.1:2379,127.0.0.1:2380 prefix /x",
 * for messages. Borrowed: valid until kvi_etcd_close.
 */
const char *kvi_etcd_describe(const kvi_etcd *e);

/**
 * kvi_etcd_get - read a key.
 * @param value         when not NULL, the value is appended to it (the
 *                      caller's buffer; it may grow)
 * @param mod_revision  when not NULL, receives the key's mod_revision (> 0),
 *                      or 0 when it does not exist
 * @return KV_OK; KV_ENOTFOUND; KV_EINVAL (empty key); KV_EUNAVAILABLE when
 *         no endpoint answered (the message names the endpoints and the
 *         last curl or HTTP error); KV_EIO for an answer that does not parse
 *         or an error etcd gave (the message says which); KV_ENOMEM.
 */
int kvi_etcd_get(kvi_etcd *e, const char *key, kvi_buf *value, int64_t *mod_revision);

/**
 * kvi_etcd_put_if - compare-and-put, as one etcd txn: if the key's
 * mod_revision is expect_mod_revision, put value (len bytes, copied);
 * expect_mod_revision 0 means "only if the key does not exist".
 * @param new_revision  when not NULL, receives on KV_OK the txn's revision,
 *                      which is the key's new mod_revision
 * @return KV_OK; KV_ECONFLICT when the key's mod_revision was another (the
 *         message gives it; 0 for a key that does not exist); KV_EINVAL
 *         (empty key, expect_mod_revision < 0, a value etcd refuses);
 *         KV_ETOOBIG (over etcd's request size limit, 1.5 MiB by default);
 *         KV_EUNAVAILABLE (no endpoint answered; nothing was applied);
 *         KV_EUNKNOWN_OUTCOME (sent, but no answer came: it may have been
 *         applied); KV_EIO; KV_ENOMEM.
 */
int kvi_etcd_put_if(kvi_etcd *e, const char *key, const void *value, size_t len,
                    int64_t expect_mod_revision, int64_t *new_revision);

/* Receives one key of kvi_etcd_list: key relative to the prefix
 * (NUL-terminated), the value (len bytes); both valid during the call only.
 * Returns 0 to go on; anything else ends the listing, and kvi_etcd_list
 * returns it. */
typedef int (*kvi_etcd_list_fn)(void *ctx, const char *key, const void *value, size_t len);

/**
 * kvi_etcd_list - every key under PREFIX "/" key_prefix ("" for all the
 * handle's keys), in key order, from one snapshot (read in pages of at
 * most 512 keys pinned to the first page's revision). A key holding a NUL
 * byte (not written through this module) is skipped.
 * @return KV_OK; what each returned; KV_EUNAVAILABLE; KV_EIO (also when
 *         etcd compacted the snapshot away between pages: list again);
 *         KV_EINVAL; KV_ENOMEM. Keys already given stay given.
 */
int kvi_etcd_list(kvi_etcd *e, const char *key_prefix, kvi_etcd_list_fn each, void *ctx);

/**
 * kvi_etcd_session_start - hold key=value (copied) for as long as the
 * handle is open: a lease of ttl_s seconds carries the key, kept alive
 * from a thread every ttl_s/3 seconds. When the lease is lost (it expired
 * while etcd could not be reached, or etcd lost it) the thread grants a new
 * one and puts the key again. Logs once (warn) when etcd stops answering
 * and once (info) when it answers again, not every attempt. The key is not
 * watched: one deleted by somebody else comes back only with a new lease.
 * Returns at once, even when etcd is down (the thread keeps trying); the
 * first attempt is made right away.
 * @param ttl_s  the lease's TTL, 2..3600 (etcd raises a shorter one to its
 *               minimum)
 * @return KV_OK; KV_EINVAL (a session already runs on this handle, empty
 *         key, ttl out of range); KV_ENOMEM; KV_EIO (no thread).
 */
int kvi_etcd_session_start(kvi_etcd *e, const char *key, const void *value, size_t len,
                           uint32_t ttl_s);

/**
 * kvi_etcd_session_alive - 1 when the session's last keepalive (or grant
 * and put) succeeded, 0 otherwise or when no session runs.
 */
int kvi_etcd_session_alive(kvi_etcd *e);

/*
 * Receives the watched key's changes, in revision order: a put as (value,
 * len, mod_revision) -- value not NULL, even for an empty one -- and a
 * delete (or expiry) as (NULL, 0, revision). value is valid during the call
 * only. Runs on the watch's thread.
 */
typedef void (*kvi_etcd_watch_fn)(void *ctx, const void *value, size_t len,
                                  int64_t mod_revision);

/**
 * kvi_etcd_watch_start - watch one key from a thread holding a /v3/watch
 * stream. On every (re)connection the thread first reads the key and calls
 * fn with its current state when that is newer than the last one given
 * (the key's value if its mod_revision is newer; a delete, at the read's
 * revision, when the key is gone but a value was given), then watches from
 * the read's revision + 1, so no change is missed across a disconnection.
 * (Changes made while disconnected are given as their outcome: several
 * puts then may come as the last one.) It reconnects with a backoff of
 * 100 ms doubling to 2 s, moving round the endpoints. fn is first called
 * with the key's value, if it has one, once the first read answers.
 * @return KV_OK; KV_EINVAL (a watch already runs on this handle, empty
 *         key, fn NULL); KV_ENOMEM; KV_EIO (no thread or curl handle).
 */
int kvi_etcd_watch_start(kvi_etcd *e, const char *key, kvi_etcd_watch_fn fn, void *ctx);

#endif
