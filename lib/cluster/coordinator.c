/* cluster/coordinator.c - quorum reads and writes over a cluster view. */
#include "cluster/coordinator.h"
#include "cluster/coord_op.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/hints.h"
#include "cluster/quorum.h"
#include "cluster/paxos_acceptor.h"
#include "cluster/replica_store.h"
#include "cluster/serial.h"
#include "format/record.h"
#include "util/clock.h"
#include "util/error.h"

#include <xxhash.h>

#define MAX_PREF KVI_COORD_MAX_PREF

/* The preference list of a key, as member indexes. */
size_t kvi_coord_homes(const kvi_view *v, const void *key, size_t key_len, uint32_t *out)
{
    const uint32_t *list;
    size_t n = kvi_ring_preference(v->ring, kvi_key_token(key, key_len), &list);
    if (n > MAX_PREF)
        n = MAX_PREF;
    memcpy(out, list, n * sizeof *out);
    return n;
}

uint64_t kvi_coord_route_hash(const kvi_view *v, uint8_t opcode, const void *key,
                              size_t key_len)
{
    if (opcode == KVI_OP_REPLICATE)
        return kvi_serial_homes_hash(v, key, key_len);
    uint32_t homes[MAX_PREF];
    size_t n = kvi_coord_homes(v, key, key_len, homes);
    uint64_t h = 0x5245414455ull; /* "READ": unlike any write's */
    for (size_t i = 0; i < n; i++) {
        if (v->no_reads && homes[i] < v->n && v->no_reads[homes[i]])
            continue;
        const char *id = v->members[homes[i]].id;
        h = XXH3_64bits_withSeed(id, strlen(id), h); /* chained: order counts */
    }
    return h;
}

size_t kvi_coord_pending(const kvi_view *v, const void *key, size_t key_len,
                         const uint32_t *homes, size_t n, uint32_t *out,
                         unsigned char *in_future)
{
    if (!v->future) {
        memset(in_future, 1, n);
        return 0;
    }
    memset(in_future, 0, n);
    const uint32_t *list;
    size_t nf = kvi_ring_preference(v->future, kvi_key_token(key, key_len), &list);
    size_t pending = 0;
    for (size_t f = 0; f < nf && f < MAX_PREF; f++) {
        uint32_t m = v->future_member[list[f]];
        int current = 0;
        for (size_t i = 0; i < n; i++)
            if (homes[i] == m) {
                in_future[i] = 1;
                current = 1;
            }
        if (!current)
            out[pending++] = m;
    }
    return pending;
}

int kvi_coord_future_home(const kvi_view *v, uint64_t token, uint32_t member)
{
    if (!v->future)
        return 0;
    const uint32_t *list;
    size_t nf = kvi_ring_preference(v->future, token, &list);
    for (size_t f = 0; f < nf; f++)
        if (v->future_member[list[f]] == member)
            return 1;
    return 0;
}

static int is_self(const kvi_view *v, uint32_t member)
{
    return coord_is_self(v, member);
}

/* A member that answered this recently is alive, whatever gossip says:
 * first-hand evidence beats hearsay. Under CPU pressure gossip news can lag
 * by seconds while the member keeps answering requests. */
#define ALIVE_EVIDENCE_MS 2000u

/* The failure detector's word on a member (never on this node itself),
 * overruled when the member itself answered us within ALIVE_EVIDENCE_MS. */
int kvi_coord_down(const kvi_coord_env *env, uint32_t member)
{
    if (!env->is_down || is_self(env->view, member) ||
        !env->is_down(env->is_down_ctx, kvi_view_member_at(env->view, member)->id))
        return 0;
    uint64_t last = kvi_client_last_answer_ms(kvi_view_client(env->view, member));
    uint64_t now = kvi_monotonic_ms();
    return last == 0 || now - last > ALIVE_EVIDENCE_MS;
}

/* How long a coordinator waits for the replicas: the connections' own
 * request timeout. */
uint32_t kvi_coord_timeout_ms(const kvi_view *v)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->members[i].client)
            return kvi_client_timeout_ms(v->members[i].client);
    return 2000;
}

/* ------------------------------------------------------------ the tracker */

void kvi_coord_tracker_init(kvi_coord_tracker *t)
{
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    t->alive = 0;
}

void kvi_coord_tracker_drain(kvi_coord_tracker *t)
{
    pthread_mutex_lock(&t->lock);
    while (t->alive)
        pthread_cond_wait(&t->cond, &t->lock);
    pthread_mutex_unlock(&t->lock);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->cond);
}

kvi_serial_request kvi_coord_serial_request(const kvi_coord_write *w)
{
    kvi_serial_request q = {
        .op = w->kind == KVI_WRITE_PUT ? KVI_SERIAL_PUT
            : w->kind == KVI_WRITE_DELETE ? KVI_SERIAL_DELETE : KVI_SERIAL_CAS,
        .key = w->key, .key_len = w->key_len, .value = w->value, .value_len = w->value_len,
        .ttl_s = w->ttl_s, .expected_version = w->expected_version,
    };
    return q;
}

/* ------------------------------------------------- waiting for a request */

/* A caller blocked on an asynchronous request. */
typedef struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    int rc;
    uint64_t version;
    kv_value *value;
    kvi_read_report *report;  /* where to copy the report; may be NULL */
    char why[320];
} waiter;

static void waiter_init(waiter *w, kvi_read_report *report)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->report = report;
}

static void waiter_done(void *ctx, kvi_coord_result *r)
{
    waiter *w = ctx;
    pthread_mutex_lock(&w->lock);
    w->rc = r->rc;
    w->version = r->version;
    w->value = r->value;
    r->value = NULL;
    if (w->report && r->report)
        *w->report = *r->report;
    snprintf(w->why, sizeof w->why, "%s", r->rc != KV_OK && r->why ? r->why : "");
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* Waits for the request and sets this thread's error message from it. */
static int waiter_wait(waiter *w)
{
    pthread_mutex_lock(&w->lock);
    while (!w->done)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    if (w->rc != KV_OK)
        return kvi_error(w->rc, "%s", w->why);
    return KV_OK;
}

/* A request waited for on the loop that runs it would wait for itself. */
static int refuse_on_loop(const kvi_view *v)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->members[i].client)
            return kvi_loop_on_thread(kvi_client_event_loop(v->members[i].client))
                       ? kvi_error(KV_EBUSY, "a coordinated request cannot be waited for on "
                                             "the loop that runs it")
                       : KV_OK;
    return KV_OK;
}

int kvi_coord_read(const kvi_coord_env *env, kv_value **out, const void *key, size_t key_len,
                   kv_consistency consistency, unsigned r, int siblings,
                   kvi_read_report *report)
{
    *out = NULL;
    kvi_view *v = env->view;
    if (consistency == KV_CONSISTENCY_SERIAL) {
        if (v->self < 0 || !env->local)
            return kvi_error(KV_EINVAL, "a SERIAL read is coordinated by a node (send it as a "
                                        "GET request)");
    }
    int rc = refuse_on_loop(v);
    if (rc != KV_OK)
        return rc;
    waiter w;
    waiter_init(&w, report);
    if (consistency == KV_CONSISTENCY_SERIAL) {
        kvi_serial_request q = {.op = KVI_SERIAL_GET, .key = key, .key_len = key_len,
                                .all_siblings = siblings};
        rc = kvi_serial_start(env, &q, waiter_done, &w);
    } else {
        rc = kvi_coord_read_start(env, key, key_len, consistency, r, siblings, report != NULL,
                                  waiter_done, &w);
    }
    if (rc != KV_OK) {
        pthread_mutex_destroy(&w.lock);
        pthread_cond_destroy(&w.cond);
        return rc;
    }
    rc = waiter_wait(&w);
    *out = w.value;
    return rc;
}

int kvi_coord_write_run(const kvi_coord_env *env, const kvi_coord_write *w,
                        uint64_t *out_version)
{
    int serial = kvi_coord_write_needs_serial(env, w);
    if (serial < 0)
        return serial;
    int rc = refuse_on_loop(env->view);
    if (rc != KV_OK)
        return rc;
    waiter wt;
    waiter_init(&wt, NULL);
    if (serial) {
        kvi_serial_request q = kvi_coord_serial_request(w);
        rc = kvi_serial_start(env, &q, waiter_done, &wt);
    } else {
        rc = kvi_coord_write_start(env, w, waiter_done, &wt);
    }
    if (rc != KV_OK) {
        pthread_mutex_destroy(&wt.lock);
        pthread_cond_destroy(&wt.cond);
        return rc;
    }
    rc = waiter_wait(&wt);
    if (out_version && (rc == KV_OK || rc == KV_ECONFLICT))
        *out_version = wt.version;
    return rc;
}

/* -------------------------------------------------------------- batches */

int kvi_coord_batch(const kvi_coord_env *env, kv_batch *b, const kv_write_options *wo,
                    const kv_read_options *ro, int siblings)
{
    int rc = refuse_on_loop(env->view);
    if (rc != KV_OK)
        return rc;
    waiter w;
    waiter_init(&w, NULL);
    rc = kvi_coord_batch_start(env, b, wo, ro, siblings, waiter_done, &w);
    if (rc != KV_OK) {
        pthread_mutex_destroy(&w.lock);
        pthread_cond_destroy(&w.cond);
        return rc;
    }
    return waiter_wait(&w);
}
