/*
 * storage/embedded_scan.c - a page of a scan of the local store: live keys
 * in storage-key order (ring-token order), either record format.
 */
#include "storage/embedded.h"

#include <stdlib.h>
#include <string.h>

#include "format/record.h"
#include "format/scan.h"
#include "format/state.h"
#include "format/value.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/endian.h"
#include "util/error.h"

typedef struct page_scan {
    kv_scan_page *page;
    size_t limit;
    unsigned flags;
    uint64_t now_ms;
    size_t examined;
    int full;         /* the page is full: the next record only proves more */
    int more;         /* records follow the position */
    kvi_buf position; /* the storage key the next page starts after */
    kvi_state state;  /* scratch, too large for the stack of a callback */
    int rc;
} page_scan;

/* A record's value as the reader sees it: KV_OK with *out (NULL for keys
 * only) and *version, KV_ENOTFOUND when nothing is live, KV_ECORRUPT. */
static int live_value(page_scan *s, const unsigned char *rec, size_t len, uint64_t token,
                      kv_value **out, uint64_t *version)
{
    *out = NULL;
    if (len > 0 && rec[0] == KVI_STATE_FORMAT) {
        if (kvi_state_decode(&s->state, rec, len, token) != KV_OK)
            return KV_ECORRUPT;
        size_t keep = (s->flags & KVI_SCAN_SIBLINGS) ? 0 : 1;
        kv_value *v = NULL;
        int rc = kvi_value_from_state(&v, &s->state, s->now_ms, keep);
        if (rc != KV_OK)
            return rc;
        *version = kvi_value_version(v);
        if (s->flags & KVI_SCAN_KEYS_ONLY)
            kvi_value_free(v);
        else
            *out = v;
        return KV_OK;
    }
    kvi_record r;
    if (kvi_record_decode(&r, rec, len, token) != KV_OK)
        return KV_ECORRUPT;
    if (!kvi_record_live(&r, s->now_ms))
        return KV_ENOTFOUND;
    *version = r.version;
    if (s->flags & KVI_SCAN_KEYS_ONLY)
        return KV_OK;
    *out = kvi_value_new(r.value, r.value_len, r.version, r.expiry_ms);
    return *out ? KV_OK : KV_ENOMEM;
}

/* Records examined for one page at most (deleted and expired ones count):
 * a store full of tombstones answers in bounded time, with a cursor. */
#define MAX_EXAMINED 65536u

static int on_record(void *ctx, const void *key, size_t key_len, const void *value,
                     size_t value_len)
{
    page_scan *s = ctx;
    if (s->full || s->examined == MAX_EXAMINED) {
        s->more = 1;
        return 1;
    }
    s->examined++;
    if (key_len <= KVI_TOKEN_SIZE)
        return 0; /* not a data key; nothing is stored so */
    if (s->examined == MAX_EXAMINED) {
        /* The page ends here whatever this record holds. */
        kvi_buf_reset(&s->position);
        kvi_buf_raw(&s->position, key, key_len);
    }
    uint64_t token = kvi_get_be64(key);
    kv_value *v = NULL;
    uint64_t version = 0;
    int rc = live_value(s, value, value_len, token, &v, &version);
    if (rc == KV_ENOTFOUND || rc == KV_ECORRUPT)
        return 0; /* deleted, expired, or never served (KV_ECORRUPT on a get) */
    if (rc == KV_OK)
        rc = kvi_scan_page_add(s->page, (const unsigned char *)key + KVI_TOKEN_SIZE,
                               key_len - KVI_TOKEN_SIZE, version, v);
    if (rc != KV_OK) {
        s->rc = kvi_error(KV_ENOMEM, "out of memory reading a scan page");
        return 1;
    }
    kvi_buf_reset(&s->position);
    kvi_buf_raw(&s->position, key, key_len);
    if (kvi_scan_page_count(s->page) >= s->limit ||
        kvi_scan_page_bytes(s->page) >= KVI_SCAN_PAGE_BYTES)
        s->full = 1;
    return 0;
}

int kvi_embedded_scan(kvi_embedded *e, kv_scan_page **out, const void *after, size_t after_len,
                      size_t limit, unsigned flags)
{
    *out = NULL;
    page_scan *s = calloc(1, sizeof *s);
    if (!s)
        return kvi_error(KV_ENOMEM, "out of memory starting a scan");
    s->page = kvi_scan_page_new();
    s->limit = limit;
    s->flags = flags;
    s->now_ms = kvi_now_ms();
    int rc = s->page ? KV_OK : kvi_error(KV_ENOMEM, "out of memory starting a scan");
    if (rc == KV_OK)
        rc = kvi_store_data_scan(kvi_embedded_store(e), after, after_len, on_record, s);
    if (rc == KV_OK)
        rc = s->rc;
    if (rc == KV_OK && s->position.failed)
        rc = kvi_error(KV_ENOMEM, "out of memory reading a scan page");
    if (rc == KV_OK && s->more &&
        kvi_scan_page_set_next(s->page, s->position.data, s->position.len) != KV_OK)
        rc = kvi_error(KV_ENOMEM, "out of memory reading a scan page");
    if (rc == KV_OK)
        *out = s->page;
    else
        kvi_scan_page_free(s->page);
    kvi_buf_free(&s->position);
    free(s);
    return rc;
}
