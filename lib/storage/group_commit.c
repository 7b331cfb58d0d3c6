/* storage/group_commit.c - one thread syncing for everyone who asked
 * (see group_commit.h). */
#include "storage/group_commit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <kv/common.h>
#include "util/error.h"

struct kvi_group_commit {
    kvi_sync_fn sync;
    void *sync_ctx;
    const kvi_logger *log;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    kvi_sync_request *head, *tail; /* guarded by lock */
    int stopping;                  /* guarded by lock */
    atomic_ullong syncs;
};

static void *commit_loop(void *arg)
{
    kvi_group_commit *g = arg;
    pthread_mutex_lock(&g->lock);
    for (;;) {
        while (!g->head && !g->stopping)
            pthread_cond_wait(&g->cond, &g->lock);
        if (!g->head)
            break; /* stopping, and nobody waits */
        /* Everyone who asked so far: their writes completed before they
         * asked, so the sync that starts now covers them all. */
        kvi_sync_request *group = g->head;
        g->head = g->tail = NULL;
        pthread_mutex_unlock(&g->lock);
        int rc = g->sync(g->sync_ctx);
        atomic_fetch_add(&g->syncs, 1);
        if (rc != KV_OK)
            kvi_log(g->log, KV_LOG_ERROR, "syncing the write-ahead log failed: %s",
                    kvi_error_last());
        while (group) {
            kvi_sync_request *r = group;
            group = r->next;
            r->fn(r->ctx, rc);
        }
        pthread_mutex_lock(&g->lock);
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

int kvi_group_commit_start(kvi_group_commit **out, kvi_sync_fn sync, void *sync_ctx,
                           const kvi_logger *log)
{
    *out = NULL;
    kvi_group_commit *g = calloc(1, sizeof *g);
    if (!g)
        return kvi_error(KV_ENOMEM, "out of memory starting the group committer");
    g->sync = sync;
    g->sync_ctx = sync_ctx;
    g->log = log;
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    if (pthread_create(&g->thread, NULL, commit_loop, g) != 0) {
        pthread_mutex_destroy(&g->lock);
        pthread_cond_destroy(&g->cond);
        free(g);
        return kvi_error(KV_ENOMEM, "cannot start the group committer's thread");
    }
    *out = g;
    return KV_OK;
}

void kvi_group_commit_stop(kvi_group_commit *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->lock);
    g->stopping = 1;
    pthread_cond_signal(&g->cond);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->thread, NULL);
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->cond);
    free(g);
}

void kvi_group_commit_request(kvi_group_commit *g, kvi_sync_request *r, kvi_durable_fn fn,
                              void *ctx)
{
    r->next = NULL;
    r->fn = fn;
    r->ctx = ctx;
    pthread_mutex_lock(&g->lock);
    if (g->tail)
        g->tail->next = r;
    else
        g->head = r;
    g->tail = r;
    pthread_cond_signal(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

unsigned long long kvi_group_commit_syncs(kvi_group_commit *g)
{
    return atomic_load(&g->syncs);
}
