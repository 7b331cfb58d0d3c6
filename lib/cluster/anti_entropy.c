/* cluster/anti_entropy.c - when and with whom a node exchanges (see
 * anti_entropy.h). */
#include "cluster/anti_entropy.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/ae_plan.h"
#include "util/clock.h"
#include "util/error.h"

#define MAX_PEER_ID 71u

/* When an exchange with a member last started and ended cleanly, and how
 * its last exchange ended. */
typedef struct peer_mark {
    char id[MAX_PEER_ID + 1];
    uint64_t clean_start_ms; /* wall clock */
    uint64_t last_end_ms;
    char last_error[240];
} peer_mark;

struct kvi_anti_entropy {
    kvi_anti_entropy_config cfg;
    char *self_id;
    atomic_int stopping;
    uint64_t rng;

    /* Loop thread only. */
    kvi_loop_timer tick;
    kvi_loop_task kick_task;
    int kick_posted;          /* under lock */
    int exchanging;
    uint64_t exchange_start_ms;
    char exchange_peer[MAX_PEER_ID + 1];
    size_t next_member;       /* the periodic turn */
    uint32_t *round_peers;    /* members left in the round, as view indexes */
    size_t n_round_peers;

    pthread_mutex_t lock;     /* guards what follows */
    kvi_ae_status status;
    int round_wanted;         /* a round was asked for and has not started */
    peer_mark *marks;
    size_t n_marks;
};

static uint64_t next_random(kvi_anti_entropy *ae)
{
    /* xorshift64*: enough to spread the nodes' exchanges apart. */
    ae->rng ^= ae->rng >> 12;
    ae->rng ^= ae->rng << 25;
    ae->rng ^= ae->rng >> 27;
    return ae->rng * 2685821657736338717ull;
}

/* The interval, a quarter either way. */
static uint64_t jittered(kvi_anti_entropy *ae)
{
    uint64_t i = ae->cfg.interval_ms;
    return i - i / 4 + (i / 2 ? next_random(ae) % (i / 2 + 1) : 0);
}

static void arm_tick(kvi_anti_entropy *ae, uint64_t in_ms)
{
    if (atomic_load(&ae->stopping))
        return;
    kvi_loop_timer_set(ae->cfg.loop, &ae->tick, kvi_loop_now_ms() + in_ms);
}

/* Members this node shares ranges with (view indexes, into out: view->n
 * entries), down ones included. */
static size_t sharing_peers(const kvi_view *v, uint32_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < v->n; i++) {
        if ((int)i == v->self || !kvi_view_client(v, i))
            continue;
        kvi_token_range *r = NULL;
        size_t nr = 0;
        if (kvi_ae_shared_ranges(v->ring, v->self, (int)i, &r, &nr) == KV_OK && nr)
            out[n++] = (uint32_t)i;
        free(r);
    }
    return n;
}

static peer_mark *mark_of(kvi_anti_entropy *ae, const char *id, int create)
{
    for (size_t i = 0; i < ae->n_marks; i++)
        if (strcmp(ae->marks[i].id, id) == 0)
            return &ae->marks[i];
    if (!create)
        return NULL;
    peer_mark *g = realloc(ae->marks, (ae->n_marks + 1) * sizeof *g);
    if (!g)
        return NULL;
    ae->marks = g;
    peer_mark *m = &ae->marks[ae->n_marks++];
    memset(m, 0, sizeof *m);
    snprintf(m->id, sizeof m->id, "%s", id);
    return m;
}

/* The oldest of the last clean exchanges with every member sharing
 * ranges (lock held); 0 when one never was. */
static uint64_t full_repair_ms(kvi_anti_entropy *ae, const kvi_view *v)
{
    uint32_t *peers = malloc(v->n * sizeof *peers);
    if (!peers)
        return ae->status.last_full_repair_ms;
    size_t n = sharing_peers(v, peers);
    uint64_t oldest = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        peer_mark *m = mark_of(ae, v->members[peers[i]].id, 0);
        uint64_t t = m ? m->clean_start_ms : 0;
        oldest = t < oldest ? t : oldest;
    }
    free(peers);
    return n == 0 ? 0 : oldest;
}

typedef struct exchange_ctx {
    kvi_anti_entropy *ae;
    kvi_view *view; /* a reference, for the full-repair figure */
    int in_round;
} exchange_ctx;

static void schedule(kvi_anti_entropy *ae);

static void exchange_done(void *ctx, int rc, const char *why, const kvi_ae_figures *f)
{
    exchange_ctx *c = ctx;
    kvi_anti_entropy *ae = c->ae;
    uint64_t now = kvi_now_ms();
    uint64_t repaired = f->keys_received + f->keys_sent;
    uint64_t bytes = f->bytes[0] + f->bytes[1] + f->bytes[2];
    pthread_mutex_lock(&ae->lock);
    kvi_ae_status *s = &ae->status;
    if (rc == KV_OK)
        s->exchanges_ok++;
    else
        s->exchanges_failed++;
    s->keys_received += f->keys_received;
    s->keys_sent += f->keys_sent;
    s->records_damaged += f->records_damaged;
    for (int p = 0; p < KVI_AE_PHASES; p++)
        s->bytes[p] += f->bytes[p];
    s->last_exchange_ms = now;
    s->lag_ms = f->oldest_difference_ms && now > f->oldest_difference_ms
                    ? now - f->oldest_difference_ms : 0;
    snprintf(s->last_peer, sizeof s->last_peer, "%s", ae->exchange_peer);
    snprintf(s->last_error, sizeof s->last_error, "%s", rc == KV_OK ? "" : why);
    uint64_t full_before = s->last_full_repair_ms;
    peer_mark *m = mark_of(ae, ae->exchange_peer, 1);
    if (m) {
        m->last_end_ms = now;
        snprintf(m->last_error, sizeof m->last_error, "%s", rc == KV_OK ? "" : why);
    }
    if (rc == KV_OK) {
        if (m)
            m->clean_start_ms = ae->exchange_start_ms;
        s->last_full_repair_ms = full_repair_ms(ae, c->view);
    }
    uint64_t full_now = s->last_full_repair_ms;
    if (c->in_round) {
        kvi_ae_round *r = &s->round;
        r->peers_done++;
        r->keys_repaired += repaired;
        r->bytes += bytes;
        if (rc != KV_OK) {
            r->peers_failed++;
            if (!r->error[0])
                snprintf(r->error, sizeof r->error, "%s: %s", ae->exchange_peer, why);
        }
    }
    pthread_mutex_unlock(&ae->lock);
    if (full_now != full_before && ae->cfg.on_full_repair)
        ae->cfg.on_full_repair(ae->cfg.env_ctx, full_now);
    if (rc != KV_OK)
        kvi_log(ae->cfg.log, KV_LOG_WARN, "anti-entropy exchange with %s failed: %s",
                ae->exchange_peer, why);
    else
        kvi_log(ae->cfg.log, repaired ? KV_LOG_INFO : KV_LOG_DEBUG,
                "anti-entropy exchange with %s: %llu keys taken in, %llu sent, %llu segments "
                "compared by key, %llu bytes in %llu requests, %llu ms", ae->exchange_peer,
                (unsigned long long)f->keys_received, (unsigned long long)f->keys_sent,
                (unsigned long long)f->segments_differing, (unsigned long long)bytes,
                (unsigned long long)f->requests, (unsigned long long)(now - ae->exchange_start_ms));
    kvi_view_unref(c->view);
    free(c);
    ae->exchanging = 0;
    schedule(ae);
}

/* Starts an exchange with member `peer` of env's view; 0 when started. */
static int start_exchange(kvi_anti_entropy *ae, kvi_coord_env *env, uint32_t peer, int in_round)
{
    exchange_ctx *c = malloc(sizeof *c);
    if (!c)
        return -1;
    *c = (exchange_ctx){ae, env->view, in_round};
    kvi_view_ref(env->view);
    snprintf(ae->exchange_peer, sizeof ae->exchange_peer, "%s", env->view->members[peer].id);
    ae->exchange_start_ms = kvi_now_ms();
    ae->exchanging = 1;
    kvi_ae_exchange_config xc = {.peer = peer, .recheck_ms = ae->cfg.recheck_ms,
                                 .rate_bytes = ae->cfg.rate_bytes, .stop = &ae->stopping};
    if (kvi_ae_exchange_start(env, &xc, exchange_done, c) != KV_OK) {
        ae->exchanging = 0;
        kvi_view_unref(env->view);
        free(c);
        return -1;
    }
    return 0;
}

static void round_peer_failed(kvi_anti_entropy *ae, const char *id, const char *why)
{
    pthread_mutex_lock(&ae->lock);
    kvi_ae_round *r = &ae->status.round;
    r->peers_done++;
    r->peers_failed++;
    if (!r->error[0])
        snprintf(r->error, sizeof r->error, "%s: %s", id, why);
    pthread_mutex_unlock(&ae->lock);
}

/* Decides what runs next, on the loop: the round's next member, else the
 * periodic turn when it is due. */
static void schedule(kvi_anti_entropy *ae)
{
    if (ae->exchanging || atomic_load(&ae->stopping))
        return;
    kvi_coord_env env;
    int have_env = ae->cfg.env(ae->cfg.env_ctx, &env) == KV_OK;
    pthread_mutex_lock(&ae->lock);
    int wanted = ae->round_wanted;
    ae->round_wanted = 0;
    pthread_mutex_unlock(&ae->lock);
    if (wanted && have_env) {
        free(ae->round_peers);
        ae->round_peers = malloc(env.view->n * sizeof *ae->round_peers);
        ae->n_round_peers = ae->round_peers ? sharing_peers(env.view, ae->round_peers) : 0;
        pthread_mutex_lock(&ae->lock);
        ae->status.round.peers = (uint32_t)ae->n_round_peers;
        pthread_mutex_unlock(&ae->lock);
    } else if (wanted) {
        /* Nothing can be compared yet: the round fails, as one member. */
        pthread_mutex_lock(&ae->lock);
        ae->status.round.peers = ae->status.round.peers_done = 1;
        ae->status.round.peers_failed = 1;
        snprintf(ae->status.round.error, sizeof ae->status.round.error,
                 "the cluster's membership is not complete yet");
        pthread_mutex_unlock(&ae->lock);
    }
    /* The round's members, one after another. */
    while (have_env && ae->n_round_peers) {
        uint32_t peer = ae->round_peers[--ae->n_round_peers];
        if (peer >= env.view->n)
            continue;
        const char *id = env.view->members[peer].id;
        if (env.is_down && env.is_down(env.is_down_ctx, id)) {
            round_peer_failed(ae, id, "the failure detector holds it down");
            continue;
        }
        if (start_exchange(ae, &env, peer, 1) == 0) {
            kvi_view_unref(env.view);
            return;
        }
        round_peer_failed(ae, id, kvi_error_last());
    }
    pthread_mutex_lock(&ae->lock);
    if (ae->status.round.running && ae->n_round_peers == 0) {
        ae->status.round.running = 0;
        ae->status.round.finished_ms = kvi_now_ms();
        kvi_log(ae->cfg.log, KV_LOG_INFO, "anti-entropy repair round %llu done: %u of %u "
                "members repaired cleanly, %llu keys, %llu bytes",
                (unsigned long long)ae->status.round.id,
                ae->status.round.peers_done - ae->status.round.peers_failed,
                ae->status.round.peers, (unsigned long long)ae->status.round.keys_repaired,
                (unsigned long long)ae->status.round.bytes);
    }
    pthread_mutex_unlock(&ae->lock);
    if (have_env)
        kvi_view_unref(env.view);
    if (ae->cfg.interval_ms && !kvi_loop_timer_armed(&ae->tick))
        arm_tick(ae, jittered(ae));
}

/* The periodic turn: the next member sharing ranges that is up. */
static void tick(void *ctx)
{
    kvi_anti_entropy *ae = ctx;
    if (ae->exchanging || atomic_load(&ae->stopping))
        return; /* the exchange's end schedules */
    kvi_coord_env env;
    if (ae->cfg.env(ae->cfg.env_ctx, &env) != KV_OK) {
        arm_tick(ae, jittered(ae));
        return;
    }
    uint32_t *peers = malloc(env.view->n * sizeof *peers);
    size_t n = peers ? sharing_peers(env.view, peers) : 0;
    int started = 0;
    for (size_t k = 0; k < n && !started; k++) {
        uint32_t peer = peers[ae->next_member++ % n];
        if (env.is_down && env.is_down(env.is_down_ctx, env.view->members[peer].id))
            continue;
        started = start_exchange(ae, &env, peer, 0) == 0;
    }
    free(peers);
    kvi_view_unref(env.view);
    if (!started)
        arm_tick(ae, jittered(ae));
}

static void kick(void *ctx)
{
    kvi_anti_entropy *ae = ctx;
    pthread_mutex_lock(&ae->lock);
    ae->kick_posted = 0;
    pthread_mutex_unlock(&ae->lock);
    schedule(ae);
}

int kvi_anti_entropy_repair(kvi_anti_entropy *ae, uint64_t *round_id)
{
    if (atomic_load(&ae->stopping))
        return kvi_error(KV_EUNAVAILABLE, "the node is stopping");
    pthread_mutex_lock(&ae->lock);
    kvi_ae_round *r = &ae->status.round;
    if (!r->running) {
        uint64_t id = r->id + 1;
        *r = (kvi_ae_round){.id = id, .running = 1, .started_ms = kvi_now_ms()};
        ae->round_wanted = 1;
    }
    *round_id = r->id;
    int post = !ae->kick_posted;
    ae->kick_posted = 1;
    pthread_mutex_unlock(&ae->lock);
    if (post)
        kvi_loop_post(ae->cfg.loop, &ae->kick_task, kick, ae);
    return KV_OK;
}

void kvi_anti_entropy_status(kvi_anti_entropy *ae, kvi_ae_status *out)
{
    pthread_mutex_lock(&ae->lock);
    *out = ae->status;
    pthread_mutex_unlock(&ae->lock);
}

size_t kvi_anti_entropy_peers(kvi_anti_entropy *ae, kvi_ae_peer_status *out, size_t max)
{
    pthread_mutex_lock(&ae->lock);
    size_t n = ae->n_marks;
    for (size_t i = 0; i < n && i < max; i++) {
        kvi_ae_peer_status *p = &out[i];
        snprintf(p->id, sizeof p->id, "%s", ae->marks[i].id);
        p->clean_start_ms = ae->marks[i].clean_start_ms;
        p->last_end_ms = ae->marks[i].last_end_ms;
        snprintf(p->last_error, sizeof p->last_error, "%s", ae->marks[i].last_error);
    }
    pthread_mutex_unlock(&ae->lock);
    return n;
}

int kvi_anti_entropy_start(kvi_anti_entropy **out, const kvi_anti_entropy_config *cfg)
{
    *out = NULL;
    kvi_anti_entropy *ae = calloc(1, sizeof *ae);
    if (!ae || !(ae->self_id = strdup(cfg->self_id ? cfg->self_id : ""))) {
        free(ae);
        return kvi_error(KV_ENOMEM, "out of memory starting anti-entropy");
    }
    ae->cfg = *cfg;
    ae->cfg.self_id = ae->self_id;
    atomic_init(&ae->stopping, 0);
    ae->rng = kvi_now_ms() * 0x9E3779B97F4A7C15ull;
    for (const char *p = ae->self_id; *p; p++)
        ae->rng = (ae->rng ^ (unsigned char)*p) * 0x100000001B3ull;
    ae->rng |= 1;
    pthread_mutex_init(&ae->lock, NULL);
    kvi_loop_timer_init(&ae->tick, tick, ae);
    /* The first periodic exchange after one (jittered) interval: the
     * schedule is set up on the loop. */
    ae->kick_posted = 1;
    kvi_loop_post(ae->cfg.loop, &ae->kick_task, kick, ae);
    *out = ae;
    return KV_OK;
}

void kvi_anti_entropy_stop(kvi_anti_entropy *ae)
{
    if (ae)
        atomic_store(&ae->stopping, 1);
}

void kvi_anti_entropy_free(kvi_anti_entropy *ae)
{
    if (!ae)
        return;
    pthread_mutex_destroy(&ae->lock);
    free(ae->round_peers);
    free(ae->marks);
    free(ae->self_id);
    free(ae);
}
