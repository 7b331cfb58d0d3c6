/* Every limit on every door (lib/util/validate.h): one table of cases, at
 * limit-1, limit and limit+1 of the key, the value, the TTL and the
 * context, with bad consistency levels and quorums and batches holding one
 * bad operation, run through each way a request can come in:
 *   the C API on an embedded handle, on a node handle (kv_node_start,
 *   alone) and on client handles to a single kvd and to a 3-node cluster;
 *   raw binary frames to the single kvd, to a cluster node that is a
 *   replica of the key (it coordinates) and to one that is not (it
 *   forwards);
 *   HTTP to the single kvd and to both kinds of cluster node.
 * Every store has the same small limits (64-byte keys, 4096-byte values).
 * A refused request stores nothing (a read afterwards says not found, also
 * of the key cut to the limit); every status a door gives is a public one
 * (KV_OK..KV_EPERM: no internal code on the wire); every server still
 * serves afterwards. A door that answers differently from the table is
 * listed case by case before the test fails. The path of kvd comes from
 * $KVD. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <cJSON.h>
#include <curl/curl.h>

#include "cluster/ring.h"
#include "cluster/view.h"
#include "client/handle.h"
#include "helpers.h"
#include "integration/kvd_process.h"
#include "integration/loopback.h"
#include "format/frame.h"
#include "net/http_json.h"
#include "format/message.h"
#include "client/router.h"
#include "format/record.h"
#include "util/validate.h"
#include <kv/kv.h>

#define MAX_KEY 64
#define MAX_VALUE 4096
#define NODES 3
#define SHORT 16       /* a key length well within the limit */
#define MAX_ITEMS 3    /* operations one batch case names; more are filler */
/* Statuses of no KV code: the door gave no answer, or one that does not
 * decode (or an HTTP status and error code that do not go together). */
#define NO_ANSWER 1
#define BAD_ANSWER 2

typedef struct server {
    pid_t pid;
    char *dir;
    char id[16];
    char listen[64];
    char http[64];
    char log_path[600];
    int fd; /* the raw doors' connection, -1 when none */
} server;

typedef struct world {
    server single;
    server nodes[NODES];
    char peers[256];
    char *embedded_dir, *node_dir;
    kv *embedded, *node, *client_single, *client_cluster;
} world;

/* ----------------------------------------------------------------- setup */

static void prepare(server *s, const char *id)
{
    s->fd = -1;
    s->dir = test_tempdir();
    snprintf(s->id, sizeof s->id, "%s", id);
    snprintf(s->listen, sizeof s->listen, "127.0.0.1:%d", free_port());
    snprintf(s->http, sizeof s->http, "127.0.0.1:%d", free_port());
    snprintf(s->log_path, sizeof s->log_path, "%s.log", s->dir);
}

/* kvd with the small limits; with peers, a member of a cluster of
 * replication factor 2, so that each key has a node that is no replica. */
static void spawn(server *s, const char *peers)
{
    const char *argv[24];
    int n = 0;
    const char *fixed[] = {kvd_path(), "--data", s->dir, "--listen", s->listen, "--http", s->http,
                           "--node-id", s->id, "--max-key-size", "64", "--max-value-size", "4096",
                           "--sync", "none"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        argv[n++] = fixed[i];
    if (peers) {
        argv[n++] = "--peers";
        argv[n++] = peers;
        argv[n++] = "--replicas";
        argv[n++] = "2";
    }
    argv[n] = NULL;
    s->pid = kvd_spawn(argv, s->log_path);
    assert_true(s->pid > 0);
}

static kv *client_to(const char *const *eps, size_t n)
{
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.request_timeout_ms = 3000;
    co.connect_timeout_ms = 500;
    kv *db = NULL;
    assert_int_equal(kv_client_open(&db, eps, n, &co), KV_OK);
    return db;
}

/* Waits (bounded) until node s describes a complete cluster. */
static void wait_complete(const server *s)
{
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.request_timeout_ms = 3000;
    co.connect_timeout_ms = 500;
    if (!kvd_wait_complete(s->listen, &co))
        fail_msg("%s never completed its membership (log: %s)", s->id, s->log_path);
}

static int setup(void **state)
{
    world *w = calloc(1, sizeof *w);
    *state = w; /* teardown stops what started, even when setup fails below */
    prepare(&w->single, "single");
    for (int i = 0; i < NODES; i++) {
        char id[16];
        snprintf(id, sizeof id, "n%d", i + 1);
        prepare(&w->nodes[i], id);
        if (i)
            strcat(w->peers, ",");
        strcat(w->peers, w->nodes[i].listen);
    }
    spawn(&w->single, NULL);
    for (int i = 0; i < NODES; i++)
        spawn(&w->nodes[i], w->peers);

    kv_open_options so = KV_OPEN_OPTIONS_INIT;
    so.max_key_size = MAX_KEY;
    so.max_value_size = MAX_VALUE;
    so.sync = KV_SYNC_NONE;
    w->embedded_dir = test_tempdir();
    assert_int_equal(kv_open(&w->embedded, w->embedded_dir, &so), KV_OK);
    w->node_dir = test_tempdir();
    kv_node_options no = KV_NODE_OPTIONS_INIT;
    no.data_dir = w->node_dir;
    no.node_id = "inproc";
    no.listen_addr = "127.0.0.1:0";
    no.store = &so;
    assert_int_equal(kv_node_start(&w->node, &no), KV_OK);

    const char *single[] = {w->single.listen};
    w->client_single = client_to(single, 1);
    int rc = KV_EUNAVAILABLE;
    for (int t = 0; t < 300 && rc != KV_OK; t++) {
        rc = kv_ping(w->client_single);
        if (rc != KV_OK)
            sleep_ms(100);
    }
    if (rc != KV_OK)
        fail_msg("the single kvd never answered (log: %s)", w->single.log_path);
    for (int i = 0; i < NODES; i++)
        wait_complete(&w->nodes[i]);
    const char *eps[NODES];
    for (int i = 0; i < NODES; i++)
        eps[i] = w->nodes[i].listen;
    w->client_cluster = client_to(eps, NODES);
    /* The client routes by its own view of the ring: wait until it has
     * one (it learns at most once a second). */
    size_t members = 0;
    for (int t = 0; t < 300 && members != NODES; t++) {
        kvi_view *v = kvi_router_view(w->client_cluster->router);
        members = v ? v->n : 0;
        kvi_view_unref(v);
        if (members != NODES)
            sleep_ms(100);
    }
    assert_int_equal(members, NODES);
    return 0;
}

static void stop_server(server *s)
{
    if (s->fd >= 0)
        close(s->fd);
    if (s->pid > 0)
        kvd_stop(s->pid, SIGKILL);
    if (s->dir && !getenv("KV_TEST_KEEP_LOGS"))
        unlink(s->log_path);
    test_rmtree(s->dir);
}

static int teardown(void **state)
{
    world *w = *state;
    if (!w)
        return 0;
    kv_close(w->client_single);
    kv_close(w->client_cluster);
    kv_close(w->node);
    kv_close(w->embedded);
    stop_server(&w->single);
    for (int i = 0; i < NODES; i++)
        stop_server(&w->nodes[i]);
    test_rmtree(w->embedded_dir);
    test_rmtree(w->node_dir);
    free(w);
    return 0;
}

/* ------------------------------------------------------------ the doors */

typedef enum op_kind { OP_PUT, OP_GET, OP_DELETE, OP_CAS, OP_BATCH } op_kind;

typedef struct item {
    uint8_t kind; /* kv_batch_op */
    const unsigned char *key;
    size_t key_len;
    const unsigned char *value;
    size_t value_len;
    uint64_t ttl_s;
} item;

/* One request, as any door takes it. consistency and quorum are given as
 * numbers so that they can be out of range; a CAS expects version 0 (the
 * key absent). */
typedef struct request {
    op_kind op;
    const unsigned char *key;
    size_t key_len;
    const unsigned char *value;
    size_t value_len;
    uint64_t ttl_s;
    unsigned consistency;
    unsigned quorum;
    const unsigned char *context;
    size_t context_len;
    const item *items;
    size_t n_items;
} request;

typedef struct answer {
    int status;
    int *op_status;           /* a batch's results when it ran: one per item */
    unsigned char *value;     /* a GET's, malloc'd */
    size_t value_len;
    uint64_t expiry_ms;
    char detail[300];
} answer;

typedef enum route {
    ROUTE_FIXED,      /* always the door's server */
    ROUTE_REPLICA,    /* the cluster node first in the key's preference list */
    ROUTE_NON_REPLICA /* the cluster node that holds no replica of the key */
} route;

typedef struct door door;
struct door {
    const char *name;
    char tag;        /* first byte of its keys: doors that share a store never meet */
    void (*call)(door *d, const request *r, answer *a);
    int byte_quorum; /* R and W travel in one byte: a case over 255 cannot be sent */
    kv *db;          /* the C API doors */
    world *w;
    server *fixed;   /* the raw and HTTP doors */
    route route;
};

static void keep_value(answer *a, const void *data, size_t len, uint64_t expiry_ms)
{
    a->value = malloc(len ? len : 1);
    memcpy(a->value, data, len);
    a->value_len = len;
    a->expiry_ms = expiry_ms;
}

/* The C API, on any kind of handle. */
static void capi_call(door *d, const request *r, answer *a)
{
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.ttl_s = r->ttl_s;
    wo.consistency = (kv_consistency)r->consistency;
    wo.w = r->quorum;
    wo.context = r->context;
    wo.context_len = r->context_len;
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    ro.consistency = (kv_consistency)r->consistency;
    ro.r = r->quorum;
    kv_value *v = NULL;
    kv_batch *b = NULL;
    size_t len;
    switch (r->op) {
    case OP_PUT:
        a->status = kv_put(NULL, d->db, r->key, r->key_len, r->value, r->value_len, &wo);
        break;
    case OP_GET:
        a->status = kv_get(&v, d->db, r->key, r->key_len, &ro);
        if (a->status == KV_OK) {
            const void *data = kv_value_data(v, &len);
            keep_value(a, data, len, kv_value_expiry_ms(v));
        }
        kv_value_free(v);
        break;
    case OP_DELETE:
        a->status = kv_delete(NULL, d->db, r->key, r->key_len, &wo);
        break;
    case OP_CAS:
        a->status = kv_cas(NULL, d->db, r->key, r->key_len, 0, r->value, r->value_len, &wo);
        break;
    case OP_BATCH:
        assert_int_equal(kv_batch_new(&b), KV_OK);
        a->status = KV_OK;
        for (size_t i = 0; i < r->n_items && a->status == KV_OK; i++) {
            const item *it = &r->items[i];
            if (it->kind == KV_BATCH_PUT)
                a->status = kv_batch_put(b, it->key, it->key_len, it->value, it->value_len,
                                         it->ttl_s);
            else if (it->kind == KV_BATCH_GET)
                a->status = kv_batch_get(b, it->key, it->key_len);
            else
                a->status = kv_batch_delete(b, it->key, it->key_len);
        }
        if (a->status == KV_OK)
            a->status = kv_batch_execute(d->db, b, &wo, &ro);
        for (size_t i = 0; a->status == KV_OK && i < r->n_items; i++)
            a->op_status[i] = kv_batch_result(NULL, NULL, b, i);
        kv_batch_free(b);
        break;
    }
    if (a->status != KV_OK)
        snprintf(a->detail, sizeof a->detail, "%s", kv_error_last());
}

/* The cluster node a door sends key to. */
static server *target(door *d, const unsigned char *key, size_t key_len)
{
    if (d->route == ROUTE_FIXED)
        return d->fixed;
    world *w = d->w;
    if (key_len == 0)
        return &w->nodes[0];
    kvi_view *v = kvi_router_view(w->client_cluster->router);
    assert_non_null(v);
    const uint32_t *pref;
    size_t n = kvi_ring_preference(v->ring, kvi_key_token(key, key_len), &pref);
    server *chosen = NULL;
    for (int i = 0; i < NODES && !chosen; i++) {
        int home = 0;
        for (size_t k = 0; k < n; k++)
            home |= strcmp(v->members[pref[k]].addr, w->nodes[i].listen) == 0;
        int first = n && strcmp(v->members[pref[0]].addr, w->nodes[i].listen) == 0;
        if (d->route == ROUTE_REPLICA ? first : !home)
            chosen = &w->nodes[i];
    }
    kvi_view_unref(v);
    assert_non_null(chosen);
    return chosen;
}

static const unsigned char *first_key(const request *r, size_t *len)
{
    if (r->op == OP_BATCH) {
        *len = r->items[0].key_len;
        return r->items[0].key;
    }
    *len = r->key_len;
    return r->key;
}

/* ------------------------------------------------------------ raw frames */

static int raw_connect(const char *host_port)
{
    /* Generous: a batch of 9,999 writes, each replicated, on a loaded
     * machine under the sanitizers took more than 10 s. */
    int fd = loopback_connect(host_port, 120);
    assert_true(fd >= 0);
    return fd;
}

/* Sends one request frame on s's connection and reads its answer: 0, or
 * -1 when the connection closed without one (it is dropped). */
static int raw_roundtrip(server *s, uint8_t opcode, const kvi_buf *body, kvi_frame_header *h,
                         unsigned char **out)
{
    static uint64_t next_id = 1;
    if (s->fd < 0)
        s->fd = raw_connect(s->listen);
    kvi_buf f = {0};
    kvi_frame_begin(&f);
    kvi_buf_raw(&f, body->data, body->len);
    uint64_t id = next_id++;
    assert_int_equal(kvi_frame_finish(&f, 0, opcode, 0, 0, id), 0);
    ssize_t sent = send(s->fd, f.data, f.len, MSG_NOSIGNAL);
    int ok = sent == (ssize_t)f.len;
    kvi_buf_free(&f);
    unsigned char header[KVI_FRAME_HEADER];
    *out = NULL;
    if (ok)
        ok = recv_exact(s->fd, header, sizeof header) == 0 &&
             kvi_frame_parse_header(h, header, sizeof header, 1u << 24) == KVI_FRAME_OK &&
             h->request_id == id;
    if (ok) {
        *out = malloc(h->body_len + 1);
        ok = recv_exact(s->fd, *out, h->body_len) == 0 &&
             kvi_frame_verify(h, header, *out) == KVI_FRAME_OK;
    }
    if (!ok) {
        free(*out);
        *out = NULL;
        close(s->fd);
        s->fd = -1;
        return -1;
    }
    return 0;
}

static void raw_call(door *d, const request *r, answer *a)
{
    static const uint8_t opcodes[] = {[OP_PUT] = KVI_OP_PUT, [OP_GET] = KVI_OP_GET,
                                      [OP_DELETE] = KVI_OP_DELETE, [OP_CAS] = KVI_OP_CAS,
                                      [OP_BATCH] = KVI_OP_BATCH};
    size_t key_len;
    const unsigned char *key = first_key(r, &key_len);
    server *s = target(d, key, key_len);
    kvi_request q = {
        .opcode = opcodes[r->op], .consistency = (uint8_t)r->consistency,
        .quorum = (uint8_t)r->quorum, .ttl_s = r->ttl_s,
        .key = {r->key, r->key_len}, .value = {r->value, r->value_len},
        .context = {r->context, r->context_len}, .batch_count = (uint32_t)r->n_items,
    };
    kvi_buf body = {0};
    kvi_request_encode(&body, &q);
    for (size_t i = 0; i < r->n_items; i++) {
        const item *it = &r->items[i];
        kvi_batch_item bi = {.kind = it->kind, .ttl_s = it->ttl_s,
                             .key = {it->key, it->key_len}, .value = {it->value, it->value_len}};
        kvi_batch_item_encode(&body, &bi);
    }
    assert_false(body.failed);
    kvi_frame_header h;
    unsigned char *resp_body = NULL;
    if (raw_roundtrip(s, q.opcode, &body, &h, &resp_body) != 0) {
        a->status = NO_ANSWER;
        snprintf(a->detail, sizeof a->detail, "%s closed the connection without an answer",
                 s->id);
        kvi_buf_free(&body);
        return;
    }
    kvi_response resp;
    a->status = h.status;
    if (kvi_response_decode(&resp, q.opcode, h.status, resp_body, h.body_len) != 0) {
        snprintf(a->detail, sizeof a->detail, "%s: an answer of status %d that does not decode",
                 s->id, h.status);
        a->status = BAD_ANSWER;
    } else if (h.status != KV_OK) {
        snprintf(a->detail, sizeof a->detail, "%s: %.*s", s->id, (int)resp.message.len,
                 (const char *)resp.message.data);
    } else if (q.opcode == KVI_OP_GET && resp.sibling_count >= 1) {
        kvi_bytes first = kvi_response_next_sibling(&resp);
        keep_value(a, first.data, first.len, resp.expiry_ms);
    } else if (q.opcode == KVI_OP_BATCH) {
        for (uint32_t i = 0; i < resp.batch_count && i < r->n_items; i++) {
            kvi_batch_outcome o;
            kvi_response_next_outcome(&resp, &o);
            a->op_status[i] = o.status;
        }
    }
    free(resp_body);
    kvi_buf_free(&body);
}

/* ------------------------------------------------------------------ HTTP */

static size_t collect(char *p, size_t size, size_t n, void *ctx)
{
    kvi_buf_raw(ctx, p, size * n);
    return size * n;
}

/* METHOD http://host_port/path with an optional body; returns the HTTP
 * status (0: no answer) and the answer's body, NUL-terminated, in out. */
static long http_send(const char *host_port, const char *method, const char *path,
                      const kvi_buf *body, kvi_buf *out)
{
    CURL *curl = curl_easy_init();
    char url[512];
    snprintf(url, sizeof url, "http://%s%s", host_port, path);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, (const char *)body->data);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)body->len);
    }
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    kvi_buf_u8(out, 0);
    out->len--;
    return status;
}

/* The KV status an HTTP answer stands for (docs/HTTP.md's table), or
 * BAD_ANSWER when its status and error code disagree. */
static int http_kv_status(long status, const char *body)
{
    switch (status) {
    case 200: return KV_OK;
    case 404: return KV_ENOTFOUND;
    case 409: return KV_ECONFLICT;
    case 413: return strstr(body, "\"code\":\"TOO_BIG\"") ? KV_ETOOBIG : BAD_ANSWER;
    case 400: return strstr(body, "\"code\":\"BAD_REQUEST\"") ? KV_EINVAL : BAD_ANSWER;
    case 401: return KV_EPERM;
    case 503: return KV_EUNAVAILABLE;
    case 504: return KV_ETIMEDOUT;
    case 500: return KV_EIO;
    case 0: return NO_ANSWER;
    default: return BAD_ANSWER;
    }
}

/* A batch result's "status" as a KV status. */
static int named_status(const char *name)
{
    static const struct { const char *name; int status; } names[] = {
        {"OK", KV_OK}, {"NOT_FOUND", KV_ENOTFOUND}, {"CONFLICT", KV_ECONFLICT},
        {"TOO_BIG", KV_ETOOBIG}, {"BAD_REQUEST", KV_EINVAL}, {"TIMEOUT", KV_ETIMEDOUT},
        {"UNAVAILABLE", KV_EUNAVAILABLE}, {"UNKNOWN_OUTCOME", KV_EUNKNOWN_OUTCOME},
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(names[i].name, name) == 0)
            return names[i].status;
    return BAD_ANSWER;
}

static void put_text(kvi_buf *b, const char *s)
{
    kvi_buf_raw(b, s, strlen(s));
}

static void put_u64(kvi_buf *b, uint64_t v)
{
    char num[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    put_text(b, num);
}

/* The query string of a request's consistency: a level by its name, an
 * explicit count as r= or w=, anything else as the number it is (which
 * the API must refuse). */
static void http_query(kvi_buf *path, const request *r)
{
    static const char *const levels[] = {NULL, "one", "quorum", "all"};
    if (r->consistency == KV_CONSISTENCY_DEFAULT)
        return;
    if (r->consistency < KV_CONSISTENCY_EXPLICIT) {
        put_text(path, "?consistency=");
        put_text(path, levels[r->consistency]);
    } else if (r->consistency == KV_CONSISTENCY_EXPLICIT) {
        put_text(path, r->op == OP_GET ? "?r=" : r->op == OP_BATCH ? "?r=" : "?w=");
        put_u64(path, r->quorum);
        if (r->op == OP_BATCH) {
            put_text(path, "&w=");
            put_u64(path, r->quorum);
        }
    } else {
        put_text(path, "?consistency=");
        put_u64(path, r->consistency);
    }
}

/* Keys and values of the cases are letters, digits and '-': they go into
 * URLs and JSON strings as they are. */
static void http_call(door *d, const request *r, answer *a)
{
    size_t key_len;
    const unsigned char *key = first_key(r, &key_len);
    server *s = target(d, key, key_len);
    kvi_buf path = {0}, body = {0}, out = {0};
    const char *method = "PUT";
    put_text(&path, "/v1/kv/");
    if (r->op == OP_BATCH)
        put_text(&path, "batch");
    else
        kvi_buf_raw(&path, r->key, r->key_len);
    if (r->op == OP_CAS)
        put_text(&path, "/cas");
    http_query(&path, r);
    kvi_buf_u8(&path, 0);
    switch (r->op) {
    case OP_PUT:
        put_text(&body, "{\"value\":\"");
        kvi_buf_raw(&body, r->value, r->value_len);
        put_text(&body, "\",\"ttl\":");
        put_u64(&body, r->ttl_s);
        if (r->context_len) {
            put_text(&body, ",\"context\":");
            kvi_http_json_base64(&body, r->context, r->context_len);
        }
        put_text(&body, "}");
        break;
    case OP_GET: method = "GET"; break;
    case OP_DELETE: method = "DELETE"; break;
    case OP_CAS:
        method = "POST";
        put_text(&body, "{\"expectedVersion\":0,\"newValue\":\"");
        kvi_buf_raw(&body, r->value, r->value_len);
        put_text(&body, "\",\"ttl\":");
        put_u64(&body, r->ttl_s);
        put_text(&body, "}");
        break;
    case OP_BATCH:
        method = "POST";
        put_text(&body, "{\"operations\":[");
        for (size_t i = 0; i < r->n_items; i++) {
            static const char *const kinds[] = {"", "PUT", "GET", "DELETE"};
            const item *it = &r->items[i];
            put_text(&body, i ? ",{\"op\":\"" : "{\"op\":\"");
            put_text(&body, kinds[it->kind]);
            put_text(&body, "\",\"key\":\"");
            kvi_buf_raw(&body, it->key, it->key_len);
            put_text(&body, "\"");
            if (it->kind == KV_BATCH_PUT) {
                put_text(&body, ",\"value\":\"");
                kvi_buf_raw(&body, it->value, it->value_len);
                put_text(&body, "\",\"ttl\":");
                put_u64(&body, it->ttl_s);
            }
            put_text(&body, "}");
        }
        put_text(&body, "]}");
        break;
    }
    assert_false(path.failed || body.failed);
    long status = http_send(s->http, method, (const char *)path.data,
                            body.len ? &body : NULL, &out);
    assert_false(out.failed);
    const char *text = out.data ? (const char *)out.data : "";
    a->status = http_kv_status(status, text);
    if (a->status != KV_OK) {
        snprintf(a->detail, sizeof a->detail, "%s: HTTP %ld %.200s", s->id, status, text);
    } else if (r->op == OP_GET || r->op == OP_BATCH) {
        cJSON *root = cJSON_Parse(text);
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(root, "value");
        const cJSON *expires = cJSON_GetObjectItemCaseSensitive(root, "expiresAt");
        const cJSON *results = cJSON_GetObjectItemCaseSensitive(root, "results");
        if (r->op == OP_GET && cJSON_IsString(value)) {
            keep_value(a, value->valuestring, strlen(value->valuestring),
                       cJSON_IsNumber(expires) ? (uint64_t)expires->valuedouble : 0);
        } else if (r->op == OP_BATCH && cJSON_GetArraySize(results) == (int)r->n_items) {
            for (size_t i = 0; i < r->n_items; i++) {
                const cJSON *st = cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetArrayItem(results, (int)i), "status");
                a->op_status[i] = cJSON_IsString(st) ? named_status(st->valuestring)
                                                     : BAD_ANSWER;
            }
        } else {
            a->status = BAD_ANSWER;
            snprintf(a->detail, sizeof a->detail, "%s: an answer of 200 without its fields: "
                     "%.200s", s->id, text);
        }
        cJSON_Delete(root);
    }
    kvi_buf_free(&path);
    kvi_buf_free(&body);
    kvi_buf_free(&out);
}

/* ------------------------------------------------------------- the cases */

typedef enum after {
    AFTER_NOTHING,
    AFTER_READS_BACK, /* the value written reads back (with its expiry, if any) */
    AFTER_NOT_FOUND   /* a read says not found, also of the key cut to the limit */
} after;

typedef struct op_spec {
    uint8_t kind; /* kv_batch_op */
    int key_len;
    int value_len;
    uint64_t ttl_s;
} op_spec;

typedef struct tcase {
    const char *name;
    /* a batch: items, then `filler` GETs of an absent key, which read
     * nothing and write nothing (so a batch at the operation limit stays
     * cheap in a cluster) */
    op_kind op;
    int key_len;
    int value_len;
    uint64_t ttl_s;
    unsigned consistency;
    unsigned quorum;
    size_t context_len;
    int put_first; /* the key is written (within the limits) before the case runs */
    int want;
    after after;
    op_spec items[MAX_ITEMS];
    size_t n_items;
    size_t filler;
} tcase;

#define TTL_MAX KVI_MAX_TTL_S
#define EXPLICIT KV_CONSISTENCY_EXPLICIT
/* A TTL whose expiry in ms, added to now, would wrap around 2^64. */
#define TTL_WRAPS (UINT64_MAX / 1000u + 1u)
#define GOOD_PUT {KV_BATCH_PUT, SHORT, 8, 0}

static const tcase CASES[] = {
    /* keys */
    {"put key limit-1", OP_PUT, MAX_KEY - 1, 8, .want = KV_OK, .after = AFTER_READS_BACK},
    {"put key at limit", OP_PUT, MAX_KEY, 8, .want = KV_OK, .after = AFTER_READS_BACK},
    {"put key limit+1", OP_PUT, MAX_KEY + 1, 8, .want = KV_ETOOBIG, .after = AFTER_NOT_FOUND},
    {"put empty key", OP_PUT, 0, 8, .want = KV_EINVAL},
    {"get key at limit", OP_GET, MAX_KEY, 8, .put_first = 1, .want = KV_OK,
     .after = AFTER_READS_BACK},
    {"get key limit+1", OP_GET, MAX_KEY + 1, .want = KV_ETOOBIG},
    {"get empty key", OP_GET, 0, .want = KV_EINVAL},
    {"delete key at limit", OP_DELETE, MAX_KEY, 8, .put_first = 1, .want = KV_OK,
     .after = AFTER_NOT_FOUND},
    {"delete key limit+1", OP_DELETE, MAX_KEY + 1, .want = KV_ETOOBIG},
    {"delete empty key", OP_DELETE, 0, .want = KV_EINVAL},
    {"cas key limit-1", OP_CAS, MAX_KEY - 1, 8, .want = KV_OK, .after = AFTER_READS_BACK},
    {"cas key at limit", OP_CAS, MAX_KEY, 8, .want = KV_OK, .after = AFTER_READS_BACK},
    {"cas key limit+1", OP_CAS, MAX_KEY + 1, 8, .want = KV_ETOOBIG, .after = AFTER_NOT_FOUND},
    {"cas empty key", OP_CAS, 0, 8, .want = KV_EINVAL},
    /* values */
    {"put empty value", OP_PUT, SHORT, 0, .want = KV_OK, .after = AFTER_READS_BACK},
    {"put value limit-1", OP_PUT, SHORT, MAX_VALUE - 1, .want = KV_OK,
     .after = AFTER_READS_BACK},
    {"put value at limit", OP_PUT, SHORT, MAX_VALUE, .want = KV_OK, .after = AFTER_READS_BACK},
    {"put value limit+1", OP_PUT, SHORT, MAX_VALUE + 1, .want = KV_ETOOBIG,
     .after = AFTER_NOT_FOUND},
    {"cas value limit-1", OP_CAS, SHORT, MAX_VALUE - 1, .want = KV_OK,
     .after = AFTER_READS_BACK},
    {"cas value at limit", OP_CAS, SHORT, MAX_VALUE, .want = KV_OK, .after = AFTER_READS_BACK},
    {"cas value limit+1", OP_CAS, SHORT, MAX_VALUE + 1, .want = KV_ETOOBIG,
     .after = AFTER_NOT_FOUND},
    /* TTL */
    {"put ttl limit-1", OP_PUT, SHORT, 8, TTL_MAX - 1, .want = KV_OK,
     .after = AFTER_READS_BACK},
    {"put ttl at limit", OP_PUT, SHORT, 8, TTL_MAX, .want = KV_OK, .after = AFTER_READS_BACK},
    {"put ttl limit+1", OP_PUT, SHORT, 8, TTL_MAX + 1, .want = KV_EINVAL,
     .after = AFTER_NOT_FOUND},
    {"put ttl near 2^64/1000", OP_PUT, SHORT, 8, TTL_WRAPS, .want = KV_EINVAL,
     .after = AFTER_NOT_FOUND},
    {"put ttl 2^64-1", OP_PUT, SHORT, 8, UINT64_MAX, .want = KV_EINVAL,
     .after = AFTER_NOT_FOUND},
    {"cas ttl at limit", OP_CAS, SHORT, 8, TTL_MAX, .want = KV_OK, .after = AFTER_READS_BACK},
    {"cas ttl limit+1", OP_CAS, SHORT, 8, TTL_MAX + 1, .want = KV_EINVAL,
     .after = AFTER_NOT_FOUND},
    {"cas ttl near 2^64/1000", OP_CAS, SHORT, 8, TTL_WRAPS, .want = KV_EINVAL,
     .after = AFTER_NOT_FOUND},
    /* consistency */
    {"put level 6", OP_PUT, SHORT, 8, .consistency = 6, .want = KV_EINVAL,
     .after = AFTER_NOT_FOUND},
    {"put explicit w 0", OP_PUT, SHORT, 8, .consistency = EXPLICIT, .quorum = 0,
     .want = KV_EINVAL, .after = AFTER_NOT_FOUND},
    {"put explicit w 256", OP_PUT, SHORT, 8, .consistency = EXPLICIT, .quorum = 256,
     .want = KV_EINVAL, .after = AFTER_NOT_FOUND},
    {"get level 6", OP_GET, SHORT, 8, .consistency = 6, .put_first = 1, .want = KV_EINVAL},
    {"get explicit r 0", OP_GET, SHORT, 8, .consistency = EXPLICIT, .quorum = 0,
     .put_first = 1, .want = KV_EINVAL},
    {"get explicit r 256", OP_GET, SHORT, 8, .consistency = EXPLICIT, .quorum = 256,
     .put_first = 1, .want = KV_EINVAL},
    {"delete level 6", OP_DELETE, SHORT, 8, .consistency = 6, .put_first = 1,
     .want = KV_EINVAL, .after = AFTER_READS_BACK},
    {"delete explicit w 0", OP_DELETE, SHORT, 8, .consistency = EXPLICIT, .quorum = 0,
     .put_first = 1, .want = KV_EINVAL, .after = AFTER_READS_BACK},
    {"delete explicit w 256", OP_DELETE, SHORT, 8, .consistency = EXPLICIT, .quorum = 256,
     .put_first = 1, .want = KV_EINVAL, .after = AFTER_READS_BACK},
    {"cas level 6", OP_CAS, SHORT, 8, .consistency = 6, .want = KV_EINVAL,
     .after = AFTER_NOT_FOUND},
    {"cas explicit w 0", OP_CAS, SHORT, 8, .consistency = EXPLICIT, .quorum = 0,
     .want = KV_EINVAL, .after = AFTER_NOT_FOUND},
    /* context */
    {"put context limit+1", OP_PUT, SHORT, 8, .context_len = KVI_MAX_CONTEXT_BYTES + 1,
     .want = KV_ETOOBIG, .after = AFTER_NOT_FOUND},
    /* batches: the bad operation last, after a good one that must not apply */
    {"batch within limits", OP_BATCH, .want = KV_OK, .after = AFTER_READS_BACK,
     .items = {{KV_BATCH_PUT, MAX_KEY, MAX_VALUE, TTL_MAX},
               {KV_BATCH_PUT, MAX_KEY - 1, 0, 0},
               {KV_BATCH_PUT, SHORT, MAX_VALUE - 1, 60}}, .n_items = 3},
    {"batch with a put key limit+1", OP_BATCH, .want = KV_ETOOBIG, .after = AFTER_NOT_FOUND,
     .items = {GOOD_PUT, {KV_BATCH_PUT, MAX_KEY + 1, 8, 0}}, .n_items = 2},
    {"batch with a get key limit+1", OP_BATCH, .want = KV_ETOOBIG, .after = AFTER_NOT_FOUND,
     .items = {GOOD_PUT, {KV_BATCH_GET, MAX_KEY + 1, 0, 0}}, .n_items = 2},
    {"batch with a delete key limit+1", OP_BATCH, .want = KV_ETOOBIG,
     .after = AFTER_NOT_FOUND,
     .items = {GOOD_PUT, {KV_BATCH_DELETE, MAX_KEY + 1, 0, 0}}, .n_items = 2},
    {"batch with an empty key", OP_BATCH, .want = KV_EINVAL, .after = AFTER_NOT_FOUND,
     .items = {GOOD_PUT, {KV_BATCH_GET, 0, 0, 0}}, .n_items = 2},
    {"batch with a value limit+1", OP_BATCH, .want = KV_ETOOBIG, .after = AFTER_NOT_FOUND,
     .items = {GOOD_PUT, {KV_BATCH_PUT, SHORT, MAX_VALUE + 1, 0}}, .n_items = 2},
    {"batch with a ttl limit+1", OP_BATCH, .want = KV_EINVAL, .after = AFTER_NOT_FOUND,
     .items = {GOOD_PUT, {KV_BATCH_PUT, SHORT, 8, TTL_MAX + 1}}, .n_items = 2},
    {"batch with a ttl near 2^64/1000", OP_BATCH, .want = KV_EINVAL,
     .after = AFTER_NOT_FOUND,
     .items = {GOOD_PUT, {KV_BATCH_PUT, SHORT, 8, TTL_WRAPS}}, .n_items = 2},
    /* the number of operations */
    {"batch of no operation", OP_BATCH, .want = KV_EINVAL},
    {"batch of limit-1 operations", OP_BATCH, .want = KV_OK, .after = AFTER_READS_BACK,
     .items = {GOOD_PUT}, .n_items = 1, .filler = KV_BATCH_MAX_OPS - 2},
    {"batch of limit operations", OP_BATCH, .want = KV_OK, .after = AFTER_READS_BACK,
     .items = {GOOD_PUT}, .n_items = 1, .filler = KV_BATCH_MAX_OPS - 1},
    {"batch of limit+1 operations", OP_BATCH, .want = KV_ETOOBIG, .after = AFTER_NOT_FOUND,
     .items = {GOOD_PUT}, .n_items = 1, .filler = KV_BATCH_MAX_OPS},
    {"batch at level 6", OP_BATCH, .consistency = 6, .want = KV_EINVAL,
     .after = AFTER_NOT_FOUND, .items = {GOOD_PUT}, .n_items = 1},
    {"batch with explicit w 0", OP_BATCH, .consistency = EXPLICIT, .quorum = 0,
     .want = KV_EINVAL, .after = AFTER_NOT_FOUND, .items = {GOOD_PUT}, .n_items = 1},
    {"batch with explicit w 256", OP_BATCH, .consistency = EXPLICIT, .quorum = 256,
     .want = KV_EINVAL, .after = AFTER_NOT_FOUND, .items = {GOOD_PUT}, .n_items = 1},
};

#define N_CASES (sizeof CASES / sizeof *CASES)

/* ----------------------------------------------------------- the runner */

typedef struct tally {
    int checks;
    int differ;
    int skipped;
} tally;

static const char *status_text(int status)
{
    if (status == NO_ANSWER)
        return "no answer";
    if (status == BAD_ANSWER)
        return "a malformed answer";
    return kv_strerror(status);
}

static int is_public(int status)
{
    return status <= KV_OK && status >= KV_EPERM;
}

/* Counts one check; a status that differs from want, or is no public
 * status at all, is listed. */
static void check_status(tally *t, const door *d, const tcase *c, const char *what,
                         const answer *a, int got, int want)
{
    t->checks++;
    if (got == want && is_public(got))
        return;
    t->differ++;
    fprintf(stderr, "DIFFERS  %-34s | %-32s | %s: %s (%d), expected %s (%d)%s%s\n", d->name,
            c->name, what, status_text(got), got, status_text(want), want,
            a && a->detail[0] ? " -- " : "", a ? a->detail : "");
}

static void differs(tally *t, const door *d, const tcase *c, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    t->checks++;
    t->differ++;
    fprintf(stderr, "DIFFERS  %-34s | %-32s | %s\n", d->name, c->name, msg);
}

static void answer_free(answer *a)
{
    free(a->value);
    free(a->op_status);
    memset(a, 0, sizeof *a);
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The key of case ci, operation sub, on door d: "<tag><ci><sub>-" padded
 * with 'k' to len bytes. Unique per door and case, so that doors sharing a
 * store never see each other's keys. */
static void make_key(unsigned char *out, int len, char tag, size_t ci, int sub)
{
    char prefix[16];
    int n = snprintf(prefix, sizeof prefix, "%c%02zu%c-", tag, ci, 'a' + sub);
    for (int i = 0; i < len; i++)
        out[i] = (unsigned char)(i < n ? prefix[i] : 'k');
}

/* Values are letters, different per case and position, so a value cut
 * short or mixed up with another never compares equal. */
static void make_value(unsigned char *out, int len, size_t seed)
{
    for (int i = 0; i < len; i++)
        out[i] = (unsigned char)('a' + ((size_t)i * 7u + seed) % 26u);
}

/* Reads key through the door (default options) and checks what it holds. */
static void read_after(tally *t, door *d, const tcase *c, const unsigned char *key,
                       size_t key_len, after expect, const unsigned char *value,
                       size_t value_len, uint64_t ttl_s)
{
    if (expect == AFTER_NOTHING || key_len == 0)
        return;
    if (key_len > MAX_KEY)
        key_len = MAX_KEY; /* what a door that cut the key would have stored */
    request get = {.op = OP_GET, .key = key, .key_len = key_len};
    answer a = {0};
    uint64_t before = wall_ms();
    d->call(d, &get, &a);
    if (expect == AFTER_NOT_FOUND) {
        check_status(t, d, c, "read afterwards", &a, a.status, KV_ENOTFOUND);
    } else {
        check_status(t, d, c, "read afterwards", &a, a.status, KV_OK);
        if (a.status == KV_OK && (a.value_len != value_len ||
                                  (value_len && memcmp(a.value, value, value_len) != 0)))
            differs(t, d, c, "read afterwards: %zu bytes back of the %zu written", a.value_len,
                    value_len);
        /* The expiry is now + ttl: within a day of it (the write came a
         * moment before; clocks are the same machine's). */
        uint64_t low = before + (ttl_s > 86400 ? ttl_s - 86400 : 0) * 1000u;
        uint64_t high = wall_ms() + (ttl_s + 86400) * 1000u;
        if (a.status == KV_OK && ttl_s && (a.expiry_ms < low || a.expiry_ms > high))
            differs(t, d, c, "read afterwards: expiry %llu ms is not now + %llu s",
                    (unsigned long long)a.expiry_ms, (unsigned long long)ttl_s);
        if (a.status == KV_OK && !ttl_s && a.expiry_ms)
            differs(t, d, c, "read afterwards: an expiry on a value written without a TTL");
    }
    answer_free(&a);
}

static unsigned char zeros[KVI_MAX_CONTEXT_BYTES + 1];

static void run_case(door *d, size_t ci, const tcase *c, tally *t)
{
    if (d->byte_quorum && c->quorum > 255) {
        t->skipped++;
        return;
    }
    unsigned char key[MAX_KEY + 2];
    static unsigned char value[MAX_VALUE + 2];
    static unsigned char item_keys[MAX_ITEMS + 1][MAX_KEY + 2];
    static unsigned char item_values[MAX_ITEMS][MAX_VALUE + 2];
    size_t n_items = c->n_items + c->filler;
    item *items = calloc(n_items + 1, sizeof *items);
    make_key(key, c->key_len, d->tag, ci, 0);
    make_value(value, c->value_len, ci);
    for (size_t i = 0; i < c->n_items; i++) {
        const op_spec *s = &c->items[i];
        make_key(item_keys[i], s->key_len, d->tag, ci, (int)i + 1);
        make_value(item_values[i], s->value_len, ci + i);
        items[i] = (item){s->kind, item_keys[i], (size_t)s->key_len, item_values[i],
                          (size_t)s->value_len, s->ttl_s};
    }
    make_key(item_keys[MAX_ITEMS], SHORT, d->tag, ci, 9);
    for (size_t i = c->n_items; i < n_items; i++)
        items[i] = (item){KV_BATCH_GET, item_keys[MAX_ITEMS], SHORT, NULL, 0, 0};
    answer a = {0};
    if (c->put_first) {
        request put = {.op = OP_PUT, .key = key, .key_len = (size_t)c->key_len, .value = value,
                       .value_len = (size_t)c->value_len};
        d->call(d, &put, &a);
        check_status(t, d, c, "the put before", &a, a.status, KV_OK);
        answer_free(&a);
    }
    request r = {
        .op = c->op, .key = key, .key_len = (size_t)c->key_len, .value = value,
        .value_len = (size_t)c->value_len, .ttl_s = c->ttl_s, .consistency = c->consistency,
        .quorum = c->quorum, .context = c->context_len ? zeros : NULL,
        .context_len = c->context_len, .items = items, .n_items = n_items,
    };
    a.op_status = calloc(n_items + 1, sizeof *a.op_status);
    d->call(d, &r, &a);
    check_status(t, d, c, "status", &a, a.status, c->want);
    for (size_t i = 0; c->op == OP_BATCH && a.status == KV_OK && i < n_items; i++) {
        char what[48];
        snprintf(what, sizeof what, "operation %zu's status", i);
        int want = i < c->n_items ? KV_OK : KV_ENOTFOUND;
        if (c->want == KV_OK && a.op_status[i] != want)
            check_status(t, d, c, what, NULL, a.op_status[i], want);
        else if (c->want != KV_OK && i < c->n_items) /* listed already: how it went */
            fprintf(stderr, "         %-34s | %-32s | %s: %s\n", d->name, c->name, what,
                    status_text(a.op_status[i]));
    }
    if (c->op == OP_GET && a.status == KV_OK &&
        (a.value_len != (size_t)c->value_len || memcmp(a.value, value, a.value_len) != 0))
        differs(t, d, c, "the value read is not the value written");
    answer_free(&a);

    if (c->op != OP_BATCH)
        read_after(t, d, c, key, (size_t)c->key_len, c->after, value, (size_t)c->value_len,
                   c->op == OP_DELETE || c->op == OP_GET ? 0 : c->ttl_s);
    for (size_t i = 0; c->op == OP_BATCH && i < c->n_items; i++)
        if (items[i].kind == KV_BATCH_PUT && items[i].key_len <= MAX_KEY)
            read_after(t, d, c, items[i].key, items[i].key_len, c->after, items[i].value,
                       items[i].value_len, items[i].ttl_s);
    free(items);
}

/* After the attacks, a plain write and read through the same door. */
static void still_serves(door *d, tally *t)
{
    static const tcase plain = {.name = "a plain put and get afterwards", .op = OP_PUT};
    unsigned char key[8];
    make_key(key, (int)sizeof key, d->tag, 99, 0);
    request put = {.op = OP_PUT, .key = key, .key_len = sizeof key,
                   .value = (const unsigned char *)"fine", .value_len = 4};
    answer a = {0};
    d->call(d, &put, &a);
    check_status(t, d, &plain, "put", &a, a.status, KV_OK);
    answer_free(&a);
    read_after(t, d, &plain, key, sizeof key, AFTER_READS_BACK, (const unsigned char *)"fine",
               4, 0);
}

static void run_door(door *d)
{
    tally t = {0};
    for (size_t ci = 0; ci < N_CASES; ci++)
        run_case(d, ci, &CASES[ci], &t);
    still_serves(d, &t);
    fprintf(stderr, "%s: %d checks, %d differ, %d cases it cannot express\n", d->name,
            t.checks, t.differ, t.skipped);
    if (t.differ)
        fail_msg("%s: %d of %d checks differ from the table (listed above)", d->name, t.differ,
                 t.checks);
}

/* ------------------------------------------------------------------ tests */

static void capi_embedded(void **state)
{
    world *w = *state;
    door d = {.name = "C API, embedded", .tag = 'a', .call = capi_call, .db = w->embedded};
    run_door(&d);
}

static void capi_node_handle(void **state)
{
    world *w = *state;
    door d = {.name = "C API, node handle", .tag = 'b', .call = capi_call, .db = w->node};
    run_door(&d);
}

static void capi_client_single(void **state)
{
    world *w = *state;
    door d = {.name = "C API, client of the single kvd", .tag = 'c', .call = capi_call,
              .db = w->client_single};
    run_door(&d);
}

static void capi_client_cluster(void **state)
{
    world *w = *state;
    door d = {.name = "C API, client of the cluster", .tag = 'd', .call = capi_call,
              .db = w->client_cluster};
    run_door(&d);
}

static void raw_single(void **state)
{
    world *w = *state;
    door d = {.name = "raw frames, single kvd", .tag = 'e', .call = raw_call,
              .byte_quorum = 1, .w = w, .fixed = &w->single};
    run_door(&d);
}

static void raw_cluster_replica(void **state)
{
    world *w = *state;
    door d = {.name = "raw frames, cluster replica", .tag = 'f', .call = raw_call,
              .byte_quorum = 1, .w = w, .route = ROUTE_REPLICA};
    run_door(&d);
}

static void raw_cluster_forwarding(void **state)
{
    world *w = *state;
    door d = {.name = "raw frames, cluster non-replica", .tag = 'g', .call = raw_call,
              .byte_quorum = 1, .w = w, .route = ROUTE_NON_REPLICA};
    run_door(&d);
}

static void http_single(void **state)
{
    world *w = *state;
    door d = {.name = "HTTP, single kvd", .tag = 'h', .call = http_call, .w = w,
              .fixed = &w->single};
    run_door(&d);
}

static void http_cluster_replica(void **state)
{
    world *w = *state;
    door d = {.name = "HTTP, cluster replica", .tag = 'i', .call = http_call, .w = w,
              .route = ROUTE_REPLICA};
    run_door(&d);
}

static void http_cluster_forwarding(void **state)
{
    world *w = *state;
    door d = {.name = "HTTP, cluster non-replica", .tag = 'j', .call = http_call, .w = w,
              .route = ROUTE_NON_REPLICA};
    run_door(&d);
}

/* Every kvd is still running and answers on both protocols. */
static void every_server_survived(void **state)
{
    world *w = *state;
    server *all[NODES + 1] = {&w->single};
    for (int i = 0; i < NODES; i++)
        all[i + 1] = &w->nodes[i];
    for (int i = 0; i < NODES + 1; i++) {
        server *s = all[i];
        if (waitpid(s->pid, NULL, WNOHANG) != 0)
            fail_msg("%s exited (log: %s)", s->id, s->log_path);
        const char *eps[] = {s->listen};
        kv *db = client_to(eps, 1);
        assert_int_equal(kv_ping(db), KV_OK);
        kv_close(db);
        kvi_buf out = {0};
        assert_int_equal(http_send(s->http, "GET", "/v1/health", NULL, &out), 200);
        kvi_buf_free(&out);
    }
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(capi_embedded),
        cmocka_unit_test(capi_node_handle),
        cmocka_unit_test(capi_client_single),
        cmocka_unit_test(capi_client_cluster),
        cmocka_unit_test(raw_single),
        cmocka_unit_test(raw_cluster_replica),
        cmocka_unit_test(raw_cluster_forwarding),
        cmocka_unit_test(http_single),
        cmocka_unit_test(http_cluster_replica),
        cmocka_unit_test(http_cluster_forwarding),
        cmocka_unit_test(every_server_survived),
    };
    int failed = cmocka_run_group_tests_name("integration.limits", tests, setup, teardown);
    curl_global_cleanup();
    return failed;
}
