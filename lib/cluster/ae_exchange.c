/* cluster/ae_exchange.c - one anti-entropy exchange (see ae_exchange.h). */
#include "cluster/ae_exchange.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/ae_plan.h"
#include "cluster/coord_op.h"
#include "cluster/replica_store.h"
#include "format/ae.h"
#include "format/entry_hash.h"
#include "format/frame.h"
#include "format/record.h"
#include "storage/digest.h"
#include "storage/store.h"
#include "util/endian.h"
#include "util/error.h"

#define MAX_INFLIGHT 8u
#define KEYS_PAGE 4096u   /* keys asked for a segment's list */
#define FILL_PAGE 4096u   /* records asked at once (the peer stops at 1 MiB) */
#define PUSH_PAGE 256u    /* keys of this node's scanned at once to send */
#define MERGE_BATCH 128u  /* states merged with one store write */
#define DEFAULT_RECHECK_MS 500u

typedef enum task_kind {
    T_DIGEST, /* digests of level[first, end) cut `fanout` ways */
    T_KEYS,   /* the peer's keys of segments [first, end) after key */
    T_FILL,   /* the peer's records of segments [first, end) after key */
    T_PUSH,   /* this node's keys of segments [first, end) after key, to send */
    T_GET,    /* the peer's state of storage key `key`, to merge here */
    T_SEND    /* this node's state of storage key `key`, to send */
} task_kind;

typedef struct task task;
struct task {
    task *next;
    task_kind kind;
    uint32_t first, end;
    int partial;   /* T_KEYS: a boundary segment: only keys in the shared ranges count */
    int send_back; /* T_GET: both sides held the key: send the merged state back */
    uint64_t their_hash; /* T_GET with send_back: the peer's entry hash of it */
    size_t key_len;
    unsigned char key[]; /* a storage key (T_GET, T_SEND) or the one to start after */
};

/* A state fetched from the peer, waiting to be merged with others. */
typedef struct fetched {
    size_t key_off, key_len, rec_off, rec_len;
    int send_back;
    uint64_t their_hash;
} fetched;

typedef struct exchange {
    coord_op base;
    kvi_ae_exchange_config cfg;
    kvi_ae_done_fn fn;
    void *fn_ctx;
    kvi_digest *digest;
    kvi_store *store;
    unsigned bits, shift;

    kvi_token_range *shared; /* the token ranges both replicate */
    size_t n_shared;

    task *head, *tail;
    unsigned inflight;
    unsigned gets_inflight;

    /* The digest comparison: this level's ranges and the parts they are
     * asked in; what differs goes to next (to descend) or segs (to
     * recheck). */
    kvi_ae_range *level;
    size_t n_level;
    unsigned level_fanout;
    int level_recheck;      /* this level asks the differing segments again */
    size_t level_waiting;   /* its requests not yet answered (queued too) */
    kvi_ae_range *next;
    size_t n_next, cap_next;
    uint32_t *segs;
    size_t n_segs, cap_segs;
    int rechecked;          /* the recheck was asked (or had nothing to ask) */
    int digests_done;
    kvi_loop_timer recheck;
    int recheck_armed;

    /* States fetched, merged MERGE_BATCH at a time. */
    fetched *pending;
    size_t n_pending, cap_pending;
    kvi_buf pending_bytes;

    /* The byte budget: refilled at cfg.rate_bytes a second up to one
     * second's worth; a request waits while it is negative. */
    double budget;
    uint64_t budget_ms;
    kvi_loop_timer throttle;

    int rc;
    char why[400];
    kvi_ae_figures fig;
} exchange;

/* One request in flight. */
typedef struct sent {
    exchange *x;
    task *t;
    int phase;
    int records;
} sent;

/* Records the exchange's failure (the first one: it is the one told). */
static void fail(exchange *x, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(exchange *x, int rc, const char *fmt, ...)
{
    if (x->rc != KV_OK)
        return;
    x->rc = rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->why, sizeof x->why, fmt, ap);
    va_end(ap);
}

static void *grow(void *a, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return a;
    size_t c = *cap ? *cap * 2 : 64;
    void *g = realloc(a, c * size);
    if (g)
        *cap = c;
    return g;
}

/* ------------------------------------------------------------------ tasks */

static task *task_new(exchange *x, task_kind kind, uint32_t first, uint32_t end,
                      const void *key, size_t key_len)
{
    task *t = malloc(sizeof *t + key_len);
    if (!t) {
        fail(x, KV_ENOMEM, "out of memory in an anti-entropy exchange");
        return NULL;
    }
    *t = (task){.kind = kind, .first = first, .end = end, .key_len = key_len};
    if (key_len)
        memcpy(t->key, key, key_len);
    return t;
}

static void push_task(exchange *x, task *t)
{
    if (!t)
        return;
    t->next = NULL;
    if (x->tail)
        x->tail->next = t;
    else
        x->head = t;
    x->tail = t;
}

static void add_task(exchange *x, task_kind kind, uint32_t first, uint32_t end, const void *key,
                     size_t key_len)
{
    push_task(x, task_new(x, kind, first, end, key, key_len));
}

static task *pop_task(exchange *x)
{
    task *t = x->head;
    if (t) {
        x->head = t->next;
        if (!x->head)
            x->tail = NULL;
    }
    return t;
}

/* ------------------------------------------------------------ the budget */

static void charge(exchange *x, size_t bytes, int phase)
{
    x->fig.bytes[phase] += bytes;
    if (x->cfg.rate_bytes)
        x->budget -= (double)bytes;
}

static void throttle_over(void *ctx)
{
    exchange *x = ctx;
    coord_op_poke(&x->base);
    coord_op_drop(&x->base); /* the timer's hold */
}

/* 1 when a request may go now; else arms the throttle timer. */
static int may_send(exchange *x)
{
    if (!x->cfg.rate_bytes)
        return 1;
    uint64_t now = kvi_loop_now_ms();
    double rate = (double)x->cfg.rate_bytes;
    x->budget += (double)(now - x->budget_ms) * rate / 1000.0;
    if (x->budget > rate)
        x->budget = rate;
    x->budget_ms = now;
    if (x->budget >= 0)
        return 1;
    if (!kvi_loop_timer_armed(&x->throttle)) {
        uint64_t wait = (uint64_t)(-x->budget * 1000.0 / rate) + 1;
        if (wait > 100)
            wait = 100; /* and look again: a stop is seen soon */
        coord_op_hold(&x->base);
        if (kvi_loop_timer_set(x->base.loop, &x->throttle, now + wait) != KV_OK) {
            coord_op_drop(&x->base);
            return 1;
        }
    }
    return 0;
}

/* ----------------------------------------------------------- local side */

static uint32_t segment_of_key(const exchange *x, const unsigned char *skey)
{
    return (uint32_t)(kvi_get_be64(skey) >> x->shift);
}

/* A list of (storage key, entry hash), its keys copied into one buffer. */
typedef struct key_list {
    kvi_ae_key *keys;
    size_t *offs;
    size_t n, cap;
    kvi_buf bytes;
} key_list;

static void key_list_free(key_list *l)
{
    free(l->keys);
    free(l->offs);
    kvi_buf_free(&l->bytes);
}

/* The scan of this node's keys of a segment range. */
typedef struct local_walk {
    exchange *x;
    uint32_t end;
    const unsigned char *upto; /* stop after this key; NULL: at the range's end */
    size_t upto_len;
    size_t max;                /* 0: no limit */
    int more;
    key_list *out;
    int failed;
} local_walk;

static int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t common = alen < blen ? alen : blen;
    int c = memcmp(a, b, common);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static int take_local(void *ctx, const void *key, size_t key_len, const void *value,
                      size_t value_len)
{
    local_walk *w = ctx;
    if (key_len < KVI_TOKEN_SIZE || segment_of_key(w->x, key) >= w->end)
        return 1;
    if (w->upto && key_cmp(key, key_len, w->upto, w->upto_len) > 0)
        return 1;
    key_list *l = w->out;
    if (w->max && l->n == w->max) {
        w->more = 1;
        return 1;
    }
    size_t cap = l->cap;
    kvi_ae_key *k = grow(l->keys, l->n, &cap, sizeof *k);
    if (k)
        l->keys = k;
    size_t cap2 = l->cap;
    size_t *o = k ? grow(l->offs, l->n, &cap2, sizeof *o) : NULL;
    if (!k || !o) {
        w->failed = 1;
        return 1;
    }
    l->offs = o;
    l->cap = cap;
    l->offs[l->n] = l->bytes.len;
    kvi_buf_raw(&l->bytes, key, key_len);
    l->keys[l->n++] = (kvi_ae_key){NULL, key_len, kvi_entry_hash(key, key_len, value, value_len)};
    return 0;
}

/* This node's keys of segments [first, end) after `after` (empty: from the
 * range's start), through `upto` when given, at most max (0: all). */
static int local_keys(exchange *x, key_list *out, int *more, uint32_t first, uint32_t end,
                      const unsigned char *after, size_t after_len, const unsigned char *upto,
                      size_t upto_len, size_t max)
{
    unsigned char start[KVI_TOKEN_SIZE];
    if (!after_len) {
        /* No storage key is exactly a token: "after" it is "from" it. */
        kvi_put_be64(start, (uint64_t)first << x->shift);
        after = start;
        after_len = sizeof start;
    }
    local_walk w = {.x = x, .end = end, .upto = upto, .upto_len = upto_len, .max = max,
                    .out = out};
    int rc = kvi_store_data_scan(x->store, after, after_len, take_local, &w);
    if (rc == KV_OK && (w.failed || out->bytes.failed))
        rc = kvi_error(KV_ENOMEM, "out of memory listing keys for anti-entropy");
    for (size_t i = 0; rc == KV_OK && i < out->n; i++)
        out->keys[i].skey = out->bytes.data + out->offs[i];
    if (more)
        *more = w.more;
    return rc;
}

/* The newest write of a state: when the write a repair carried was made. */
static void note_repaired(exchange *x, const kvi_state *st)
{
    uint64_t newest = 0;
    for (size_t i = 0; i < st->n; i++)
        if (st->sibs[i].write_ms > newest)
            newest = st->sibs[i].write_ms;
    if (newest && (!x->fig.oldest_difference_ms || newest < x->fig.oldest_difference_ms))
        x->fig.oldest_difference_ms = newest;
}

/* Merges n states, given as (storage key, record) pairs, into this node's
 * store with one write. */
static int merge_records(exchange *x, const kvi_bytes *skeys, const kvi_bytes *recs, size_t n)
{
    if (n == 0)
        return KV_OK;
    kvi_state *states = malloc(n * sizeof *states);
    kvi_merge_item *items = calloc(n, sizeof *items);
    int rc = states && items ? KV_OK
                             : kvi_error(KV_ENOMEM, "out of memory merging repaired states");
    size_t m = 0;
    for (size_t i = 0; rc == KV_OK && i < n; i++) {
        uint64_t token = kvi_get_be64(skeys[i].data);
        if (kvi_replica_state_decode(&states[m], recs[i].data, recs[i].len, token) != KV_OK) {
            /* Damaged on the peer: nothing to take from it (the peer's own
             * exchanges repair it from the replicas that hold it whole). */
            x->fig.records_damaged++;
            continue;
        }
        note_repaired(x, &states[m]);
        items[m].key = skeys[i].data + KVI_TOKEN_SIZE;
        items[m].key_len = skeys[i].len - KVI_TOKEN_SIZE;
        items[m].incoming = &states[m];
        m++;
    }
    if (rc == KV_OK)
        rc = kvi_replica_merge_many(x->base.env.local, items, m, 0);
    for (size_t i = 0; rc == KV_OK && i < m; i++)
        if (items[i].status != KV_OK)
            rc = kvi_error(items[i].status, "merging a repaired state failed");
    if (rc == KV_OK)
        x->fig.keys_received += m;
    free(states);
    free(items);
    return rc;
}

/* 1 when this node's record of skey has the entry hash the peer gave: the
 * merge took the peer's state as it was, and there is nothing to send back. */
static int holds_as(exchange *x, const unsigned char *skey, size_t len, uint64_t hash)
{
    kvi_slice rec = {0};
    if (kvi_store_get(x->store, skey, len, &rec) != KV_OK)
        return 0;
    int same = kvi_entry_hash(skey, len, rec.data, rec.len) == hash;
    kvi_slice_release(&rec);
    return same;
}

/* Merges the fetched states waiting, then sends back those both held that
 * the peer does not hold as merged. */
static void flush_fetched(exchange *x)
{
    size_t n = x->n_pending;
    if (n == 0)
        return;
    kvi_bytes *skeys = malloc(n * sizeof *skeys), *recs = malloc(n * sizeof *recs);
    int rc = skeys && recs ? KV_OK : KV_ENOMEM;
    for (size_t i = 0; rc == KV_OK && i < n; i++) {
        skeys[i] = (kvi_bytes){x->pending_bytes.data + x->pending[i].key_off,
                               x->pending[i].key_len};
        recs[i] = (kvi_bytes){x->pending_bytes.data + x->pending[i].rec_off,
                              x->pending[i].rec_len};
    }
    if (rc == KV_OK)
        rc = merge_records(x, skeys, recs, n);
    else
        kvi_error(rc, "out of memory merging repaired states");
    if (rc != KV_OK)
        fail(x, rc, "%s", kvi_error_last());
    for (size_t i = 0; rc == KV_OK && i < n; i++)
        if (x->pending[i].send_back &&
            !holds_as(x, skeys[i].data, skeys[i].len, x->pending[i].their_hash))
            add_task(x, T_SEND, 0, 0, skeys[i].data, skeys[i].len);
    free(skeys);
    free(recs);
    x->n_pending = 0;
    kvi_buf_reset(&x->pending_bytes);
}

/* ------------------------------------------------------- the peer's side */

static void answered(void *ctx, const kvi_reply *reply);

/* Sends a request for task t (taken by the request). */
static void send_request(exchange *x, task *t, const kvi_request *req, int phase, int records,
                         int is_write)
{
    sent *s = malloc(sizeof *s);
    kvi_buf frame = {0};
    if (s) {
        kvi_frame_begin(&frame);
        kvi_request_encode(&frame, req);
    }
    if (!s || frame.failed) {
        free(s);
        free(t);
        kvi_buf_free(&frame);
        fail(x, KV_ENOMEM, "out of memory sending an anti-entropy request");
        return;
    }
    *s = (sent){x, t, phase, records};
    charge(x, frame.len, phase);
    x->fig.requests++;
    coord_op_hold(&x->base);
    int rc = kvi_client_submit(kvi_view_client(x->base.env.view, x->cfg.peer), &frame,
                               req->opcode, 0, is_write ? KVI_SUBMIT_WRITE : KVI_SUBMIT_RETRY,
                               answered, s);
    if (rc != KV_OK) {
        coord_op_drop(&x->base);
        fail(x, rc, "sending to the peer failed: %s", kvi_error_last());
        free(s);
        free(t);
        return;
    }
    x->inflight++;
    x->gets_inflight += t->kind == T_GET;
}

static void send_digest(exchange *x, task *t)
{
    kvi_buf body = {0};
    kvi_ae_digest_request_encode(&body, x->bits, x->level_fanout, x->level + t->first,
                                 t->end - t->first);
    kvi_request req = {.opcode = KVI_OP_AE_DIGEST, .value = {body.data, body.len}};
    send_request(x, t, &req, KVI_AE_PHASE_DIGEST, 0, 0);
    kvi_buf_free(&body);
}

static void send_keys(exchange *x, task *t, int records)
{
    kvi_ae_keys_request kr = {.bits = x->bits, .first = t->first, .end = t->end,
                              .after = {t->key, t->key_len},
                              .max_keys = records ? FILL_PAGE : KEYS_PAGE,
                              .flags = records ? KVI_AE_KEYS_RECORDS : 0u};
    kvi_buf body = {0};
    kvi_ae_keys_request_encode(&body, &kr);
    kvi_request req = {.opcode = KVI_OP_AE_KEYS, .value = {body.data, body.len}};
    send_request(x, t, &req, records ? KVI_AE_PHASE_REPAIR : KVI_AE_PHASE_KEYS, records, 0);
    kvi_buf_free(&body);
}

static void send_get(exchange *x, task *t)
{
    kvi_request req = {.opcode = KVI_OP_GET_STATE,
                       .key = {t->key + KVI_TOKEN_SIZE, t->key_len - KVI_TOKEN_SIZE}};
    send_request(x, t, &req, KVI_AE_PHASE_REPAIR, 0, 0);
}

/* Sends this node's state of a key (gone since: nothing to send). */
static void send_state(exchange *x, task *t)
{
    const unsigned char *key = t->key + KVI_TOKEN_SIZE;
    size_t key_len = t->key_len - KVI_TOKEN_SIZE;
    kvi_state *st = malloc(sizeof *st);
    kvi_buf holder = {0}, encoded = {0};
    int rc = st ? kvi_replica_read(st, &holder, x->base.env.local, key, key_len)
                : kvi_error(KV_ENOMEM, "out of memory reading a state to repair");
    if (rc == KV_OK) {
        note_repaired(x, st);
        kvi_state_encode(&encoded, st, kvi_get_be64(t->key));
        kvi_request req = {.opcode = KVI_OP_REPLICATE, .key = {key, key_len},
                           .value = {encoded.data, encoded.len}};
        x->fig.keys_sent++;
        send_request(x, t, &req, KVI_AE_PHASE_REPAIR, 0, 1);
        t = NULL;
    } else if (rc == KV_ENOTFOUND) {
        rc = KV_OK;
    } else if (rc == KV_ECORRUPT) {
        /* Damaged here too: nothing whole to send (a replica that holds it
         * whole repairs both). */
        x->fig.records_damaged++;
    } else {
        fail(x, rc, "reading a state to repair: %s", kvi_error_last());
    }
    free(t);
    free(st);
    kvi_buf_free(&holder);
    kvi_buf_free(&encoded);
}

/* T_PUSH: a page of this node's keys of the range, each to be sent. */
static void push_page(exchange *x, task *t)
{
    key_list l = {0};
    int more = 0;
    int rc = local_keys(x, &l, &more, t->first, t->end, t->key, t->key_len, NULL, 0, PUSH_PAGE);
    if (rc != KV_OK)
        fail(x, rc, "listing keys to send: %s", kvi_error_last());
    for (size_t i = 0; rc == KV_OK && i < l.n; i++)
        add_task(x, T_SEND, 0, 0, l.keys[i].skey, l.keys[i].len);
    if (rc == KV_OK && more && l.n)
        add_task(x, T_PUSH, t->first, t->end, l.keys[l.n - 1].skey, l.keys[l.n - 1].len);
    key_list_free(&l);
    free(t);
}

/* -------------------------------------------------------------- answers */

/* Appends to a growing array of ranges / segments; fails x when out of
 * memory. */
static void add_next(exchange *x, kvi_ae_range r)
{
    kvi_ae_range *g = grow(x->next, x->n_next, &x->cap_next, sizeof *g);
    if (!g) {
        fail(x, KV_ENOMEM, "out of memory comparing digests");
        return;
    }
    x->next = g;
    x->next[x->n_next++] = r;
}

static void add_seg(exchange *x, uint32_t seg)
{
    uint32_t *g = grow(x->segs, x->n_segs, &x->cap_segs, sizeof *g);
    if (!g) {
        fail(x, KV_ENOMEM, "out of memory comparing digests");
        return;
    }
    x->segs = g;
    x->segs[x->n_segs++] = seg;
}

static void take_digests(exchange *x, task *t, const kvi_response *resp)
{
    static _Thread_local kvi_ae_range parts[KVI_AE_MAX_RANGES];
    static _Thread_local uint64_t their_hash[KVI_AE_MAX_RANGES];
    static _Thread_local uint32_t their_keys[KVI_AE_MAX_RANGES];
    size_t n = kvi_ae_parts(parts, KVI_AE_MAX_RANGES, x->level + t->first, t->end - t->first,
                            x->level_fanout);
    if (kvi_ae_digest_answer_decode(their_hash, their_keys, n, resp->value.data,
                                    resp->value.len) != 0) {
        fail(x, KV_EIO, "the peer's digest answer is malformed");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t mine_hash, mine_keys;
        kvi_digest_range(x->digest, parts[i].first, parts[i].end, &mine_hash, &mine_keys);
        switch (kvi_ae_classify(parts[i], mine_hash, (uint32_t)mine_keys, their_hash[i],
                                their_keys[i])) {
        case KVI_AE_SAME: break;
        case KVI_AE_FILL: add_task(x, T_FILL, parts[i].first, parts[i].end, NULL, 0); break;
        case KVI_AE_PUSH: add_task(x, T_PUSH, parts[i].first, parts[i].end, NULL, 0); break;
        case KVI_AE_DESCEND: add_next(x, parts[i]); break;
        case KVI_AE_SEGMENT:
            if (x->level_recheck) {
                x->fig.segments_differing++;
                add_task(x, T_KEYS, parts[i].first, parts[i].end, NULL, 0);
            } else {
                add_seg(x, parts[i].first);
            }
            break;
        }
    }
}

/* Checks that an AE_KEYS answer's keys lie in what was asked. */
static int keys_inside(exchange *x, const task *t, const kvi_bytes *first,
                       const kvi_bytes *last)
{
    if (!first->data)
        return 1;
    if (first->len < KVI_TOKEN_SIZE || last->len < KVI_TOKEN_SIZE)
        return 0;
    if (segment_of_key(x, first->data) < t->first || segment_of_key(x, last->data) >= t->end)
        return 0;
    return !t->key_len || key_cmp(first->data, first->len, t->key, t->key_len) > 0;
}

static void on_diff(void *ctx, const unsigned char *skey, size_t len, kvi_ae_diff d,
                    uint64_t their_hash)
{
    exchange *x = ctx;
    if (d == KVI_AE_ONLY_MINE) {
        add_task(x, T_SEND, 0, 0, skey, len);
        return;
    }
    task *t = task_new(x, T_GET, 0, 0, skey, len);
    if (t) {
        t->send_back = d == KVI_AE_DIFFERENT;
        t->their_hash = their_hash;
    }
    push_task(x, t);
}

/* Keeps the keys of a list whose tokens lie in the shared ranges. */
static size_t only_shared(exchange *x, kvi_ae_key *keys, size_t n)
{
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (kvi_ae_token_in(x->shared, x->n_shared, kvi_get_be64(keys[i].skey)))
            keys[kept++] = keys[i];
    return kept;
}

static void take_keys(exchange *x, task *t, const kvi_response *resp)
{
    uint32_t count;
    int more;
    kvi_reader items;
    if (kvi_ae_keys_answer_check(&count, &more, &items, resp->value.data, resp->value.len, 0)) {
        fail(x, KV_EIO, "the peer's key list is malformed");
        return;
    }
    kvi_ae_key *theirs = count ? malloc(count * sizeof *theirs) : NULL;
    if (count && !theirs) {
        fail(x, KV_ENOMEM, "out of memory comparing key lists");
        return;
    }
    for (uint32_t i = 0; i < count; i++) {
        kvi_bytes k;
        uint64_t h;
        kvi_ae_keys_answer_next(&items, &k, &h, NULL);
        theirs[i] = (kvi_ae_key){k.data, k.len, h};
    }
    kvi_bytes first = count ? (kvi_bytes){theirs[0].skey, theirs[0].len} : (kvi_bytes){0};
    kvi_bytes last = count ? (kvi_bytes){theirs[count - 1].skey, theirs[count - 1].len}
                           : (kvi_bytes){0};
    if (!keys_inside(x, t, &first, &last) || (more && count == 0)) {
        free(theirs);
        fail(x, KV_EIO, "the peer's key list holds keys outside the segments asked");
        return;
    }
    /* This node's keys over the same stretch: through the peer's last key
     * when more follow, else to the range's end. */
    key_list mine = {0};
    int rc = local_keys(x, &mine, NULL, t->first, t->end, t->key, t->key_len,
                        more ? last.data : NULL, more ? last.len : 0, 0);
    if (rc != KV_OK) {
        fail(x, rc, "listing this node's keys: %s", kvi_error_last());
    } else {
        x->fig.keys_compared += count;
        size_t n_theirs = count, n_mine = mine.n;
        if (t->partial) {
            n_theirs = only_shared(x, theirs, n_theirs);
            n_mine = only_shared(x, mine.keys, n_mine);
        }
        kvi_ae_compare_keys(mine.keys, n_mine, theirs, n_theirs, on_diff, x);
        if (more) {
            task *nt = task_new(x, T_KEYS, t->first, t->end, last.data, last.len);
            if (nt)
                nt->partial = t->partial;
            push_task(x, nt);
        }
    }
    key_list_free(&mine);
    free(theirs);
}

static void take_fill(exchange *x, task *t, const kvi_response *resp)
{
    uint32_t count;
    int more;
    kvi_reader items;
    if (kvi_ae_keys_answer_check(&count, &more, &items, resp->value.data, resp->value.len, 1)) {
        fail(x, KV_EIO, "the peer's records answer is malformed");
        return;
    }
    kvi_bytes skeys[MERGE_BATCH], recs[MERGE_BATCH];
    kvi_bytes last = {0};
    size_t n = 0;
    for (uint32_t i = 0; i < count && x->rc == KV_OK; i++) {
        uint64_t h;
        kvi_ae_keys_answer_next(&items, &skeys[n], &h, &recs[n]);
        last = skeys[n];
        if (skeys[n].len <= KVI_TOKEN_SIZE || !keys_inside(x, t, &skeys[n], &skeys[n])) {
            fail(x, KV_EIO, "the peer's records hold keys outside the segments asked");
            return;
        }
        if (++n == MERGE_BATCH || i + 1 == count) {
            int rc = merge_records(x, skeys, recs, n);
            if (rc != KV_OK)
                fail(x, rc, "%s", kvi_error_last());
            n = 0;
        }
    }
    if (x->rc == KV_OK && more) {
        if (count == 0) {
            fail(x, KV_EIO, "the peer's records answer is empty yet says more follow");
            return;
        }
        add_task(x, T_FILL, t->first, t->end, last.data, last.len);
    }
}

static void take_state(exchange *x, task *t, const kvi_response *resp)
{
    fetched *g = grow(x->pending, x->n_pending, &x->cap_pending, sizeof *g);
    if (!g) {
        fail(x, KV_ENOMEM, "out of memory keeping a repaired state");
        return;
    }
    x->pending = g;
    fetched *f = &x->pending[x->n_pending++];
    f->key_off = x->pending_bytes.len;
    f->key_len = t->key_len;
    kvi_buf_raw(&x->pending_bytes, t->key, t->key_len);
    f->rec_off = x->pending_bytes.len;
    f->rec_len = resp->value.len;
    kvi_buf_raw(&x->pending_bytes, resp->value.data, resp->value.len);
    f->send_back = t->send_back;
    f->their_hash = t->their_hash;
    if (x->pending_bytes.failed)
        fail(x, KV_ENOMEM, "out of memory keeping a repaired state");
}

static void answered(void *ctx, const kvi_reply *reply)
{
    sent *s = ctx;
    exchange *x = s->x;
    task *t = s->t;
    x->inflight--;
    x->gets_inflight -= t->kind == T_GET;
    if (reply->rc == KV_OK)
        charge(x, KVI_FRAME_HEADER + reply->h->body_len, s->phase);
    uint8_t opcode = t->kind == T_DIGEST ? KVI_OP_AE_DIGEST
                     : t->kind == T_GET  ? KVI_OP_GET_STATE
                     : t->kind == T_SEND ? KVI_OP_REPLICATE
                                         : KVI_OP_AE_KEYS;
    kvi_response resp;
    int rc = kvi_reply_decode(&resp, reply, opcode);
    if (x->rc != KV_OK) {
        /* failed already: only wait for the rest to end */
    } else if (t->kind == T_GET && (rc == KV_ENOTFOUND || rc == KV_ECORRUPT)) {
        /* Gone on the peer since its list, or damaged there: nothing to
         * take; this node's state goes to it if it has one. */
        x->fig.records_damaged += rc == KV_ECORRUPT;
        if (t->send_back || rc == KV_ECORRUPT)
            add_task(x, T_SEND, 0, 0, t->key, t->key_len);
    } else if (rc != KV_OK) {
        fail(x, rc, "the peer answered %s: %s",
             opcode == KVI_OP_AE_DIGEST ? "a digest request"
             : opcode == KVI_OP_AE_KEYS ? "a key list request"
             : opcode == KVI_OP_GET_STATE ? "a state request" : "a repair",
             kvi_error_last());
    } else {
        switch (t->kind) {
        case T_DIGEST:
            take_digests(x, t, &resp);
            break;
        case T_KEYS:
            take_keys(x, t, &resp);
            break;
        case T_FILL:
            take_fill(x, t, &resp);
            break;
        case T_GET:
            take_state(x, t, &resp);
            break;
        default:
            break;
        }
    }
    if (t->kind == T_DIGEST)
        x->level_waiting--;
    free(t);
    free(s);
    coord_op_poke(&x->base);
    coord_op_drop(&x->base);
}

/* --------------------------------------------------------- the levels */

/* Queues the digest requests of level[0, n) asked `fanout` ways: as many
 * ranges a request as keep its parts within the limit. */
static void ask_level(exchange *x, kvi_ae_range *ranges, size_t n, unsigned fanout, int recheck)
{
    free(x->level);
    x->level = ranges;
    x->n_level = n;
    x->level_fanout = fanout;
    x->level_recheck = recheck;
    size_t i = 0;
    while (i < n) {
        size_t j = i, parts = 0;
        while (j < n && j - i < KVI_AE_MAX_RANGES) {
            size_t p = kvi_ae_parts(NULL, 0, &ranges[j], 1, fanout);
            if (parts + p > KVI_AE_MAX_RANGES)
                break;
            parts += p;
            j++;
        }
        add_task(x, T_DIGEST, (uint32_t)i, (uint32_t)j, NULL, 0);
        x->level_waiting++;
        i = j;
    }
}

static void recheck_due(void *ctx)
{
    exchange *x = ctx;
    x->recheck_armed = 0;
    /* The differing segments, asked one by one. */
    kvi_ae_range *r = malloc(x->n_segs * sizeof *r);
    if (!r) {
        fail(x, KV_ENOMEM, "out of memory rechecking segments");
    } else {
        for (size_t i = 0; i < x->n_segs; i++)
            r[i] = (kvi_ae_range){x->segs[i], x->segs[i] + 1};
        ask_level(x, r, x->n_segs, 1, 1);
    }
    x->n_segs = 0;
    coord_op_poke(&x->base);
    coord_op_drop(&x->base); /* the timer's hold */
}

/* Moves the comparison on once a level is answered. */
static void next_level(exchange *x)
{
    if (x->digests_done || x->level_waiting || x->recheck_armed)
        return;
    if (x->n_next) {
        kvi_ae_range *r = x->next;
        size_t n = x->n_next;
        x->next = NULL;
        x->n_next = x->cap_next = 0;
        ask_level(x, r, n, kvi_ae_fanout(n), 0);
        return;
    }
    if (!x->rechecked && x->n_segs) {
        x->rechecked = 1;
        coord_op_hold(&x->base);
        x->recheck_armed = 1;
        uint32_t wait = x->cfg.recheck_ms ? x->cfg.recheck_ms : DEFAULT_RECHECK_MS;
        if (kvi_loop_timer_set(x->base.loop, &x->recheck, kvi_loop_now_ms() + wait) != KV_OK) {
            x->recheck_armed = 0;
            coord_op_drop(&x->base);
            fail(x, KV_ENOMEM, "out of memory arming a timer");
        }
        return;
    }
    x->digests_done = 1;
}

/* ------------------------------------------------------------- the step */

static void finish(exchange *x)
{
    kvi_ae_done_fn fn = x->fn;
    fn(x->fn_ctx, x->rc, x->rc == KV_OK ? NULL : x->why, &x->fig);
    coord_op_end(&x->base);
}

static void step(coord_op *op)
{
    exchange *x = (exchange *)op;
    if (x->rc == KV_OK && x->cfg.stop && atomic_load(x->cfg.stop))
        fail(x, KV_EUNAVAILABLE, "the node is stopping");
    if (x->rc != KV_OK) {
        if (x->inflight == 0) {
            if (x->recheck_armed) {
                kvi_loop_timer_cancel(x->base.loop, &x->recheck);
                x->recheck_armed = 0;
                coord_op_drop(&x->base);
            }
            if (kvi_loop_timer_armed(&x->throttle)) {
                kvi_loop_timer_cancel(x->base.loop, &x->throttle);
                coord_op_drop(&x->base);
            }
            finish(x);
        }
        return;
    }
    next_level(x);
    if (x->n_pending && (x->n_pending >= MERGE_BATCH || x->gets_inflight == 0))
        flush_fetched(x);
    while (x->rc == KV_OK && x->head && x->inflight < MAX_INFLIGHT) {
        task_kind k = x->head->kind;
        if (k != T_PUSH && !may_send(x))
            break;
        task *t = pop_task(x);
        switch (k) {
        case T_DIGEST: send_digest(x, t); break;
        case T_KEYS: send_keys(x, t, 0); break;
        case T_FILL: send_keys(x, t, 1); break;
        case T_PUSH: push_page(x, t); break;
        case T_GET: send_get(x, t); break;
        case T_SEND: send_state(x, t); break;
        }
        next_level(x);
    }
    if (x->rc != KV_OK) {
        coord_op_poke(op); /* runs the failure branch once this step returns */
        return;
    }
    if (x->digests_done && !x->head && x->inflight == 0 && x->n_pending == 0 &&
        !kvi_loop_timer_armed(&x->throttle))
        finish(x);
}

/* ------------------------------------------------------------ lifecycle */

static void start(coord_op *op)
{
    exchange *x = (exchange *)op;
    x->budget_ms = kvi_loop_now_ms();
    x->budget = (double)x->cfg.rate_bytes;
    kvi_ae_range *whole = NULL;
    uint32_t *partial = NULL;
    size_t n_whole = 0, n_partial = 0;
    int rc = kvi_ae_shared_ranges(x->base.env.view->ring, x->base.env.view->self,
                                  (int)x->cfg.peer, &x->shared, &x->n_shared);
    if (rc == KV_OK)
        rc = kvi_ae_segments(x->bits, x->shared, x->n_shared, &whole, &n_whole, &partial,
                             &n_partial);
    if (rc != KV_OK) {
        free(whole);
        free(partial);
        fail(x, rc, "out of memory planning an anti-entropy exchange");
        return;
    }
    for (size_t i = 0; i < n_partial; i++) {
        task *t = task_new(x, T_KEYS, partial[i], partial[i] + 1, NULL, 0);
        if (t)
            t->partial = 1;
        push_task(x, t);
    }
    x->fig.segments_differing += n_partial;
    free(partial);
    if (n_whole)
        ask_level(x, whole, n_whole, 1, 0);
    else
        free(whole);
}

static void destroy(coord_op *op)
{
    exchange *x = (exchange *)op;
    task *t;
    while ((t = pop_task(x)))
        free(t);
    free(x->shared);
    free(x->level);
    free(x->next);
    free(x->segs);
    free(x->pending);
    kvi_buf_free(&x->pending_bytes);
    free(x);
}

int kvi_ae_exchange_start(const kvi_coord_env *env, const kvi_ae_exchange_config *cfg,
                          kvi_ae_done_fn fn, void *ctx)
{
    kvi_digest *d = env->local ? kvi_store_digest(kvi_embedded_store(env->local)) : NULL;
    if (!d)
        return kvi_error(KV_EINVAL, "this node keeps no anti-entropy digest");
    if (!kvi_digest_ready(d))
        return kvi_error(KV_EUNAVAILABLE, "this node's anti-entropy digest is still being "
                                          "built from its data");
    if (env->view->self < 0 || cfg->peer >= env->view->n ||
        (int)cfg->peer == env->view->self || !kvi_view_client(env->view, cfg->peer))
        return kvi_error(KV_EINVAL, "an anti-entropy exchange needs another member");
    exchange *x = calloc(1, sizeof *x);
    if (!x)
        return kvi_error(KV_ENOMEM, "out of memory starting an anti-entropy exchange");
    x->cfg = *cfg;
    x->fn = fn;
    x->fn_ctx = ctx;
    x->digest = d;
    x->store = kvi_embedded_store(env->local);
    x->bits = kvi_digest_bits(d);
    x->shift = 64u - x->bits;
    coord_op_init(&x->base, env, NULL, NULL);
    x->base.step = step;
    x->base.start = start;
    x->base.destroy = destroy;
    kvi_loop_timer_init(&x->recheck, recheck_due, x);
    kvi_loop_timer_init(&x->throttle, throttle_over, x);
    coord_op_launch(&x->base);
    return KV_OK;
}
