/* cluster/stream.c - pulling a member's gained ranges, page by page, as a
 * state machine on the peers loop. */
#include "cluster/stream.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kv/kv.h>
#include "cluster/ae_plan.h"
#include "cluster/replica_store.h"
#include "format/ae.h"
#include "format/frame.h"
#include "format/message.h"
#include "format/record.h"
#include "net/loop.h"
#include "storage/store.h"
#include "util/clock.h"
#include "util/endian.h"
#include "util/error.h"

/* The kept cursor: u64 op_epoch, u64 records and u64 bytes taken in by
 * every run of this change so far, then a storage key C: every key of the
 * plan at or below C (bytewise: token first) is in. C may be the 8 bytes
 * of a token alone, which every key of a lower token sorts below. (The
 * first format, under "kv.stream.cursor", had no totals: dropped.) */
#define CURSOR_META "kv.stream.position"
#define OLD_CURSOR_META "kv.stream.cursor"
#define PAGE_KEYS 8192u /* the source stops at 1 MiB of records first */

typedef struct stream_run {
    kvi_stream_config cfg;
    const kvi_stream_range *plan;
    kvi_token_range *tokens; /* the plan's ranges, sorted: what is kept */
    size_t n;
    kvi_client **clients;    /* per range (shared between ranges of one source) */
    kvi_client **opened;
    const char **opened_addr;
    size_t n_opened;
    kvi_loop *loop;
    kvi_loop_task task;
    kvi_loop_timer timer;
    unsigned shift;          /* 64 - digest bits */
    size_t at;               /* the range streaming */
    kvi_buf cursor;          /* C, above */
    uint64_t next_send_ms;   /* the rate's next slot */
    uint64_t started_ms;
    kvi_stream_figures fig;
    /* The end, told to the waiting caller. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, rc;
    char err[256];
} stream_run;

static void finish(stream_run *r, int rc, const char *fmt, ...)
{
    char err[256] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, sizeof err, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_lock(&r->lock);
    r->rc = rc;
    snprintf(r->err, sizeof r->err, "%s", err);
    r->done = 1;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

static kvi_store *store_of(const stream_run *r)
{
    return kvi_embedded_store(r->cfg.local);
}

static int keep_cursor(stream_run *r)
{
    kvi_buf b = {0};
    kvi_buf_u64(&b, r->cfg.op_epoch);
    kvi_buf_u64(&b, r->fig.total_records);
    kvi_buf_u64(&b, r->fig.total_bytes);
    kvi_buf_raw(&b, r->cursor.data, r->cursor.len);
    int rc = b.failed ? KV_ENOMEM
                      : kvi_store_meta_put(store_of(r), CURSOR_META, b.data, b.len);
    kvi_buf_free(&b);
    return rc;
}

/* The kept cursor of this change, if any, into r->cursor. */
static void load_cursor(stream_run *r)
{
    char *text = NULL;
    size_t len = 0;
    if (kvi_store_meta_get(store_of(r), CURSOR_META, &text, &len) != KV_OK)
        return;
    const unsigned char *p = (const unsigned char *)text;
    if (len >= 24 + KVI_TOKEN_SIZE && kvi_get_be64(p) == r->cfg.op_epoch) {
        r->fig.total_records = kvi_get_be64(p + 8);
        r->fig.total_bytes = kvi_get_be64(p + 16);
        kvi_buf_raw(&r->cursor, p + 24, len - 24);
        r->fig.resumed_from = kvi_get_be64(p + 24);
    }
    free(text);
}

void kvi_stream_forget(kvi_embedded *local)
{
    kvi_store_meta_put(kvi_embedded_store(local), CURSOR_META, "", 0);
    kvi_store_meta_put(kvi_embedded_store(local), OLD_CURSOR_META, "", 0);
}

/* Where the cursor puts the stream: the first range not all in, and the
 * key to continue after (empty: the range's start). */
static void position(stream_run *r, kvi_bytes *after)
{
    after->data = NULL;
    after->len = 0;
    if (r->cursor.len < KVI_TOKEN_SIZE)
        return;
    uint64_t t = kvi_get_be64(r->cursor.data);
    /* An 8-byte cursor is "every token below t"; a key, "up to it". */
    while (r->at < r->n && r->plan[r->at].last < t)
        r->at++;
    if (r->at < r->n && t > r->plan[r->at].first) {
        after->data = r->cursor.data;
        after->len = r->cursor.len;
    } else if (r->at < r->n && t == r->plan[r->at].first && r->cursor.len > KVI_TOKEN_SIZE) {
        after->data = r->cursor.data;
        after->len = r->cursor.len;
    }
}

static void send_page(stream_run *r);

static void send_later(void *ctx)
{
    send_page(ctx);
}

/* Merges the records of a page that fall in the plan. */
static int merge_page(stream_run *r, kvi_reader *items, uint32_t count, const unsigned char **last,
                      size_t *last_len)
{
    kvi_state *states = count ? malloc(count * sizeof *states) : NULL;
    kvi_merge_item *items_out = count ? calloc(count, sizeof *items_out) : NULL;
    if (count && (!states || !items_out)) {
        free(states);
        free(items_out);
        return kvi_error(KV_ENOMEM, "out of memory merging a streamed page");
    }
    size_t m = 0;
    for (uint32_t i = 0; i < count; i++) {
        kvi_bytes skey, rec;
        uint64_t hash;
        kvi_ae_keys_answer_next(items, &skey, &hash, &rec);
        *last = skey.data;
        *last_len = skey.len;
        uint64_t token = kvi_get_be64(skey.data);
        if (!kvi_ae_token_in(r->tokens, r->n, token)) {
            r->fig.dropped++;
            continue;
        }
        if (kvi_replica_state_decode(&states[m], rec.data, rec.len, token) != KV_OK)
            continue; /* damaged at the source: repair brings it from another */
        items_out[m].key = skey.data + KVI_TOKEN_SIZE;
        items_out[m].key_len = skey.len - KVI_TOKEN_SIZE;
        items_out[m].incoming = &states[m];
        r->fig.bytes += skey.len + rec.len;
        r->fig.total_bytes += skey.len + rec.len;
        m++;
    }
    int rc = m ? kvi_replica_merge_many(r->cfg.local, items_out, m, 0) : KV_OK;
    for (size_t i = 0; rc == KV_OK && i < m; i++)
        if (items_out[i].status != KV_OK)
            rc = kvi_error(items_out[i].status, "merging a streamed record failed");
    r->fig.records += rc == KV_OK ? m : 0;
    r->fig.total_records += rc == KV_OK ? m : 0;
    free(states);
    free(items_out);
    return rc;
}

/* The share of the plan's tokens below the cursor, in millionths. */
static uint64_t millionths_in(const stream_run *r)
{
    long double total = 0, in = 0;
    uint64_t t = r->cursor.len >= KVI_TOKEN_SIZE ? kvi_get_be64(r->cursor.data) : 0;
    int all = r->at >= r->n;
    for (size_t i = 0; i < r->n; i++) {
        long double span = (long double)(r->plan[i].last - r->plan[i].first) + 1;
        total += span;
        if (all || i < r->at)
            in += span;
        else if (i == r->at && t > r->plan[i].first)
            in += (long double)(t - r->plan[i].first);
    }
    return total > 0 ? (uint64_t)(in * 1000000.0L / total) : 1000000u;
}

static void tell_progress(const stream_run *r)
{
    kvi_stream_progress *p = r->cfg.progress;
    if (!p)
        return;
    atomic_store(&p->ranges, r->n);
    atomic_store(&p->ranges_done, r->at >= r->n ? r->n : r->at); /* all below at are in */
    atomic_store(&p->records, r->fig.records);
    atomic_store(&p->bytes, r->fig.bytes);
    atomic_store(&p->millionths, millionths_in(r));
}

static void page_answered(void *ctx, const kvi_reply *reply)
{
    stream_run *r = ctx;
    kvi_response resp;
    int rc = kvi_reply_decode(&resp, reply, KVI_OP_AE_KEYS);
    const kvi_stream_range *range = &r->plan[r->at];
    if (rc != KV_OK) {
        finish(r, rc, "streaming from %s failed: %s", range->source, kvi_error_last());
        return;
    }
    uint32_t count;
    int more;
    kvi_reader items;
    if (kvi_ae_keys_answer_check(&count, &more, &items, resp.value.data, resp.value.len, 1)) {
        finish(r, KV_EIO, "%s sent a malformed page", range->source);
        return;
    }
    const unsigned char *last = NULL;
    size_t last_len = 0;
    rc = merge_page(r, &items, count, &last, &last_len);
    if (rc != KV_OK) {
        finish(r, rc, "%s", kvi_error_last());
        return;
    }
    r->fig.pages++;
    kvi_buf_reset(&r->cursor);
    if (more && last) {
        kvi_buf_raw(&r->cursor, last, last_len);
    } else if (range->last == UINT64_MAX) {
        r->at = r->n; /* the top of the token space: all in */
        kvi_buf_u64(&r->cursor, UINT64_MAX);
    } else {
        kvi_buf_u64(&r->cursor, range->last + 1);
        r->at++;
        r->fig.ranges_done++;
    }
    if (r->cursor.failed || keep_cursor(r) != KV_OK) {
        finish(r, KV_EIO, "cannot keep the stream's cursor: %s", kvi_error_last());
        return;
    }
    tell_progress(r);
    /* The rate: this page's bytes push the next send back. */
    uint64_t now = kvi_loop_now_ms();
    if (r->cfg.bytes_per_s) {
        uint64_t cost_ms = resp.value.len * 1000u / r->cfg.bytes_per_s;
        r->next_send_ms = (r->next_send_ms > now ? r->next_send_ms : now) + cost_ms;
    }
    if (r->next_send_ms > now) {
        if (kvi_loop_timer_set(r->loop, &r->timer, r->next_send_ms) != KV_OK)
            finish(r, KV_ENOMEM, "out of memory");
        return;
    }
    send_page(r);
}

static void send_page(stream_run *r)
{
    if (r->cfg.stop && atomic_load(r->cfg.stop)) {
        finish(r, KV_ECLOSED, "the node is stopping");
        return;
    }
    kvi_bytes after;
    position(r, &after);
    if (r->at >= r->n) {
        r->fig.ranges_done = r->n;
        finish(r, KV_OK, NULL);
        return;
    }
    const kvi_stream_range *range = &r->plan[r->at];
    if (!r->clients[r->at]) {
        finish(r, KV_EUNAVAILABLE, "no member to stream tokens %016llx..%016llx from",
               (unsigned long long)range->first, (unsigned long long)range->last);
        return;
    }
    kvi_ae_keys_request kr = {
        .bits = r->cfg.digest_bits,
        .first = (uint32_t)(range->first >> r->shift),
        .end = (uint32_t)((range->last >> r->shift) + 1),
        .after = after,
        .max_keys = PAGE_KEYS,
        .flags = KVI_AE_KEYS_RECORDS,
    };
    kvi_buf body = {0};
    kvi_ae_keys_request_encode(&body, &kr);
    int rc = body.failed ? KV_ENOMEM
                         : kvi_client_submit_value(r->clients[r->at], KVI_OP_AE_KEYS, body.data,
                                                   body.len, KVI_SUBMIT_RETRY, page_answered, r);
    kvi_buf_free(&body);
    if (rc != KV_OK)
        finish(r, rc, "streaming from %s failed: %s", range->source, kvi_error_last());
}

static void start_on_loop(void *ctx)
{
    send_page(ctx);
}

/* A client per distinct source address. */
static kvi_client *client_for(stream_run *r, const char *addr)
{
    if (!addr || !addr[0])
        return NULL;
    for (size_t i = 0; i < r->n_opened; i++)
        if (strcmp(r->opened_addr[i], addr) == 0)
            return r->opened[i];
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.connect_timeout_ms = 1000;
    co.request_timeout_ms = r->cfg.request_timeout_ms ? r->cfg.request_timeout_ms : 10000;
    kvi_client *c = NULL;
    if (kvi_client_open_peer(&c, addr, &co, r->cfg.creds, r->cfg.log, r->cfg.loop) != KV_OK)
        return NULL;
    r->opened_addr[r->n_opened] = addr;
    r->opened[r->n_opened++] = c;
    return c;
}

int kvi_stream_run(const kvi_stream_config *cfg, const kvi_stream_range *plan,
                   const char *const *source_addrs, size_t n, kvi_stream_figures *fig,
                   char *err, size_t err_size)
{
    memset(fig, 0, sizeof *fig);
    if (cfg->digest_bits < 1 || cfg->digest_bits > 32)
        return kvi_error(KV_EINVAL, "streaming needs the members' digest");
    stream_run *r = calloc(1, sizeof *r);
    if (!r)
        return kvi_error(KV_ENOMEM, "out of memory starting a stream");
    r->cfg = *cfg;
    r->plan = plan;
    r->n = n;
    r->shift = 64u - cfg->digest_bits;
    r->loop = kvi_client_loop_event_loop(cfg->loop);
    r->started_ms = kvi_monotonic_ms();
    r->fig.ranges = n;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    kvi_loop_timer_init(&r->timer, send_later, r);
    r->tokens = calloc(n ? n : 1, sizeof *r->tokens);
    r->clients = calloc(n ? n : 1, sizeof *r->clients);
    r->opened = calloc(n ? n : 1, sizeof *r->opened);
    r->opened_addr = calloc(n ? n : 1, sizeof *r->opened_addr);
    int rc = r->tokens && r->clients && r->opened && r->opened_addr ? KV_OK : KV_ENOMEM;
    for (size_t i = 0; rc == KV_OK && i < n; i++) {
        r->tokens[i] = (kvi_token_range){plan[i].first, plan[i].last};
        r->clients[i] = client_for(r, source_addrs[i]);
    }
    if (rc == KV_OK) {
        load_cursor(r);
        position(r, &(kvi_bytes){0});
        tell_progress(r); /* where a resumed stream starts */
        kvi_loop_post(r->loop, &r->task, start_on_loop, r);
        pthread_mutex_lock(&r->lock);
        while (!r->done)
            pthread_cond_wait(&r->cond, &r->lock);
        pthread_mutex_unlock(&r->lock);
        rc = r->rc;
        snprintf(err, err_size, "%s", r->err);
    } else {
        snprintf(err, err_size, "out of memory starting a stream");
    }
    /* Closed off the loop: a page given up on is ended by the close. */
    for (size_t i = 0; i < r->n_opened; i++)
        kvi_client_close(r->opened[i]);
    r->fig.elapsed_ms = kvi_monotonic_ms() - r->started_ms;
    *fig = r->fig;
    kvi_buf_free(&r->cursor);
    free(r->tokens);
    free(r->clients);
    free(r->opened);
    free(r->opened_addr);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r);
    return rc;
}
