/* cluster/handoff.c - replaying hints to their home replicas. */
#include "cluster/handoff.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <kv/kv.h>
#include "net/client.h"
#include "cluster/view.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/ticker.h"

/* A round every ROUND_MS while there is work, so the byte budget is spent
 * in tenths of a second rather than in one burst; IDLE_MS otherwise. */
#define ROUND_MS 100u
#define IDLE_MS 1000u
#define MAX_BATCH 64u
/* Expired hints are looked for this often (it is a scan of all hints). */
#define EXPIRY_EVERY_MS 10000u
#define DEFAULT_KIB_PER_S 4096u

/* A replay under way: the hints handed to one member since its first was,
 * logged once when none of its hints is left (or it went down again). */
typedef struct replay {
    char *id;
    uint64_t replayed, dropped;
    uint64_t started_ms;
} replay;

struct kvi_handoff {
    kvi_handoff_config cfg;
    kvi_ticker ticker;
    /* lock guards stats; the rest belongs to the ticker thread. */
    pthread_mutex_t lock;
    kvi_handoff_stats stats;
    uint64_t seen_puts;
    int stale;            /* pending/oldest need recounting */
    uint64_t last_expiry_ms;
    uint64_t last_orphans_ms; /* the last look for hints of members that left */
    size_t next_member;   /* members take turns */
    replay *replays;      /* under way, one per member at most */
    size_t n_replays;
};

/* One hint taken out of the store for delivery. */
typedef struct held {
    unsigned char *hkey, *key, *state;
    size_t hkey_len, key_len, state_len;
    int damaged;
} held;

typedef struct batch {
    held items[MAX_BATCH];
    size_t n;
    size_t bytes, budget;
    int failed;           /* out of memory */
} batch;

static int collect(void *ctx, const kvi_hint *hint)
{
    batch *b = ctx;
    held *it = &b->items[b->n];
    memset(it, 0, sizeof *it);
    it->damaged = hint->damaged;
    it->hkey = malloc(hint->hkey_len);
    it->key = hint->damaged ? NULL : malloc(hint->key_len ? hint->key_len : 1);
    it->state = hint->damaged ? NULL : malloc(hint->state_len ? hint->state_len : 1);
    if (!it->hkey || (!hint->damaged && (!it->key || !it->state))) {
        free(it->hkey);
        free(it->key);
        free(it->state);
        b->failed = 1;
        return 1;
    }
    memcpy(it->hkey, hint->hkey, hint->hkey_len);
    it->hkey_len = hint->hkey_len;
    if (!hint->damaged) {
        memcpy(it->key, hint->key, hint->key_len);
        memcpy(it->state, hint->state, hint->state_len);
        it->key_len = hint->key_len;
        it->state_len = hint->state_len;
    }
    b->n++;
    b->bytes += hint->key_len + hint->state_len;
    return b->n == MAX_BATCH || b->bytes >= b->budget;
}

static void batch_free(batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->items[i].hkey);
        free(b->items[i].key);
        free(b->items[i].state);
    }
    b->n = 0;
}

/* Whether the target refused a hint for good: replaying it again would
 * be refused again. */
static int refused_for_good(int rc)
{
    return rc == KV_EINVAL || rc == KV_ETOOBIG || rc == KV_ECORRUPT;
}

static replay *find_replay(kvi_handoff *h, const char *id)
{
    for (size_t i = 0; i < h->n_replays; i++)
        if (strcmp(h->replays[i].id, id) == 0)
            return &h->replays[i];
    return NULL;
}

/* Counts what a round handed to member id (or dropped for it) into its
 * replay, starting one if none is under way. Out of memory only costs the
 * log line. */
static void count_replay(kvi_handoff *h, const char *id, uint64_t replayed, uint64_t dropped)
{
    replay *r = find_replay(h, id);
    if (!r) {
        replay *grown = realloc(h->replays, (h->n_replays + 1) * sizeof *grown);
        if (!grown)
            return;
        h->replays = grown;
        r = &grown[h->n_replays];
        *r = (replay){.id = strdup(id), .started_ms = kvi_now_ms()};
        if (!r->id)
            return;
        h->n_replays++;
    }
    r->replayed += replayed;
    r->dropped += dropped;
}

/* Logs the end of member id's replay, if one is under way: every hint for
 * it handed over (or dropped), or (why != NULL) stopped early. */
static void end_replay(kvi_handoff *h, const char *id, const char *why)
{
    replay *r = find_replay(h, id);
    if (!r)
        return;
    double s = (double)(kvi_now_ms() - r->started_ms) / 1000.0;
    if (why)
        kvi_log(h->cfg.log, KV_LOG_INFO, "hinted handoff to %s stopped (%s): %llu hints "
                "replayed, %llu dropped in %.1f s; the rest waits until it is up",
                r->id, why, (unsigned long long)r->replayed, (unsigned long long)r->dropped, s);
    else
        kvi_log(h->cfg.log, KV_LOG_INFO, "hinted handoff to %s done: %llu hints replayed, "
                "%llu dropped, in %.1f s", r->id, (unsigned long long)r->replayed,
                (unsigned long long)r->dropped, s);
    free(r->id);
    *r = h->replays[--h->n_replays];
}

/* Sends a batch of hints to member m and deletes the delivered ones. */
static void deliver(kvi_handoff *h, kvi_view *v, uint32_t m, batch *b)
{
    kvi_call *calls[MAX_BATCH] = {0};
    kvi_fanout fo;
    kvi_fanout_init(&fo);
    unsigned sent = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->items[i].damaged)
            continue;
        kvi_request req = {.opcode = KVI_OP_REPLICATE,
                           .key = {b->items[i].key, b->items[i].key_len},
                           .value = {b->items[i].state, b->items[i].state_len}};
        calls[i] = kvi_call_start(kvi_view_client(v, m), &fo, &req, KVI_FRAME_FLAG_HANDOFF, 1);
        sent++;
    }
    struct timespec deadline = kvi_deadline_after(kvi_client_timeout_ms(kvi_view_client(v, m)));
    kvi_fanout_wait(&fo, sent, sent, &deadline);
    uint64_t replayed = 0, dropped = 0;
    for (size_t i = 0; i < b->n; i++) {
        held *it = &b->items[i];
        int rc = KV_ECORRUPT;
        if (!it->damaged) {
            kvi_frame_header fh;
            unsigned char *body = NULL;
            rc = kvi_call_finish(calls[i], &fh, &body);
            if (rc == KV_OK) {
                kvi_response resp;
                rc = kvi_call_decode(&resp, KVI_OP_REPLICATE, &fh, body);
            }
            free(body);
        }
        if (rc == KV_OK || refused_for_good(rc)) {
            if (rc != KV_OK)
                kvi_log(h->cfg.log, KV_LOG_WARN, "dropping a hint for %s: %s",
                        v->members[m].id, it->damaged ? "it is damaged" : kvi_error_last());
            if (kvi_hints_delete(h->cfg.hints, it->hkey, it->hkey_len) == KV_OK) {
                replayed += rc == KV_OK;
                dropped += rc != KV_OK;
            }
        }
    }
    kvi_fanout_destroy(&fo);
    pthread_mutex_lock(&h->lock);
    h->stats.replayed += replayed;
    h->stats.dropped += dropped;
    pthread_mutex_unlock(&h->lock);
    if (replayed)
        kvi_log(h->cfg.log, KV_LOG_DEBUG, "handed %llu hints to %s",
                (unsigned long long)replayed, v->members[m].id);
    if (replayed || dropped)
        count_replay(h, v->members[m].id, replayed, dropped);
}

/* Drops hints past the window, now and then. */
static void expire(kvi_handoff *h, uint64_t now)
{
    if (h->last_expiry_ms && now - h->last_expiry_ms < EXPIRY_EVERY_MS)
        return;
    h->last_expiry_ms = now;
    uint64_t window_ms = (uint64_t)h->cfg.window_s * 1000u;
    uint64_t dropped = 0;
    if (now > window_ms &&
        kvi_hints_drop_before(h->cfg.hints, now - window_ms, &dropped) != KV_OK)
        kvi_log(h->cfg.log, KV_LOG_WARN, "cannot drop expired hints: %s", kvi_error_last());
    if (dropped) {
        kvi_log(h->cfg.log, KV_LOG_WARN, "dropped %llu hints older than %u s (or damaged); "
                "their keys need repair", (unsigned long long)dropped, h->cfg.window_s);
        pthread_mutex_lock(&h->lock);
        h->stats.dropped += dropped;
        pthread_mutex_unlock(&h->lock);
        h->stale = 1;
    }
}

/* Hints whose target is no member of the ring any more (it left, or was
 * removed: its writes went to its future homes too while it moved), found
 * by one scan, at most ORPHANS_A_PASS a pass. */
#define ORPHANS_A_PASS 1024u

typedef struct orphans {
    const kvi_view *view;
    unsigned char *hkeys[ORPHANS_A_PASS];
    size_t lens[ORPHANS_A_PASS];
    size_t n;
} orphans;

static int note_orphan(void *ctx, const kvi_hint *hint)
{
    orphans *o = ctx;
    for (size_t i = 0; i < o->view->n; i++)
        if (strcmp(o->view->members[i].id, hint->target) == 0)
            return 0;
    unsigned char *copy = malloc(hint->hkey_len);
    if (!copy)
        return 1;
    memcpy(copy, hint->hkey, hint->hkey_len);
    o->hkeys[o->n] = copy;
    o->lens[o->n++] = hint->hkey_len;
    return o->n == ORPHANS_A_PASS;
}

/* Drops the hints of members that left (counted as dropped, not as
 * pending: nobody will take them), on the expiry's cadence. */
static void drop_orphans(kvi_handoff *h, const kvi_view *v)
{
    orphans *o = calloc(1, sizeof *o);
    if (!o)
        return;
    o->view = v;
    kvi_hints_scan(h->cfg.hints, NULL, note_orphan, o);
    for (size_t i = 0; i < o->n; i++) {
        kvi_hints_delete(h->cfg.hints, o->hkeys[i], o->lens[i]);
        free(o->hkeys[i]);
    }
    if (o->n) {
        kvi_log(h->cfg.log, KV_LOG_INFO, "dropped %zu hint(s) for members no longer in the "
                "ring (they left: their writes reached their new homes too)", o->n);
        pthread_mutex_lock(&h->lock);
        h->stats.dropped += o->n;
        pthread_mutex_unlock(&h->lock);
        h->stale = 1;
    }
    free(o);
}

/* Recounts pending hints when anything may have changed them. */
static uint64_t recount(kvi_handoff *h)
{
    uint64_t puts = atomic_load(&h->cfg.hints->puts);
    if (puts != h->seen_puts) {
        h->seen_puts = puts;
        h->stale = 1;
    }
    uint64_t pending = 0, oldest = 0;
    if (h->stale) {
        if (kvi_hints_stats(h->cfg.hints, &pending, &oldest) != KV_OK)
            return 1; /* try delivering anyway */
        h->stale = 0;
        pthread_mutex_lock(&h->lock);
        h->stats.pending = pending;
        h->stats.oldest_ms = oldest;
        pthread_mutex_unlock(&h->lock);
    }
    pthread_mutex_lock(&h->lock);
    pending = h->stats.pending;
    pthread_mutex_unlock(&h->lock);
    return pending;
}

static uint32_t handoff_round(void *arg)
{
    kvi_handoff *h = arg;
    expire(h, kvi_now_ms());
    if (recount(h) == 0) {
        while (h->n_replays)
            end_replay(h, h->replays[0].id, NULL);
        return IDLE_MS;
    }
    kvi_view *v = h->cfg.view(h->cfg.ctx);
    if (!v)
        return IDLE_MS;
    uint64_t now = kvi_now_ms();
    if (!h->last_orphans_ms || now - h->last_orphans_ms >= EXPIRY_EVERY_MS) {
        h->last_orphans_ms = now;
        drop_orphans(h, v);
    }
    size_t budget = (size_t)h->cfg.kib_per_s * 1024u / (1000u / ROUND_MS);
    int worked = 0;
    for (size_t k = 0; k < v->n && budget > 0 && !kvi_ticker_stopping(&h->ticker); k++) {
        uint32_t m = (uint32_t)((h->next_member + k) % v->n);
        if ((int)m == v->self)
            continue;
        if (h->cfg.is_down(h->cfg.ctx, v->members[m].id)) {
            end_replay(h, v->members[m].id, "it is down again");
            continue;
        }
        batch *b = calloc(1, sizeof *b);
        if (!b)
            break;
        b->budget = budget;
        kvi_hints_scan(h->cfg.hints, v->members[m].id, collect, b);
        if (b->n) {
            deliver(h, v, m, b);
            worked = 1;
            h->stale = 1;
            budget = b->bytes >= budget ? 0 : budget - b->bytes;
        } else if (!b->failed) {
            end_replay(h, v->members[m].id, NULL);
        }
        batch_free(b);
        free(b);
    }
    h->next_member++;
    kvi_view_unref(v);
    return worked ? ROUND_MS : IDLE_MS;
}

int kvi_handoff_start(kvi_handoff **out, const kvi_handoff_config *cfg)
{
    *out = NULL;
    kvi_handoff *h = calloc(1, sizeof *h);
    if (!h)
        return kvi_error(KV_ENOMEM, "out of memory starting hinted handoff");
    h->cfg = *cfg;
    if (!h->cfg.window_s)
        h->cfg.window_s = KVI_DEFAULT_HINT_WINDOW_S;
    if (!h->cfg.kib_per_s)
        h->cfg.kib_per_s = DEFAULT_KIB_PER_S;
    h->stale = 1;
    pthread_mutex_init(&h->lock, NULL);
    if (kvi_ticker_start(&h->ticker, handoff_round, h) != 0) {
        pthread_mutex_destroy(&h->lock);
        free(h);
        return kvi_error(KV_ENOMEM, "cannot start the hinted handoff thread");
    }
    *out = h;
    return KV_OK;
}

void kvi_handoff_stop(kvi_handoff *h)
{
    if (!h)
        return;
    kvi_ticker_stop(&h->ticker);
    for (size_t i = 0; i < h->n_replays; i++)
        free(h->replays[i].id);
    free(h->replays);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

void kvi_handoff_get_stats(kvi_handoff *h, kvi_handoff_stats *out)
{
    pthread_mutex_lock(&h->lock);
    *out = h->stats;
    pthread_mutex_unlock(&h->lock);
}
