/*
 * net/etcd_json.h - the pure half of the etcd client (net/etcd.h): its
 * URL, the request bodies it sends to etcd's v3 JSON gateway, the parsers
 * of the answers, and the splitter of a streamed answer into its messages.
 * No I/O, so arbitrary bytes can be fed to them (fuzz/fuzz_etcd.c).
 *
 * The gateway speaks proto3 JSON (checked against etcd 3.4):
 *  - bytes (keys, values) are standard base64 with '=' padding;
 *  - int64 fields (revisions, versions, lease IDs, TTLs) are JSON strings
 *    ("revision": "12"); numbers are accepted too;
 *  - a field equal to its default is left out: "succeeded" absent is false,
 *    "kvs" absent is no key, "value" absent is the empty value, "more"
 *    absent is false, an event's "type" absent is PUT;
 *  - a unary call that fails answers HTTP 4xx/5xx with
 *    {"error": "...", "message": "...", "code": N} (N a gRPC status code);
 *  - a streaming call (watch, lease keepalive) answers a sequence of JSON
 *    objects, one per message, each {"result": {...}}, or
 *    {"error": {"grpc_code": N, "message": "...", ...}} when the stream
 *    fails. etcd ends each with a newline, but nothing here relies on it.
 *
 * Parsers return KV_OK; KV_EIO for an answer that is not what the gateway
 * sends (not one JSON object, a NUL byte, a field of the wrong type, bad
 * base64, an integer out of range), with the thread's error message
 * (util/error.h) naming the field; or KV_ENOMEM. On failure nothing needs
 * freeing; on success the caller frees what has a _free function.
 *
 * Threads: every function is reentrant; nothing is shared.
 */
#ifndef KVI_ETCD_JSON_H
#define KVI_ETCD_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "util/buf.h"

/* gRPC status codes the client tells apart. */
#define KVI_GRPC_INVALID_ARGUMENT 3
#define KVI_GRPC_NOT_FOUND 5
#define KVI_GRPC_PERMISSION_DENIED 7
#define KVI_GRPC_RESOURCE_EXHAUSTED 8
#define KVI_GRPC_OUT_OF_RANGE 11
#define KVI_GRPC_UNAVAILABLE 14
#define KVI_GRPC_UNAUTHENTICATED 16

/* ------------------------------------------------------------------ URL */

/* Most endpoints one URL may name. */
#define KVI_ETCD_MAX_ENDPOINTS 8
/* The prefix of a URL that names none. */
#define KVI_ETCD_DEFAULT_PREFIX "/libkv"
/* The port of an endpoint that names none (etcd's client port). */
#define KVI_ETCD_DEFAULT_PORT 2379
/* Longest host name (DNS's limit). */
#define KVI_ETCD_MAX_HOST 253

/** A parsed etcd URL. */
typedef struct kvi_etcd_url {
    size_t n;                               /* 1..KVI_ETCD_MAX_ENDPOINTS */
    char *endpoint[KVI_ETCD_MAX_ENDPOINTS]; /* "host:port" or "[v6]:port" */
    char *prefix;                           /* "/a/b": a leading '/', none trailing */
} kvi_etcd_url;

/**
 * kvi_etcd_parse_url - parse "etcd://HOST[:PORT][,HOST[:PORT]...][/PREFIX]"
 * (net/etcd.h's kvi_etcd_config says what each part may be).
 * @return KV_OK (free with kvi_etcd_url_free); KV_EINVAL with a message
 *         quoting the URL and naming what is wrong (not etcd://, no host, a
 *         bad port, an empty endpoint, too many, a bad prefix); KV_ENOMEM.
 *         On failure nothing needs freeing.
 */
int kvi_etcd_parse_url(kvi_etcd_url *out, const char *url);
/** kvi_etcd_url_free - release a parsed URL; NULL and zeroed are fine. */
void kvi_etcd_url_free(kvi_etcd_url *u);

/* ------------------------------------------------------------- requests */

/*
 * The builders append one request body to out. They return KV_OK, or
 * KV_ENOMEM when out could not grow (out->failed is then set). Keys and
 * values are any bytes.
 */

/**
 * kvi_etcd_body_range - {"key", "range_end"?, "limit"?, "revision"?}.
 * @param range_end  NULL: the key alone; else every key in [key, range_end)
 *                   (an empty range_end, with range_end_len 0 and not NULL,
 *                   is etcd's "\0": every key >= key)
 * @param limit      most keys answered (0: all)
 * @param revision   the revision to read at (0: the latest)
 */
int kvi_etcd_body_range(kvi_buf *out, const void *key, size_t key_len, const void *range_end,
                        size_t range_end_len, int64_t limit, int64_t revision);

/**
 * kvi_etcd_body_put_if - a txn: if the key's mod_revision is expect (expect
 * 0: if the key does not exist, compared as create_revision == 0), put the
 * value; otherwise read the key (so the answer tells its mod_revision).
 */
int kvi_etcd_body_put_if(kvi_buf *out, const void *key, size_t key_len, const void *value,
                         size_t value_len, int64_t expect);

/** kvi_etcd_body_put - a put of key=value under lease (0: no lease). */
int kvi_etcd_body_put(kvi_buf *out, const void *key, size_t key_len, const void *value,
                      size_t value_len, int64_t lease);

/** kvi_etcd_body_watch - a watch's create_request for one key, from
 * start_revision on (0: from the next change). */
int kvi_etcd_body_watch(kvi_buf *out, const void *key, size_t key_len, int64_t start_revision);

/** kvi_etcd_body_lease - {"ID": id}, for keepalive and revoke; with ttl_s
 * > 0 and id 0, {"TTL": ttl_s}, for grant. */
int kvi_etcd_body_lease(kvi_buf *out, int64_t id, int64_t ttl_s);

/**
 * kvi_etcd_prefix_end - the range_end that makes [prefix, range_end) every
 * key starting with prefix: prefix with its last byte below 0xff increased
 * by one and the bytes after it dropped.
 * @param out  room for len bytes
 * @return the length of range_end; 0 when prefix is empty or all 0xff
 *         bytes (no such key: the range is every key >= prefix, etcd's "\0").
 */
size_t kvi_etcd_prefix_end(unsigned char *out, const unsigned char *prefix, size_t len);

/* -------------------------------------------------------------- answers */

/** One key of an answer. The bytes live in the parsed tree (decoded in
 * place) and are NUL-terminated past their length. */
typedef struct kvi_etcd_kv {
    const unsigned char *key;
    size_t key_len;
    const unsigned char *value; /* "" when the value is empty; never NULL */
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    int64_t lease;
} kvi_etcd_kv;

/** A parsed /v3/kv/range answer. */
typedef struct kvi_etcd_range {
    cJSON *root;       /* owns the bytes of kvs */
    int64_t revision;  /* the store's revision when it was read (header) */
    int more;          /* a limit cut the answer short */
    kvi_etcd_kv *kvs;  /* in key order */
    size_t count;
} kvi_etcd_range;

/**
 * kvi_etcd_parse_range - parse a range answer. Every key must have a key
 * and a mod_revision > 0; the header's revision must be > 0.
 * @return KV_OK (free with kvi_etcd_range_free), KV_EIO, KV_ENOMEM.
 */
int kvi_etcd_parse_range(kvi_etcd_range *out, const char *json, size_t len);
/** kvi_etcd_range_free - release a parsed range; NULL and zeroed are fine. */
void kvi_etcd_range_free(kvi_etcd_range *r);

/** A parsed answer to the txn of kvi_etcd_body_put_if. */
typedef struct kvi_etcd_txn {
    int succeeded;
    /* The header's revision: after a put, the key's new mod_revision. */
    int64_t revision;
    /* When the compare failed: the key's mod_revision read by the failure
     * branch, 0 when the key does not exist. */
    int64_t current_mod_revision;
} kvi_etcd_txn;

/**
 * kvi_etcd_parse_txn - parse that txn's answer. A failed one must carry the
 * failure branch's range answer (at most one key).
 * @return KV_OK, KV_EIO, KV_ENOMEM.
 */
int kvi_etcd_parse_txn(kvi_etcd_txn *out, const char *json, size_t len);

/** A parsed lease grant or keepalive answer. */
typedef struct kvi_etcd_lease {
    int64_t id;
    /* Seconds the lease has left; <= 0 (absent): etcd no longer has it
     * (expired or revoked), which is how keepalive says so. */
    int64_t ttl;
} kvi_etcd_lease;

/**
 * kvi_etcd_parse_lease - parse /v3/lease/grant's answer or one message of
 * /v3/lease/keepalive's ({"result": {...}}). A grant's "error" text is
 * KV_EIO with that text.
 * @return KV_OK, KV_EIO, KV_ENOMEM.
 */
int kvi_etcd_parse_lease(kvi_etcd_lease *out, const char *json, size_t len);

/** One event of a watch message. */
typedef struct kvi_etcd_event {
    int deleted;       /* 1: DELETE (kv.value is "", kv has no create_revision) */
    kvi_etcd_kv kv;    /* kv.mod_revision: the revision of the change (> 0) */
} kvi_etcd_event;

/** One parsed message of a /v3/watch stream. */
typedef struct kvi_etcd_watch_msg {
    cJSON *root;               /* owns the events' bytes */
    int64_t revision;          /* header (0 when etcd left it out) */
    int created;               /* the answer to the create_request */
    int canceled;              /* etcd ended the watch */
    int64_t compact_revision;  /* > 0: canceled because the start was compacted */
    const char *cancel_reason; /* "" when none */
    kvi_etcd_event *events;    /* in revision order */
    size_t count;
} kvi_etcd_watch_msg;

/**
 * kvi_etcd_parse_watch - parse one message of a watch stream (one object
 * as kvi_etcd_split cuts it). {"error": {...}} in the stream is KV_EIO with
 * etcd's message.
 * @return KV_OK (free with kvi_etcd_watch_msg_free), KV_EIO, KV_ENOMEM.
 */
int kvi_etcd_parse_watch(kvi_etcd_watch_msg *out, const char *json, size_t len);
/** kvi_etcd_watch_msg_free - release a parsed message; NULL and zeroed are
 * fine. */
void kvi_etcd_watch_msg_free(kvi_etcd_watch_msg *m);

/**
 * kvi_etcd_parse_error - parse a failed call's answer: a unary call's
 * {"error": "...", "message": "...", "code": N} or a stream's
 * {"error": {"grpc_code": N, "message": "..."}}.
 * @param code  receives the gRPC status code (0 when absent)
 * @param msg   receives etcd's message, NUL-terminated and cut to cap bytes
 *              (cap >= 1), bytes outside printable ASCII replaced by '?'
 * @return KV_OK; KV_EIO when json is not such an answer (msg is then "").
 */
int kvi_etcd_parse_error(int *code, char *msg, size_t cap, const char *json, size_t len);

/* ------------------------------------------------------------- streams */

/** Where kvi_etcd_split stopped in a stream; zero it to start (and again
 * after each object taken). */
typedef struct kvi_etcd_splitter {
    size_t pos;      /* bytes of buf scanned */
    size_t start;    /* where the object begins, once started */
    size_t depth;    /* nesting of braces and brackets */
    int started;
    int in_string;
    int escaped;
} kvi_etcd_splitter;

/* Deepest nesting kvi_etcd_split accepts (cJSON's limit is 1000). */
#define KVI_ETCD_SPLIT_MAX_DEPTH 512

/**
 * kvi_etcd_split - find the end of the JSON object at the start of a
 * stream's buffer (after any whitespace), carrying on from where the last
 * call on s stopped, so every byte is scanned once however the stream was
 * chunked. The object is only delimited here (strings and nesting), not
 * validated: kvi_etcd_parse_watch does that.
 * @param buf  the bytes not taken yet; the same bytes as at the last call,
 *             possibly with more appended
 * @return 1 with buf[*start, *end) the object (the caller drops buf up to
 *         *end and zeroes s); 0 when more bytes are needed; KV_EIO when the
 *         stream is not a sequence of objects (text outside an object, or
 *         nesting deeper than KVI_ETCD_SPLIT_MAX_DEPTH).
 */
int kvi_etcd_split(kvi_etcd_splitter *s, const char *buf, size_t len, size_t *start,
                   size_t *end);

#endif
