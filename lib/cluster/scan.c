/* cluster/scan.c - scanning the cluster's keys: the coordinator's stretch
 * by stretch walk, and a replica's SCAN_RANGE answer. */
#include "cluster/scan.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/quorum.h"
#include "cluster/replica_store.h"
#include "format/message.h"
#include "format/record.h"
#include "format/value.h"
#include "net/client.h"
#include "util/clock.h"
#include "util/endian.h"
#include "util/error.h"

/* A page asks at most this many stretches: an empty cluster of many
 * members still answers in bounded time, with a cursor. */
#define MAX_ROUNDS 1024u
#define MAX_HOMES 16u

/* ------------------------------------------------------ the replica side */

typedef struct range_read {
    kvi_buf *out;
    uint64_t last_token;
    uint32_t limit, count;
    unsigned flags;
    size_t bytes;
    int more;
    kvi_state state; /* scratch */
    kvi_buf encoded; /* scratch */
    int rc;
} range_read;

static int on_range_record(void *ctx, const void *key, size_t key_len, const void *value,
                           size_t value_len)
{
    range_read *rr = ctx;
    if (key_len <= KVI_TOKEN_SIZE)
        return 0;
    uint64_t token = kvi_get_be64(key);
    if (token > rr->last_token)
        return 1; /* past the stretch: nothing more in it */
    if (rr->count == rr->limit || rr->bytes >= KVI_SCAN_PAGE_BYTES) {
        rr->more = 1;
        return 1;
    }
    if (kvi_replica_state_decode(&rr->state, value, value_len, token) != KV_OK)
        return 0; /* never served; anti-entropy or a read repairs it */
    if (rr->flags & KVI_SCAN_KEYS_ONLY)
        for (size_t i = 0; i < rr->state.n; i++) {
            rr->state.sibs[i].value = NULL;
            rr->state.sibs[i].value_len = 0;
        }
    kvi_buf_reset(&rr->encoded);
    kvi_state_encode(&rr->encoded, &rr->state, token);
    const unsigned char *user = (const unsigned char *)key + KVI_TOKEN_SIZE;
    kvi_scan_range_item(rr->out, user, key_len - KVI_TOKEN_SIZE, rr->encoded.data,
                        rr->encoded.len);
    if (rr->encoded.failed || rr->out->failed) {
        rr->rc = kvi_error(KV_ENOMEM, "out of memory answering a range scan");
        return 1;
    }
    rr->count++;
    rr->bytes += key_len + rr->encoded.len;
    return 0;
}

int kvi_scan_range_local(kvi_embedded *e, kvi_buf *out, const void *after, size_t after_len,
                         uint64_t last_token, uint32_t limit, unsigned flags)
{
    range_read *rr = calloc(1, sizeof *rr);
    if (!rr)
        return kvi_error(KV_ENOMEM, "out of memory answering a range scan");
    rr->out = out;
    rr->last_token = last_token;
    rr->limit = limit ? limit : 1;
    rr->flags = flags;
    size_t start = out->len;
    kvi_buf_u32(out, 0);
    int rc = kvi_store_data_scan(kvi_embedded_store(e), after, after_len, on_range_record, rr);
    if (rc == KV_OK)
        rc = rr->rc;
    kvi_buf_u8(out, (uint8_t)rr->more);
    kvi_scan_range_count(out, start, rr->count);
    if (rc == KV_OK && out->failed)
        rc = kvi_error(KV_ENOMEM, "out of memory answering a range scan");
    kvi_buf_free(&rr->encoded);
    free(rr);
    return rc;
}

/* ---------------------------------------------------- one stretch's round */

/* The answers to one stretch's requests. The coordinator and every request
 * in flight hold a reference; the last to let go frees it, so an answer
 * that comes after the coordinator stopped waiting finds it still there. */
typedef struct round round;

typedef struct slot {
    round *owner;
    int state;            /* 0 waiting, 1 answered OK, -1 failed */
    int rc;               /* failed: why */
    unsigned char *body;  /* answered: the SCAN_RANGE answer (malloc'd) */
    size_t len;
} slot;

struct round {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned refs;      /* guarded by lock */
    int abandoned;      /* the coordinator took the answers; guarded by lock */
    unsigned ok, done;  /* guarded by lock */
    slot slots[MAX_HOMES];
};

static round *round_new(void)
{
    round *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &attr);
    pthread_condattr_destroy(&attr);
    r->refs = 1;
    for (unsigned i = 0; i < MAX_HOMES; i++)
        r->slots[i].owner = r;
    return r;
}

static void round_free(round *r)
{
    for (unsigned i = 0; i < MAX_HOMES; i++)
        free(r->slots[i].body);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r);
}

/* Records a slot's outcome (called with the lock held). */
static void slot_finish(round *r, slot *s, int rc, unsigned char *body, size_t len)
{
    uint32_t count;
    int more;
    kvi_reader items;
    if (rc == KV_OK && kvi_scan_range_decode(body, len, &count, &more, &items) != 0)
        rc = KV_EIO;
    if (rc == KV_OK && more && count == 0)
        rc = KV_EIO; /* "stopped short" with nothing: no progress possible */
    if (rc == KV_OK && !r->abandoned) {
        s->state = 1;
        s->body = body;
        s->len = len;
        r->ok++;
    } else {
        s->state = -1;
        s->rc = rc == KV_OK ? KV_ETIMEDOUT : rc;
        free(body);
    }
    r->done++;
    pthread_cond_signal(&r->cond);
}

/* A member's answer, on its client's loop thread. */
static void on_answer(void *ctx, const kvi_reply *rep)
{
    slot *s = ctx;
    round *r = s->owner;
    int rc = rep->rc;
    unsigned char *body = NULL;
    size_t len = 0;
    if (rc == KV_OK && rep->h->status != KV_OK)
        rc = rep->h->status;
    if (rc == KV_OK) {
        len = rep->h->body_len;
        body = malloc(len ? len : 1);
        if (!body)
            rc = KV_ENOMEM;
        else if (len)
            memcpy(body, rep->body, len);
    }
    pthread_mutex_lock(&r->lock);
    slot_finish(r, s, rc, body, len);
    int last = --r->refs == 0;
    pthread_mutex_unlock(&r->lock);
    if (last)
        round_free(r);
}

/* Sends SCAN_RANGE to member m of the view for slot s. */
static void ask_member(const kvi_coord_env *env, round *r, slot *s, uint32_t m,
                       const kvi_request *req)
{
    kvi_client *c = kvi_view_client(env->view, m);
    kvi_buf frame = {0};
    kvi_frame_begin(&frame);
    kvi_request_encode(&frame, req);
    pthread_mutex_lock(&r->lock);
    r->refs++;
    pthread_mutex_unlock(&r->lock);
    int rc = c ? kvi_client_submit(c, &frame, KVI_OP_SCAN_RANGE, 0, KVI_SUBMIT_RETRY,
                                   on_answer, s)
               : KV_EUNAVAILABLE;
    if (!c)
        kvi_buf_free(&frame);
    if (rc != KV_OK) {
        /* The callback will never run: count the failure here. */
        pthread_mutex_lock(&r->lock);
        slot_finish(r, s, rc, NULL, 0);
        r->refs--;
        pthread_mutex_unlock(&r->lock);
    }
}

/* ------------------------------------------------------- the merge */

typedef struct entry {
    uint64_t token;
    kvi_bytes key;
    kvi_bytes state;
} entry;

static int compare_keys(uint64_t ta, kvi_bytes a, uint64_t tb, kvi_bytes b)
{
    if (ta != tb)
        return ta < tb ? -1 : 1;
    size_t n = a.len < b.len ? a.len : b.len;
    int c = memcmp(a.data, b.data, n);
    if (c != 0)
        return c;
    return (a.len > b.len) - (a.len < b.len);
}

static int compare_entries(const void *x, const void *y)
{
    const entry *a = x, *b = y;
    return compare_keys(a->token, a->key, b->token, b->key);
}

/* The walk's state across stretches. */
typedef struct walk {
    const kvi_coord_env *env;
    kv_scan_page *page;
    size_t limit;
    unsigned flags;
    kv_consistency consistency;
    unsigned r;
    kvi_buf position;     /* the storage key the walk continues after */
    int finished;         /* the ring's end was reached */
    kvi_state *merged, *other; /* scratch */
} walk;

static void set_position(walk *w, uint64_t token, const void *key, size_t key_len)
{
    unsigned char t[KVI_TOKEN_SIZE];
    kvi_put_be64(t, token);
    kvi_buf_reset(&w->position);
    kvi_buf_raw(&w->position, t, sizeof t);
    if (key_len)
        kvi_buf_raw(&w->position, key, key_len);
}

/* Merges the answers of one stretch into the page and moves the position
 * (the answers' bodies stay the round's; the page copies what it keeps). */
static int merge_answers(walk *w, slot *const *answers, size_t n_answers, uint64_t last)
{
    size_t total = 0;
    int cut = 0;
    uint64_t cut_token = 0;
    kvi_bytes cut_key = {NULL, 0};
    for (size_t i = 0; i < n_answers; i++) {
        uint32_t count;
        int more;
        kvi_reader items;
        kvi_scan_range_decode(answers[i]->body, answers[i]->len, &count, &more, &items);
        total += count;
        if (!more)
            continue;
        /* This replica stopped at its last key: the merge is complete only
         * up to the smallest such key. */
        kvi_bytes key = {NULL, 0}, state;
        for (uint32_t k = 0; k < count; k++)
            kvi_scan_range_next(&items, &key, &state);
        uint64_t token = kvi_key_token(key.data, key.len);
        if (!cut || compare_keys(token, key, cut_token, cut_key) < 0) {
            cut = 1;
            cut_token = token;
            cut_key = key;
        }
    }
    entry *es = malloc((total ? total : 1) * sizeof *es);
    if (!es)
        return kvi_error(KV_ENOMEM, "out of memory merging a scan");
    size_t n = 0;
    for (size_t i = 0; i < n_answers; i++) {
        uint32_t count;
        int more;
        kvi_reader items;
        kvi_scan_range_decode(answers[i]->body, answers[i]->len, &count, &more, &items);
        for (uint32_t k = 0; k < count; k++) {
            entry *e = &es[n++];
            kvi_scan_range_next(&items, &e->key, &e->state);
            e->token = kvi_key_token(e->key.data, e->key.len);
        }
    }
    qsort(es, n, sizeof *es, compare_entries);
    uint64_t now = kvi_now_ms();
    int rc = KV_OK, full = 0;
    size_t i = 0;
    while (i < n && !full) {
        size_t j = i + 1;
        while (j < n && compare_entries(&es[i], &es[j]) == 0)
            j++;
        if (cut && compare_keys(es[i].token, es[i].key, cut_token, cut_key) > 0)
            break;
        /* One key: its answers merged by causality. A state that fails its
         * checks is left out, as a read leaves out a corrupt replica. */
        int have = 0;
        for (size_t k = i; k < j; k++) {
            kvi_state *into = have ? w->other : w->merged;
            if (kvi_state_decode(into, es[k].state.data, es[k].state.len, es[k].token) != KV_OK)
                continue;
            if (have && kvi_state_merge(w->merged, w->other) != KV_OK)
                continue; /* past the sibling limit: keep what merged so far */
            have = 1;
        }
        kv_value *v = NULL;
        if (have && kvi_value_from_state(&v, w->merged, now,
                                         (w->flags & KVI_SCAN_SIBLINGS) ? 0 : 1) == KV_OK) {
            uint64_t version = kvi_value_version(v);
            if (w->flags & KVI_SCAN_KEYS_ONLY) {
                kvi_value_free(v);
                v = NULL;
            }
            rc = kvi_scan_page_add(w->page, es[i].key.data, es[i].key.len, version, v);
            if (rc != KV_OK) {
                rc = kvi_error(KV_ENOMEM, "out of memory building a scan page");
                break;
            }
            if (kvi_scan_page_count(w->page) >= w->limit ||
                kvi_scan_page_bytes(w->page) >= KVI_SCAN_PAGE_BYTES) {
                full = 1;
                set_position(w, es[i].token, es[i].key.data, es[i].key.len);
            }
        }
        i = j;
    }
    if (rc == KV_OK && !full) {
        if (cut)
            set_position(w, cut_token, cut_key.data, cut_key.len);
        else if (last == UINT64_MAX)
            w->finished = 1;
        else
            set_position(w, last + 1, NULL, 0);
    }
    free(es);
    return rc;
}

/* Reads the stretch at the walk's position from its homes and merges it. */
static int scan_stretch(walk *w)
{
    const kvi_view *v = w->env->view;
    const unsigned char *pos = w->position.data;
    uint64_t token = w->position.len >= KVI_TOKEN_SIZE ? kvi_get_be64(pos) : 0;
    uint64_t last = kvi_ring_range_last(v->ring, token);
    const uint32_t *list;
    size_t n = kvi_ring_preference(v->ring, token, &list);
    if (n > MAX_HOMES)
        n = MAX_HOMES;
    unsigned required;
    int rc = kvi_quorum_required(&required, w->consistency, w->r, (unsigned)n);
    if (rc != KV_OK)
        return rc;
    size_t want = w->limit - kvi_scan_page_count(w->page);
    kvi_request req = {
        .opcode = KVI_OP_SCAN_RANGE, .scan_flags = (uint8_t)(w->flags & KVI_SCAN_KEYS_ONLY),
        .limit = (uint32_t)want, .last_token = last,
        .key = {w->position.data, w->position.len},
    };
    round *r = round_new();
    if (!r)
        return kvi_error(KV_ENOMEM, "out of memory scanning");
    int self = -1;
    for (size_t i = 0; i < n; i++) {
        if (v->self >= 0 && list[i] == (uint32_t)v->self)
            self = (int)i;
        else
            ask_member(w->env, r, &r->slots[i], list[i], &req);
    }
    /* Our own replica while the others work: no message. */
    if (self >= 0) {
        kvi_buf local = {0};
        rc = kvi_scan_range_local(w->env->local, &local, req.key.data, req.key.len, last,
                                  req.limit, req.scan_flags);
        pthread_mutex_lock(&r->lock);
        slot_finish(r, &r->slots[self], rc, rc == KV_OK ? local.data : NULL, local.len);
        pthread_mutex_unlock(&r->lock);
        if (rc != KV_OK)
            kvi_buf_free(&local);
    }
    /* Wait for R answers, all of them, or the deadline. */
    struct timespec deadline = kvi_deadline_after(kvi_coord_timeout_ms(v));
    int timed_out = 0;
    slot *answers[MAX_HOMES];
    size_t n_answers = 0;
    pthread_mutex_lock(&r->lock);
    while (r->ok < required && r->done < n && !timed_out)
        timed_out = pthread_cond_timedwait(&r->cond, &r->lock, &deadline) != 0;
    r->abandoned = 1;
    for (size_t i = 0; i < n; i++)
        if (r->slots[i].state == 1)
            answers[n_answers++] = &r->slots[i];
    unsigned answered = r->ok;
    pthread_mutex_unlock(&r->lock);
    /* Once abandoned, late answers are dropped, so the slots taken above no
     * longer change. */
    if (answered < required)
        rc = kvi_error(timed_out ? KV_ETIMEDOUT : KV_EUNAVAILABLE,
                       "scanning the range from token %016llx to %016llx: %u of %zu "
                       "replicas answered, %u required", (unsigned long long)token,
                       (unsigned long long)last, answered, n, required);
    else
        rc = merge_answers(w, answers, n_answers, last);
    pthread_mutex_lock(&r->lock);
    int gone = --r->refs == 0;
    pthread_mutex_unlock(&r->lock);
    if (gone)
        round_free(r);
    return rc;
}

int kvi_cluster_scan(const kvi_coord_env *env, kv_scan_page **out, const void *after,
                     size_t after_len, size_t limit, kv_consistency consistency, unsigned r,
                     unsigned flags)
{
    *out = NULL;
    walk *w = calloc(1, sizeof *w);
    kvi_state *scratch = malloc(2 * sizeof *scratch);
    if (!w || !scratch) {
        free(w);
        free(scratch);
        return kvi_error(KV_ENOMEM, "out of memory starting a scan");
    }
    *w = (walk){.env = env, .limit = limit, .flags = flags, .consistency = consistency,
                .r = r, .merged = scratch, .other = scratch + 1};
    w->page = kvi_scan_page_new();
    kvi_buf_raw(&w->position, after, after_len);
    int rc = w->page && !w->position.failed ? KV_OK
                                             : kvi_error(KV_ENOMEM, "out of memory scanning");
    unsigned rounds = 0;
    while (rc == KV_OK && !w->finished && kvi_scan_page_count(w->page) < limit &&
           kvi_scan_page_bytes(w->page) < KVI_SCAN_PAGE_BYTES && rounds++ < MAX_ROUNDS)
        rc = scan_stretch(w);
    if (rc == KV_OK && !w->finished &&
        kvi_scan_page_set_next(w->page, w->position.data, w->position.len) != KV_OK)
        rc = kvi_error(KV_ENOMEM, "out of memory scanning");
    if (rc == KV_OK)
        *out = w->page;
    else
        kvi_scan_page_free(w->page);
    kvi_buf_free(&w->position);
    free(scratch);
    free(w);
    return rc;
}
