/* router.c - learning and refreshing a client's cluster view. */
#include "router.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "cluster/view.h"
#include "util/error.h"

#define RELEARN_INTERVAL_MS 1000u

struct kvi_router {
    kvi_client *bootstrap;
    kv_client_options opts;
    uint16_t flags;
    const kvi_logger *log;
    pthread_mutex_t lock;   /* guards view and last_attempt_ms */
    kvi_view *view;
    uint64_t last_attempt_ms;
    int learning;           /* one caller at a time asks a node */
};

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
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
    r->flags = opts->policy == KV_POLICY_LWW ? 0 : KVI_FRAME_FLAG_SIBLINGS;
    r->log = log;
    pthread_mutex_init(&r->lock, NULL);
    *out = r;
    return KV_OK;
}

void kvi_router_close(kvi_router *r)
{
    if (!r)
        return;
    kvi_view_unref(r->view);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* Asks a node for the members and builds a view; NULL when there is none
 * to use (unreachable, incomplete, or a cluster of one). */
static kvi_view *learn(kvi_router *r)
{
    kvi_buf json = {0};
    kvi_view *v = NULL;
    if (kvi_client_cluster(r->bootstrap, &json) == KV_OK &&
        kvi_view_from_json(&v, json.data, json.len, &r->opts, r->flags, r->log) == KV_OK &&
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
    pthread_mutex_lock(&r->lock);
    kvi_view *v = r->view;
    uint64_t now = monotonic_ms();
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

void kvi_router_invalidate(kvi_router *r, kvi_view *stale)
{
    pthread_mutex_lock(&r->lock);
    if (r->view == stale) {
        r->view = NULL;
        r->last_attempt_ms = 0;
        kvi_view_unref(stale);
        kvi_log(r->log, KV_LOG_INFO, "the cluster view is stale; learning it again");
    }
    pthread_mutex_unlock(&r->lock);
}
