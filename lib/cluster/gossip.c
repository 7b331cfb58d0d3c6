/* cluster/gossip.c - the gossip thread, its exchanges and phi per member. */
#include "cluster/gossip.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kv/kv.h>
#include "net/client.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"
#include "util/ticker.h"

#define MAX_SEEDS 64u
/* Members told of a clean stop, so they mark this node down at once. */
#define STOP_ANNOUNCEMENTS 3u
/* A gossip round that starts this much later than it was due means this
 * node itself was paused (SIGSTOP, a VM stall, CPU starvation): it could
 * hear nothing meanwhile, so the others' silence is forgiven rather than
 * taken for their failure (as Cassandra's detector skips convictions
 * after a local pause). */
#define LOCAL_PAUSE_MS 1000u

/* What this node has seen of one member's heartbeat. */
typedef struct watch {
    char id[KVI_GOSSIP_MAX_ID + 1];
    uint64_t generation, heartbeat;
    kvi_phi phi;
    int suspected;  /* held down at the last round */
} watch;

struct kvi_gossip {
    kvi_gossip_config cfg;
    const kvi_logger *log;
    char *seeds[MAX_SEEDS];
    size_t n_seeds;
    /* lock guards everything below but the ticker. */
    pthread_mutex_t lock;
    kvi_gossip_table table;
    kvi_gossip_entry self;
    watch *watches;
    size_t n_watches;
    uint64_t rng;
    kvi_ticker ticker;       /* one exchange per interval */
    uint64_t suspicions;     /* members newly held down, since start */
    uint64_t next_round_ms;  /* when the next round is due; 0 = first */
    /* Members that announced a stop or leave, or came back with a new
     * generation (a restart), since the last round: logged by the next
     * round, outside the lock (the log callback is the application's). */
    struct news {
        char id[KVI_GOSSIP_MAX_ID + 1];
        uint8_t status;
        int restarted;
    } news[8];
    size_t n_news;
};

static uint64_t next_random(kvi_gossip *g)
{
    g->rng ^= g->rng << 13;
    g->rng ^= g->rng >> 7;
    g->rng ^= g->rng << 17;
    return g->rng;
}

/* The watch of id, created on first sight; NULL when out of memory. Called
 * with g->lock held. */
static watch *watch_of(kvi_gossip *g, const char *id)
{
    for (size_t i = 0; i < g->n_watches; i++)
        if (strcmp(g->watches[i].id, id) == 0)
            return &g->watches[i];
    watch *p = realloc(g->watches, (g->n_watches + 1) * sizeof *p);
    if (!p)
        return NULL;
    g->watches = p;
    watch *w = &g->watches[g->n_watches++];
    memset(w, 0, sizeof *w);
    snprintf(w->id, sizeof w->id, "%s", id);
    kvi_phi_init(&w->phi, &g->cfg.phi);
    return w;
}

/* Feeds the detectors with every member whose heartbeat advanced; called
 * with g->lock held after a merge. */
static void observe(kvi_gossip *g)
{
    uint64_t now = kvi_monotonic_ms();
    for (size_t i = 0; i < g->table.n; i++) {
        const kvi_gossip_entry *e = &g->table.entries[i];
        if (strcmp(e->id, g->self.id) == 0)
            continue;
        watch *w = watch_of(g, e->id);
        if (!w)
            continue;
        if (e->generation != w->generation) {
            /* A new life: its history says nothing about this one. */
            kvi_phi_init(&w->phi, &g->cfg.phi);
            w->generation = e->generation;
            w->heartbeat = e->heartbeat;
            kvi_phi_heartbeat(&w->phi, now);
        } else if (e->heartbeat > w->heartbeat) {
            w->heartbeat = e->heartbeat;
            kvi_phi_heartbeat(&w->phi, now);
        }
    }
}

/* Merges a table received from another node (its answer, or its push);
 * called with g->lock held. */
static void take_news(kvi_gossip *g, const kvi_gossip_table *theirs)
{
    uint64_t now = kvi_now_ms();
    for (size_t i = 0; i < theirs->n; i++) {
        const kvi_gossip_entry *e = &theirs->entries[i];
        const char *why = kvi_gossip_implausible(&g->table, e, g->self.id, now);
        if (why) {
            /* Its own entry comes back in every exchange: not news. */
            if (strcmp(e->id, g->self.id) != 0)
                kvi_log(g->log, KV_LOG_WARN, "ignoring gossip about %s at %s: %s", e->id,
                        e->addr, why);
            continue;
        }
        const kvi_gossip_entry *had = kvi_gossip_find(&g->table, e->id);
        uint8_t status = had ? had->status : 0;
        uint64_t generation = had ? had->generation : 0;
        if (kvi_gossip_merge_entry(&g->table, e) == 1 && had &&
            strcmp(e->id, g->self.id) != 0 && g->n_news < sizeof g->news / sizeof g->news[0]) {
            /* had points into the table, now holding e. A stop or a
             * leave is news when announced, a restart when seen. */
            int restarted = e->generation != generation;
            int announced = e->status != status && (e->status == KVI_MEMBER_STOPPED ||
                                                    e->status == KVI_MEMBER_LEAVING);
            if (announced || restarted) {
                struct news *n = &g->news[g->n_news++];
                snprintf(n->id, sizeof n->id, "%s", e->id);
                n->status = e->status;
                n->restarted = restarted;
            }
        }
    }
    observe(g);
}

/* Logs what take_news noted; called without g->lock. */
static void log_news(kvi_gossip *g, const struct news *news, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct news *e = &news[i];
        if (e->status == KVI_MEMBER_STOPPED)
            kvi_log(g->log, KV_LOG_INFO, "member %s announced a clean stop", e->id);
        else if (e->status == KVI_MEMBER_LEAVING)
            kvi_log(g->log, KV_LOG_INFO, "member %s announced it is leaving the cluster", e->id);
        else if (e->restarted)
            kvi_log(g->log, KV_LOG_INFO, "member %s restarted (a new generation)", e->id);
    }
}

/* Bumps this node's own entry into the table; called with g->lock held. */
static void refresh_self(kvi_gossip *g)
{
    g->self.heartbeat++;
    kvi_gossip_merge_entry(&g->table, &g->self);
}

/* Whether this node's detector holds member e down; called with g->lock
 * held. */
static int held_down(kvi_gossip *g, const kvi_gossip_entry *e, uint64_t now)
{
    if (e->status == KVI_MEMBER_STOPPED)
        return 1;
    for (size_t i = 0; i < g->n_watches; i++)
        if (strcmp(g->watches[i].id, e->id) == 0)
            return kvi_phi_suspect(&g->watches[i].phi, now);
    return 0;
}

/* Whether seed i names no member of the table yet (by address as given):
 * a member the node was told of but has no gossip from. Called with
 * g->lock held. */
static int seed_unknown(const kvi_gossip *g, size_t i)
{
    if (strcmp(g->seeds[i], g->self.addr) == 0)
        return 0;
    for (size_t j = 0; j < g->table.n; j++)
        if (strcmp(g->table.entries[j].addr, g->seeds[i]) == 0)
            return 0;
    return 1;
}

/* An address to gossip with: a random member that is up, or a seed no
 * gossip has come from yet, most of the time; now and then any seed (so
 * that partitions heal) or a member held down (to notice it come back).
 * Unknown seeds are in the main pool: otherwise two nodes that found each
 * other first kept gossiping only with each other, and a fresh cluster of
 * five took tens of seconds to know itself (seen under ASan: after 10 s,
 * most members were still "unknown" to most others). Members held down are
 * mostly avoided so that an exchange waiting on a paused one does not delay
 * the news of the others (which would make them look down too). Called
 * with g->lock held; NULL when there is nobody. */
static char *pick_target(kvi_gossip *g)
{
    uint64_t now = kvi_monotonic_ms();
    size_t up = 0, down = 0, unknown = 0;
    for (size_t i = 0; i < g->table.n; i++) {
        const kvi_gossip_entry *e = &g->table.entries[i];
        if (strcmp(e->id, g->self.id) == 0)
            continue;
        if (held_down(g, e, now))
            down++;
        else
            up++;
    }
    for (size_t i = 0; i < g->n_seeds; i++)
        unknown += seed_unknown(g, i);
    uint64_t r = next_random(g);
    int rare = r % 10 == 0;
    if (g->n_seeds > 0 && rare && (r >> 4) % 2 == 0) {
        const char *seed = g->seeds[(r >> 8) % g->n_seeds];
        if (strcmp(seed, g->self.addr) != 0)
            return strdup(seed);
    }
    int want_down = down > 0 && (up + unknown == 0 || rare);
    size_t pool = want_down ? down : up + unknown;
    if (pool == 0)
        return NULL;
    size_t k = (size_t)((r >> 16) % pool);
    for (size_t i = 0; i < g->table.n; i++) {
        const kvi_gossip_entry *e = &g->table.entries[i];
        if (strcmp(e->id, g->self.id) == 0 || (held_down(g, e, now) != 0) != want_down)
            continue;
        if (k-- == 0)
            return strdup(e->addr);
    }
    for (size_t i = 0; !want_down && i < g->n_seeds; i++)
        if (seed_unknown(g, i) && k-- == 0)
            return strdup(g->seeds[i]);
    return NULL;
}

/* One push-pull exchange with addr; merges the answer. */
static void exchange(kvi_gossip *g, const char *addr)
{
    kvi_buf mine = {0};
    pthread_mutex_lock(&g->lock);
    kvi_gossip_encode(&mine, &g->table);
    pthread_mutex_unlock(&g->lock);
    kvi_client *c = NULL;
    const char *eps[] = {addr};
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.connect_timeout_ms = g->cfg.timeout_ms;
    co.request_timeout_ms = g->cfg.timeout_ms;
    int rc = g->cfg.loop ? kvi_client_open_on(&c, eps, 1, &co, g->log, g->cfg.loop)
                         : kvi_client_open(&c, eps, 1, &co, g->log);
    if (mine.failed || rc != KV_OK) {
        kvi_buf_free(&mine);
        return;
    }
    if (g->cfg.creds && g->cfg.creds->secret_len &&
        kvi_client_set_credentials(c, g->cfg.creds->secret, g->cfg.creds->secret_len,
                                   NULL) != KV_OK) {
        kvi_client_close(c);
        kvi_buf_free(&mine);
        return;
    }
    if (g->cfg.creds && g->cfg.creds->tls)
        kvi_client_set_tls(c, g->cfg.creds->tls);
    kvi_client_set_source(c, g->self.addr);
    kvi_fanout fo;
    kvi_fanout_init(&fo);
    kvi_request req = {.opcode = KVI_OP_GOSSIP, .value = {mine.data, mine.len}};
    kvi_call *call = kvi_call_start(c, &fo, &req, 0, 0);
    struct timespec deadline = kvi_deadline_after(g->cfg.timeout_ms);
    kvi_fanout_wait(&fo, 1, 1, &deadline);
    kvi_frame_header h;
    unsigned char *body = NULL;
    kvi_response resp;
    if (kvi_call_finish(call, &h, &body) == KV_OK &&
        kvi_call_decode(&resp, KVI_OP_GOSSIP, &h, body) == KV_OK) {
        kvi_gossip_table theirs;
        if (kvi_gossip_decode(&theirs, resp.value.data, resp.value.len) == KV_OK) {
            pthread_mutex_lock(&g->lock);
            take_news(g, &theirs);
            pthread_mutex_unlock(&g->lock);
        }
        kvi_gossip_table_free(&theirs);
    }
    free(body);
    kvi_fanout_destroy(&fo);
    kvi_client_close(c);
    kvi_buf_free(&mine);
}

/* A change of the detector's verdict on one member, logged after the lock
 * is released (the log callback is the application's). */
typedef struct verdict {
    char id[KVI_GOSSIP_MAX_ID + 1];
    int suspected;
    double phi;
    uint64_t silent_ms;
} verdict;

#define MAX_VERDICTS 8u

/* Counts the members that became suspected since the last round (the
 * failure detector's convictions, for the metrics) and notes up to
 * MAX_VERDICTS changes for the log; called with g->lock held. Returns how
 * many were noted. */
static size_t count_suspicions(kvi_gossip *g, verdict *out)
{
    uint64_t now = kvi_monotonic_ms();
    size_t n = 0;
    for (size_t i = 0; i < g->n_watches; i++) {
        watch *w = &g->watches[i];
        int s = kvi_phi_suspect(&w->phi, now);
        if (s && !w->suspected)
            g->suspicions++;
        if (s != w->suspected && n < MAX_VERDICTS) {
            verdict *v = &out[n++];
            memcpy(v->id, w->id, sizeof v->id);
            v->suspected = s;
            v->phi = kvi_phi_value(&w->phi, now);
            v->silent_ms = w->phi.last_ms && now > w->phi.last_ms ? now - w->phi.last_ms : 0;
        }
        w->suspected = s;
    }
    return n;
}

/* How late this round started, when that is a local pause (else 0); if
 * so, every member's silence is forgiven by as much. Called with g->lock
 * held. */
static uint64_t forgive_local_pause(kvi_gossip *g)
{
    uint64_t now = kvi_monotonic_ms();
    if (!g->next_round_ms || now <= g->next_round_ms + LOCAL_PAUSE_MS)
        return 0;
    uint64_t late = now - g->next_round_ms;
    for (size_t i = 0; i < g->n_watches; i++)
        kvi_phi_forgive(&g->watches[i].phi, late, now);
    return late;
}

/* One round: bump this node's heartbeat and exchange with one member. */
static uint32_t gossip_round(void *arg)
{
    kvi_gossip *g = arg;
    verdict changes[MAX_VERDICTS];
    pthread_mutex_lock(&g->lock);
    uint64_t paused = forgive_local_pause(g);
    size_t n_changes = count_suspicions(g, changes);
    refresh_self(g);
    char *target = pick_target(g);
    struct news news[sizeof g->news / sizeof g->news[0]];
    size_t n_news = g->n_news;
    memcpy(news, g->news, n_news * sizeof news[0]);
    g->n_news = 0;
    pthread_mutex_unlock(&g->lock);
    log_news(g, news, n_news);
    if (paused)
        kvi_log(g->log, KV_LOG_WARN, "this node was paused for %llu ms (its gossip round came "
                "that late); the others' silence in that time is not held against them",
                (unsigned long long)paused);
    for (size_t i = 0; i < n_changes; i++) {
        const verdict *v = &changes[i];
        if (v->suspected)
            kvi_log(g->log, KV_LOG_WARN, "member %s is now held down: no heartbeat for %llu ms (phi %.1f)",
                    v->id, (unsigned long long)v->silent_ms, v->phi);
        else
            kvi_log(g->log, KV_LOG_INFO, "member %s is up again", v->id);
    }
    if (target)
        exchange(g, target);
    free(target);
    pthread_mutex_lock(&g->lock);
    g->next_round_ms = kvi_monotonic_ms() + g->cfg.interval_ms;
    pthread_mutex_unlock(&g->lock);
    return g->cfg.interval_ms;
}

/* A clean stop: says so to a few members, so they need not wait for phi. */
static void announce_stop(kvi_gossip *g)
{
    pthread_mutex_lock(&g->lock);
    g->self.status = KVI_MEMBER_STOPPED;
    refresh_self(g);
    char *targets[STOP_ANNOUNCEMENTS] = {0};
    size_t n = 0;
    for (size_t i = 0; i < g->table.n && n < STOP_ANNOUNCEMENTS; i++)
        if (strcmp(g->table.entries[i].id, g->self.id) != 0)
            targets[n++] = strdup(g->table.entries[i].addr);
    pthread_mutex_unlock(&g->lock);
    for (size_t i = 0; i < n; i++) {
        if (targets[i])
            exchange(g, targets[i]);
        free(targets[i]);
    }
}

int kvi_gossip_start(kvi_gossip **out, const kvi_gossip_config *cfg)
{
    *out = NULL;
    kvi_gossip *g = calloc(1, sizeof *g);
    if (!g)
        return kvi_error(KV_ENOMEM, "out of memory starting gossip");
    g->cfg = *cfg;
    g->log = cfg->log;
    if (!g->cfg.interval_ms)
        g->cfg.interval_ms = 1000;
    if (!g->cfg.timeout_ms)
        g->cfg.timeout_ms = 1000;
    pthread_mutex_init(&g->lock, NULL);
    kvi_gossip_table_init(&g->table);
    snprintf(g->self.id, sizeof g->self.id, "%s", cfg->self_id);
    snprintf(g->self.addr, sizeof g->self.addr, "%s", cfg->self_addr);
    snprintf(g->self.http, sizeof g->self.http, "%s", cfg->self_http ? cfg->self_http : "");
    g->self.generation = cfg->generation;
    g->self.status = KVI_MEMBER_JOINING;
    g->rng = cfg->generation ^ 0x9e3779b97f4a7c15ull;
    if (!g->rng)
        g->rng = 1;
    int rc = KV_OK;
    for (size_t i = 0; i < cfg->n_seeds && i < MAX_SEEDS && rc == KV_OK; i++) {
        g->seeds[g->n_seeds] = strdup(cfg->seeds[i]);
        if (!g->seeds[g->n_seeds++])
            rc = kvi_error(KV_ENOMEM, "out of memory starting gossip");
    }
    if (rc == KV_OK && kvi_gossip_merge_entry(&g->table, &g->self) != 1)
        rc = kvi_error(KV_EINVAL, "this node's id or address cannot be gossiped");
    if (rc == KV_OK && kvi_ticker_start(&g->ticker, gossip_round, g) != 0)
        rc = kvi_error(KV_ENOMEM, "cannot start the gossip thread");
    if (rc != KV_OK) {
        kvi_gossip_stop(g);
        return rc;
    }
    *out = g;
    return KV_OK;
}

void kvi_gossip_stop(kvi_gossip *g)
{
    if (!g)
        return;
    int was_running = g->ticker.running;
    kvi_ticker_stop(&g->ticker);
    if (was_running)
        announce_stop(g);
    for (size_t i = 0; i < g->n_seeds; i++)
        free(g->seeds[i]);
    kvi_gossip_table_free(&g->table);
    free(g->watches);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

void kvi_gossip_set_status(kvi_gossip *g, kvi_member_status status)
{
    pthread_mutex_lock(&g->lock);
    if (g->self.status != status) {
        g->self.status = (uint8_t)status;
        refresh_self(g);
    }
    pthread_mutex_unlock(&g->lock);
}

void kvi_gossip_set_repaired(kvi_gossip *g, uint64_t repaired_ms)
{
    pthread_mutex_lock(&g->lock);
    if (g->self.repaired_ms != repaired_ms) {
        g->self.repaired_ms = repaired_ms;
        refresh_self(g);
    }
    pthread_mutex_unlock(&g->lock);
}

void kvi_gossip_set_epoch(kvi_gossip *g, uint64_t epoch)
{
    pthread_mutex_lock(&g->lock);
    if (g->self.epoch != epoch) {
        g->self.epoch = epoch;
        refresh_self(g);
    }
    pthread_mutex_unlock(&g->lock);
}

uint64_t kvi_gossip_repaired(kvi_gossip *g, const char *id)
{
    pthread_mutex_lock(&g->lock);
    const kvi_gossip_entry *e = kvi_gossip_find(&g->table, id);
    uint64_t ms = e ? e->repaired_ms : 0;
    pthread_mutex_unlock(&g->lock);
    return ms;
}

int kvi_gossip_handle(kvi_gossip *g, const void *in, size_t len, kvi_buf *out)
{
    kvi_gossip_table theirs;
    if (kvi_gossip_decode(&theirs, in, len) != KV_OK)
        return kvi_error(KV_EINVAL, "malformed gossip table");
    pthread_mutex_lock(&g->lock);
    take_news(g, &theirs);
    kvi_gossip_encode(out, &g->table);
    pthread_mutex_unlock(&g->lock);
    kvi_gossip_table_free(&theirs);
    return out->failed ? kvi_error(KV_ENOMEM, "out of memory answering gossip") : KV_OK;
}

const char *kvi_gossip_status(kvi_gossip *g, const char *id)
{
    const char *status = "unknown";
    pthread_mutex_lock(&g->lock);
    const kvi_gossip_entry *e = kvi_gossip_find(&g->table, id);
    if (strcmp(id, g->self.id) == 0) {
        status = "up";
    } else if (e) {
        watch *w = watch_of(g, id);
        if (e->status == KVI_MEMBER_STOPPED)
            status = "stopped";
        else if (e->status == KVI_MEMBER_LEAVING)
            status = "leaving";
        else if (w && kvi_phi_suspect(&w->phi, kvi_monotonic_ms()))
            status = "down";
        else
            status = e->status == KVI_MEMBER_JOINING ? "joining" : "up";
    }
    pthread_mutex_unlock(&g->lock);
    return status;
}

int kvi_gossip_snapshot(kvi_gossip *g, kvi_gossip_table *out)
{
    kvi_gossip_table_init(out);
    pthread_mutex_lock(&g->lock);
    int rc = KV_OK;
    if (g->table.n) {
        out->entries = malloc(g->table.n * sizeof *out->entries);
        if (out->entries) {
            memcpy(out->entries, g->table.entries, g->table.n * sizeof *out->entries);
            out->n = out->cap = g->table.n;
        } else {
            rc = kvi_error(KV_ENOMEM, "out of memory copying the member table");
        }
    }
    pthread_mutex_unlock(&g->lock);
    return rc;
}

uint64_t kvi_gossip_generation(kvi_gossip *g, const char *id)
{
    pthread_mutex_lock(&g->lock);
    const kvi_gossip_entry *e = kvi_gossip_find(&g->table, id);
    uint64_t gen = e ? e->generation : 0;
    pthread_mutex_unlock(&g->lock);
    return gen;
}

uint64_t kvi_gossip_suspicions(kvi_gossip *g)
{
    pthread_mutex_lock(&g->lock);
    uint64_t n = g->suspicions;
    pthread_mutex_unlock(&g->lock);
    return n;
}
