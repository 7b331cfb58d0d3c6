/* The group committer: every request is told exactly once, only after a
 * sync that began after it was made; requests made while a sync runs share
 * the next one; a failed sync is told; stop runs what still waits. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <kv/kv.h>
#include "storage/group_commit.h"
#include "util/error.h"

/* A sync that counts, can be held at its start, and can fail. */
typedef struct fake_disk {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned started, finished;
    int hold;          /* a sync waits at its start while set */
    int holding;       /* a sync is waiting there */
    int fail;
} fake_disk;

static int fake_sync(void *ctx)
{
    fake_disk *d = ctx;
    pthread_mutex_lock(&d->lock);
    d->started++;
    while (d->hold) {
        d->holding = 1;
        pthread_cond_broadcast(&d->cond);
        pthread_cond_wait(&d->cond, &d->lock);
    }
    d->holding = 0;
    d->finished++;
    int fail = d->fail;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    return fail ? kvi_error(KV_EIO, "the fake disk failed") : KV_OK;
}

typedef struct waiter {
    kvi_sync_request req;
    fake_disk *disk;
    unsigned started_when_asked; /* syncs started before the request */
    atomic_int told;
    int rc;
    int after_a_later_sync;      /* a sync that started after it had finished */
} waiter;

static void durable(void *ctx, int rc)
{
    waiter *w = ctx;
    /* Runs on the committer's thread, after the sync returned: the count
     * of finished syncs includes the one that covered this request. */
    pthread_mutex_lock(&w->disk->lock);
    w->after_a_later_sync = w->disk->finished > w->started_when_asked;
    pthread_mutex_unlock(&w->disk->lock);
    w->rc = rc;
    atomic_fetch_add(&w->told, 1);
}

static void ask(kvi_group_commit *g, fake_disk *d, waiter *w)
{
    memset(w, 0, sizeof *w);
    w->disk = d;
    pthread_mutex_lock(&d->lock);
    w->started_when_asked = d->started;
    pthread_mutex_unlock(&d->lock);
    kvi_group_commit_request(g, &w->req, durable, w);
}

static void disk_init(fake_disk *d)
{
    memset(d, 0, sizeof *d);
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
}

static void wait_holding(fake_disk *d)
{
    pthread_mutex_lock(&d->lock);
    while (!d->holding)
        pthread_cond_wait(&d->cond, &d->lock);
    pthread_mutex_unlock(&d->lock);
}

static void release_hold(fake_disk *d)
{
    pthread_mutex_lock(&d->lock);
    d->hold = 0;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

static void requests_made_during_a_sync_share_the_next(void **state)
{
    (void)state;
    fake_disk d;
    disk_init(&d);
    kvi_group_commit *g = NULL;
    assert_int_equal(kvi_group_commit_start(&g, fake_sync, &d, NULL), KV_OK);
    d.hold = 1;
    waiter first, later[20];
    ask(g, &d, &first);
    wait_holding(&d); /* the first sync runs, held at its start */
    for (int i = 0; i < 20; i++)
        ask(g, &d, &later[i]);
    release_hold(&d);
    kvi_group_commit_stop(g); /* runs what still waits, then ends */
    assert_int_equal(atomic_load(&first.told), 1);
    assert_int_equal(first.rc, KV_OK);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(atomic_load(&later[i].told), 1);
        assert_int_equal(later[i].rc, KV_OK);
        /* Covered by a sync that began after it asked, not the held one
         * (which began before). */
        assert_true(later[i].after_a_later_sync);
        assert_true(later[i].started_when_asked >= 1);
    }
    /* The twenty asked while the first sync ran: one more sync for all. */
    assert_int_equal(d.started, 2);
}

static void a_failed_sync_is_told(void **state)
{
    (void)state;
    fake_disk d;
    disk_init(&d);
    d.fail = 1;
    kvi_group_commit *g = NULL;
    assert_int_equal(kvi_group_commit_start(&g, fake_sync, &d, NULL), KV_OK);
    waiter w;
    ask(g, &d, &w);
    kvi_group_commit_stop(g);
    assert_int_equal(atomic_load(&w.told), 1);
    assert_int_equal(w.rc, KV_EIO);
}

/* Many threads asking at once: each told once, each after a sync that
 * began after it asked. */
typedef struct asker {
    kvi_group_commit *g;
    fake_disk *d;
    waiter w[200];
} asker;

static void *ask_many(void *arg)
{
    asker *a = arg;
    for (int i = 0; i < 200; i++)
        ask(a->g, a->d, &a->w[i]);
    return NULL;
}

static void concurrent_requests_are_each_told_once(void **state)
{
    (void)state;
    fake_disk d;
    disk_init(&d);
    kvi_group_commit *g = NULL;
    assert_int_equal(kvi_group_commit_start(&g, fake_sync, &d, NULL), KV_OK);
    static asker a[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        a[i].g = g;
        a[i].d = &d;
        assert_int_equal(pthread_create(&t[i], NULL, ask_many, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    kvi_group_commit_stop(g);
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 200; k++) {
            assert_int_equal(atomic_load(&a[i].w[k].told), 1);
            assert_true(a[i].w[k].after_a_later_sync);
        }
    assert_true(d.started >= 1 && d.started <= 800);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(requests_made_during_a_sync_share_the_next),
        cmocka_unit_test(a_failed_sync_is_told),
        cmocka_unit_test(concurrent_requests_are_each_told_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
