/* client/router.c - learning and refreshing a client's cluster view. */
#include "client/router.h"

#include <cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/coordinator.h"
#include "cluster/view.h"
#include "util/error.h"
#include "util/wipe.h"
#include "util/ticker.h"
#include "util/clock.h"

#define RELEARN_INTERVAL_MS 1000u
/* How often, and how patiently, the members' statuses are asked for. */
#define STATUS_INTERVAL_MS 1000u
#define STATUS_TIMEOUT_MS 500u
#define MAX_DOWN 1024u

struct kvi_router {
    kvi_client *bootstrap;
    kv_client_options opts;
    uint16_t flags;
    const kvi_logger *log;
    pthread_mutex_t lock;   /* guards view and last_attempt_ms */
    kvi_view *view;
    uint64_t last_attempt_ms;
    int learning;           /* one caller at a time asks a node */
    /* The members some node holds down, refreshed by the status thread;
     * guarded by lock. */
    char **down;
    size_t n_down;
    unsigned next_member;   /* whom the status thread asks next */
    kvi_ticker status;      /* refreshes `down` */
    kvi_coord_tracker coord_ops; /* requests coordinated for this handle, alive */
};

kvi_coord_tracker *kvi_router_tracker(kvi_router *r)
{
    return &r->coord_ops;
}

/* Whether a complete description tells of a newer member list than view
 * v: more members (one joined), or as many at other ids or addresses (one
 * moved). Members are never removed, so a member listing fewer has not
 * heard of a join yet: following it would only flip the view back and
 * forth while the news spreads. */
static int members_differ(const kvi_view *v, const cJSON *root)
{
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "complete")))
        return 0; /* that member is still learning: no news */
    const cJSON *members = cJSON_GetObjectItemCaseSensitive(root, "members");
    int n = cJSON_GetArraySize(members);
    if (n != (int)v->n)
        return n > (int)v->n;
    const cJSON *m;
    cJSON_ArrayForEach(m, members) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "nodeId");
        const cJSON *addr = cJSON_GetObjectItemCaseSensitive(m, "address");
        if (!cJSON_IsString(id) || !cJSON_IsString(addr))
            return 0; /* malformed: not news either */
        int found = kvi_ring_find(v->ring, id->valuestring);
        if (found < 0 || strcmp(v->members[found].addr, addr->valuestring) != 0)
            return 1;
    }
    return 0;
}

/* Asks one member (in turn) for the cluster as it sees it, with a short
 * deadline, and keeps the ids it holds down or stopped. A paused member
 * costs one attempt, not a stall: the next round asks another. When the
 * member lists other members than the client's view (one joined), the
 * view is rebuilt from that description: requests already running keep
 * the old one. */
static void refresh_status(kvi_router *r)
{
    pthread_mutex_lock(&r->lock);
    kvi_view *v = r->view;
    if (v)
        kvi_view_ref(v);
    unsigned which = r->next_member++;
    pthread_mutex_unlock(&r->lock);
    if (!v)
        return;
    kvi_client *c = kvi_view_client(v, which % v->n);
    kvi_fanout fo;
    kvi_fanout_init(&fo);
    kvi_request req = {.opcode = KVI_OP_CLUSTER};
    kvi_call *call = kvi_call_start(c, &fo, &req, 0, 0);
    struct timespec deadline = kvi_deadline_after(STATUS_TIMEOUT_MS);
    kvi_fanout_wait(&fo, 1, 1, &deadline);
    kvi_frame_header h;
    unsigned char *body = NULL;
    kvi_response resp;
    char **down = NULL;
    size_t n_down = 0;
    kvi_view *fresh = NULL;
    int ok = kvi_call_finish(call, &h, &body) == KV_OK &&
             kvi_call_decode(&resp, KVI_OP_CLUSTER, &h, body) == KV_OK;
    if (ok) {
        cJSON *root = cJSON_ParseWithLength((const char *)resp.value.data, resp.value.len);
        if (root && members_differ(v, root) &&
            kvi_view_from_json(&fresh, resp.value.data, resp.value.len, &r->opts, r->flags,
                               r->log, kvi_client_loop_of(r->bootstrap)) != KV_OK)
            fresh = NULL;
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(root, "members")) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "nodeId");
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(m, "status");
            if (!cJSON_IsString(id) || !cJSON_IsString(st) || n_down == MAX_DOWN ||
                (strcmp(st->valuestring, "down") != 0 && strcmp(st->valuestring, "stopped") != 0))
                continue;
            char **p = realloc(down, (n_down + 1) * sizeof *p);
            if (!p)
                break;
            down = p;
            down[n_down] = strdup(id->valuestring);
            n_down += down[n_down] != NULL;
        }
        cJSON_Delete(root);
    }
    free(body);
    kvi_fanout_destroy(&fo);
    if (!ok) {
        kvi_view_unref(v);
        return; /* no news: keep what was known */
    }
    pthread_mutex_lock(&r->lock);
    char **old = r->down;
    size_t n_old = r->n_down;
    r->down = down;
    r->n_down = n_down;
    kvi_view *replaced = NULL;
    if (fresh && r->view == v) {
        /* Unless the view changed meanwhile (invalidated, relearned). */
        replaced = r->view;
        r->view = fresh;
        fresh = NULL;
        kvi_log(r->log, KV_LOG_INFO, "the cluster has changed: %zu members now (was %zu)",
                r->view->n, replaced->n);
    }
    pthread_mutex_unlock(&r->lock);
    kvi_view_unref(v);
    kvi_view_unref(replaced);
    kvi_view_unref(fresh);
    for (size_t i = 0; i < n_old; i++)
        free(old[i]);
    free(old);
}

static uint32_t status_tick(void *arg)
{
    refresh_status(arg);
    return STATUS_INTERVAL_MS;
}

int kvi_router_is_down(void *ctx, const char *node_id)
{
    kvi_router *r = ctx;
    if (!r)
        return 0;
    int down = 0;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n_down && !down; i++)
        down = strcmp(r->down[i], node_id) == 0;
    pthread_mutex_unlock(&r->lock);
    return down;
}

int kvi_router_open(kvi_router **out, kvi_client *bootstrap, const kv_client_options *opts,
                    const kvi_logger *log)
{
    *out = NULL;
    kvi_router *r = calloc(1, sizeof *r);
    if (!r)
        return kvi_error(KV_ENOMEM, "out of memory opening a client");
    r->bootstrap = bootstrap;
    r->opts = *opts;
    /* The strings are the caller's until kv_client_open returns: the views
     * built later open their connections from copies. */
    const char *given[] = {opts->auth_token, opts->tls_ca_pem, opts->tls_cert_pem,
                           opts->tls_key_pem};
    const char **copies[] = {&r->opts.auth_token, &r->opts.tls_ca_pem, &r->opts.tls_cert_pem,
                             &r->opts.tls_key_pem};
    int copied = 1;
    for (size_t i = 0; i < 4; i++) {
        *copies[i] = given[i] ? strdup(given[i]) : NULL;
        copied &= !given[i] || *copies[i];
    }
    if (!copied) {
        for (size_t i = 0; i < 4; i++)
            free((char *)*copies[i]);
        free(r);
        return kvi_error(KV_ENOMEM, "out of memory opening a client");
    }
    r->flags = opts->policy == KV_POLICY_LWW ? 0 : KVI_FRAME_FLAG_SIBLINGS;
    r->log = log;
    pthread_mutex_init(&r->lock, NULL);
    kvi_coord_tracker_init(&r->coord_ops);
    if (kvi_ticker_start(&r->status, status_tick, r) != 0) {
        kvi_router_close(r);
        return kvi_error(KV_ENOMEM, "cannot start the client's status thread");
    }
    *out = r;
    return KV_OK;
}

void kvi_router_close(kvi_router *r)
{
    if (!r)
        return;
    kvi_ticker_stop(&r->status);
    /* Requests that answered may still wait for the members' answers (at
     * most the request timeout): they hold views whose connections log
     * through the handle. */
    kvi_coord_tracker_drain(&r->coord_ops);
    for (size_t i = 0; i < r->n_down; i++)
        free(r->down[i]);
    free(r->down);
    kvi_view_unref(r->view);
    pthread_mutex_destroy(&r->lock);
    free((char *)r->opts.auth_token);
    free((char *)r->opts.tls_ca_pem);
    free((char *)r->opts.tls_cert_pem);
    if (r->opts.tls_key_pem)
        kvi_wipe((char *)r->opts.tls_key_pem, strlen(r->opts.tls_key_pem));
    free((char *)r->opts.tls_key_pem);
    free(r);
}

/* Asks a node for the members and builds a view; NULL when there is none
 * to use (unreachable, incomplete, or a cluster of one). */
static kvi_view *learn(kvi_router *r)
{
    kvi_buf json = {0};
    kvi_view *v = NULL;
    if (kvi_client_cluster(r->bootstrap, &json) == KV_OK &&
        kvi_view_from_json(&v, json.data, json.len, &r->opts, r->flags, r->log,
                           kvi_client_loop_of(r->bootstrap)) == KV_OK &&
        v->n < 2) {
        kvi_view_unref(v);
        v = NULL;
    }
    kvi_buf_free(&json);
    if (v)
        kvi_log(r->log, KV_LOG_INFO, "learned the cluster: %zu members, %u replicas", v->n,
                v->replicas);
    return v;
}

kvi_view *kvi_router_view(kvi_router *r)
{
    if (!r)
        return NULL; /* a manual_loop client: the nodes coordinate */
    pthread_mutex_lock(&r->lock);
    kvi_view *v = r->view;
    uint64_t now = kvi_monotonic_ms();
    if (!v && !r->learning &&
        (r->last_attempt_ms == 0 || now - r->last_attempt_ms >= RELEARN_INTERVAL_MS)) {
        r->learning = 1;
        r->last_attempt_ms = now;
        pthread_mutex_unlock(&r->lock);
        kvi_view *fresh = learn(r);
        pthread_mutex_lock(&r->lock);
        r->learning = 0;
        if (fresh && !r->view)
            r->view = fresh;
        else
            kvi_view_unref(fresh);
        v = r->view;
    }
    if (v)
        kvi_view_ref(v);
    pthread_mutex_unlock(&r->lock);
    return v;
}

void kvi_router_invalidate(kvi_router *r, kvi_view *stale, const char *from)
{
    /* The member that refused has a newer view (the bootstrap endpoint
     * may not have heard of the change yet): learn the ring from it. */
    kvi_view *fresh = NULL;
    int idx = from ? kvi_ring_find(stale->ring, from) : -1;
    kvi_client *c = idx >= 0 ? kvi_view_client(stale, (size_t)idx) : NULL;
    kvi_buf json = {0};
    if (c && kvi_client_cluster(c, &json) == KV_OK &&
        kvi_view_from_json(&fresh, json.data, json.len, &r->opts, r->flags, r->log,
                           kvi_client_loop_of(r->bootstrap)) == KV_OK &&
        fresh->n < 2) {
        kvi_view_unref(fresh);
        fresh = NULL;
    }
    kvi_buf_free(&json);
    pthread_mutex_lock(&r->lock);
    if (r->view == stale) {
        r->view = fresh;
        fresh = NULL;
        r->last_attempt_ms = 0;
        kvi_view_unref(stale);
        kvi_log(r->log, KV_LOG_INFO, "the cluster view is stale; %s",
                r->view ? "learned it again from the member that said so" : "learning it again");
    }
    pthread_mutex_unlock(&r->lock);
    kvi_view_unref(fresh);
}
