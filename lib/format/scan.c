/* format/scan.c - scan pages, cursors, and the SCAN / SCAN_RANGE answers. */
#include "format/scan.h"
#include "util/hex.h"

#include <stdlib.h>
#include <string.h>

#include <kv/common.h>
#include "format/value.h"

typedef struct page_item {
    unsigned char *key;
    size_t key_len;
    uint64_t version;
    kv_value *value; /* NULL for keys only */
} page_item;

struct kv_scan_page {
    page_item *items;
    size_t n, cap;
    size_t bytes;   /* keys and values, for the page's byte bound */
    char *cursor;   /* hex of the next position; NULL at the end */
    unsigned char *next; /* the next position itself */
    size_t next_len;
};

kv_scan_page *kvi_scan_page_new(void)
{
    return calloc(1, sizeof(kv_scan_page));
}

void kvi_scan_page_free(kv_scan_page *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        free(p->items[i].key);
        kvi_value_free(p->items[i].value);
    }
    free(p->items);
    free(p->cursor);
    free(p->next);
    free(p);
}

static size_t value_bytes(const kv_value *v)
{
    size_t total = 0, len;
    for (size_t i = 0; v && i < kvi_value_sibling_count(v); i++) {
        kvi_value_sibling(v, i, &len);
        total += len;
    }
    return total;
}

int kvi_scan_page_add(kv_scan_page *p, const void *key, size_t key_len, uint64_t version,
                      kv_value *value)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        page_item *items = realloc(p->items, cap * sizeof *items);
        if (!items) {
            kvi_value_free(value);
            return KV_ENOMEM;
        }
        p->items = items;
        p->cap = cap;
    }
    /* NUL-terminated, as kv_value_data's bytes are: a text key reads as a
     * C string. */
    unsigned char *copy = malloc(key_len + 1);
    if (!copy) {
        kvi_value_free(value);
        return KV_ENOMEM;
    }
    if (key_len)
        memcpy(copy, key, key_len);
    copy[key_len] = 0;
    p->items[p->n++] = (page_item){copy, key_len, version, value};
    p->bytes += key_len + value_bytes(value);
    return KV_OK;
}

int kvi_scan_page_set_next(kv_scan_page *p, const void *position, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    free(p->cursor);
    free(p->next);
    p->cursor = NULL;
    p->next = NULL;
    p->next_len = 0;
    if (len == 0)
        return KV_OK;
    p->cursor = malloc(2 * len + 1);
    p->next = malloc(len);
    if (!p->cursor || !p->next) {
        free(p->cursor);
        free(p->next);
        p->cursor = NULL;
        p->next = NULL;
        return KV_ENOMEM;
    }
    memcpy(p->next, position, len);
    p->next_len = len;
    const unsigned char *s = position;
    for (size_t i = 0; i < len; i++) {
        p->cursor[2 * i] = hex[s[i] >> 4];
        p->cursor[2 * i + 1] = hex[s[i] & 15];
    }
    p->cursor[2 * len] = 0;
    return KV_OK;
}

size_t kvi_scan_page_bytes(const kv_scan_page *p)
{
    return p->bytes;
}

size_t kvi_scan_page_count(const kv_scan_page *p)
{
    return p ? p->n : 0;
}

const void *kvi_scan_page_key(const kv_scan_page *p, size_t i, size_t *len)
{
    if (!p || i >= p->n) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = p->items[i].key_len;
    return p->items[i].key;
}

const kv_value *kvi_scan_page_value(const kv_scan_page *p, size_t i)
{
    return p && i < p->n ? p->items[i].value : NULL;
}

uint64_t kvi_scan_page_version(const kv_scan_page *p, size_t i)
{
    return p && i < p->n ? p->items[i].version : 0;
}

const char *kvi_scan_page_cursor(const kv_scan_page *p)
{
    return p ? p->cursor : NULL;
}

/* --------------------------------------------------------------- cursor */

int kvi_scan_cursor_decode(unsigned char *out, size_t *out_len, const char *text)
{
    *out_len = 0;
    if (!text)
        return KV_OK;
    /* Bounded: a cursor longer than any position is refused before it is
     * read whole. */
    size_t len = strnlen(text, 2 * KVI_SCAN_MAX_POSITION + 1);
    if (len % 2 != 0 || !kvi_scan_position_ok(len / 2))
        return KV_EINVAL;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = kvi_hex_digit(text[2 * i]), lo = kvi_hex_digit(text[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return KV_EINVAL;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    *out_len = len / 2;
    return KV_OK;
}

/* ---------------------------------------------------------- SCAN answer */

static void put_be32_at(kvi_buf *b, size_t at, uint32_t v)
{
    if (b->failed || b->len < at + 4)
        return;
    b->data[at] = (unsigned char)(v >> 24);
    b->data[at + 1] = (unsigned char)(v >> 16);
    b->data[at + 2] = (unsigned char)(v >> 8);
    b->data[at + 3] = (unsigned char)v;
}

void kvi_scan_page_encode(kvi_buf *b, const kv_scan_page *p)
{
    kvi_buf_u32(b, (uint32_t)p->n);
    for (size_t i = 0; i < p->n; i++) {
        const page_item *it = &p->items[i];
        const kv_value *v = it->value;
        kvi_buf_bytes(b, it->key, it->key_len);
        kvi_buf_u64(b, it->version);
        kvi_buf_u64(b, v ? kvi_value_expiry_ms(v) : 0);
        size_t ctx_len = 0;
        const void *ctx = v ? kvi_value_context(v, &ctx_len) : NULL;
        kvi_buf_bytes(b, ctx, ctx_len);
        size_t n = v ? kvi_value_sibling_count(v) : 0;
        if (n > KVI_MAX_WIRE_SIBLINGS)
            n = KVI_MAX_WIRE_SIBLINGS;
        kvi_buf_u8(b, (uint8_t)n);
        for (size_t s = 0; s < n; s++) {
            size_t len;
            const void *data = kvi_value_sibling(v, s, &len);
            kvi_buf_bytes(b, data, len);
        }
    }
    kvi_buf_bytes(b, p->next, p->next_len);
}

/* The smallest encoded item: key length, version, expiry, context length,
 * sibling count. */
#define MIN_PAGE_ITEM (4u + 8u + 8u + 4u + 1u)

int kvi_scan_page_decode(kv_scan_page **out, const void *body, size_t len)
{
    *out = NULL;
    kvi_reader r = kvi_reader_init(body, len);
    uint32_t count = kvi_read_u32(&r);
    if (r.failed || count > r.left / MIN_PAGE_ITEM || count > KV_SCAN_MAX_LIMIT)
        return KV_EIO;
    kv_scan_page *p = kvi_scan_page_new();
    if (!p)
        return KV_ENOMEM;
    int rc = KV_OK;
    for (uint32_t i = 0; rc == KV_OK && i < count; i++) {
        kvi_bytes key = kvi_read_bytes(&r);
        uint64_t version = kvi_read_u64(&r);
        uint64_t expiry = kvi_read_u64(&r);
        kvi_bytes ctx = kvi_read_bytes(&r);
        uint8_t n = kvi_read_u8(&r);
        /* A keys-only item (no value) carries no expiry or context. */
        if (r.failed || n > KVI_MAX_WIRE_SIBLINGS || key.len == 0 ||
            (n == 0 && (expiry != 0 || ctx.len != 0))) {
            rc = KV_EIO;
            break;
        }
        const void *data[KVI_MAX_WIRE_SIBLINGS];
        size_t lens[KVI_MAX_WIRE_SIBLINGS];
        for (uint8_t s = 0; s < n; s++) {
            kvi_bytes v = kvi_read_bytes(&r);
            data[s] = v.data;
            lens[s] = v.len;
        }
        if (r.failed) {
            rc = KV_EIO;
            break;
        }
        kv_value *v = NULL;
        if (n) {
            v = kvi_value_new_siblings(data, lens, n, version, expiry, ctx.data, ctx.len);
            if (!v) {
                rc = KV_ENOMEM;
                break;
            }
        }
        rc = kvi_scan_page_add(p, key.data, key.len, version, v);
    }
    kvi_bytes next = kvi_read_bytes(&r);
    if (rc == KV_OK && (kvi_reader_done(&r) != 0 || !kvi_scan_position_ok(next.len)))
        rc = KV_EIO;
    if (rc == KV_OK)
        rc = kvi_scan_page_set_next(p, next.data, next.len);
    if (rc != KV_OK) {
        kvi_scan_page_free(p);
        return rc;
    }
    *out = p;
    return KV_OK;
}

/* ---------------------------------------------------- SCAN_RANGE answer */

void kvi_scan_range_item(kvi_buf *b, const void *key, size_t key_len, const void *state,
                         size_t state_len)
{
    kvi_buf_bytes(b, key, key_len);
    kvi_buf_bytes(b, state, state_len);
}

int kvi_scan_range_decode(const void *body, size_t len, uint32_t *count, int *more,
                          kvi_reader *items)
{
    kvi_reader r = kvi_reader_init(body, len);
    *count = kvi_read_u32(&r);
    if (r.failed || *count > r.left / 8u)
        return -1;
    *items = r;
    for (uint32_t i = 0; i < *count; i++) {
        kvi_bytes key, state;
        kvi_scan_range_next(&r, &key, &state);
        if (!r.failed && key.len == 0)
            return -1;
    }
    uint8_t m = kvi_read_u8(&r);
    if (kvi_reader_done(&r) != 0 || m > 1)
        return -1;
    *more = m;
    return 0;
}

void kvi_scan_range_next(kvi_reader *items, kvi_bytes *key, kvi_bytes *state)
{
    *key = kvi_read_bytes(items);
    *state = kvi_read_bytes(items);
}

void kvi_scan_range_count(kvi_buf *b, size_t at, uint32_t count)
{
    put_be32_at(b, at, count);
}
