/* libFuzzer target for the etcd client's pure half (net/etcd_json.h):
 * arbitrary bytes go to the parsers of etcd's gateway answers (range, txn,
 * lease, watch message, error), to the stream splitter, whole and in
 * pieces, and (as a string) to the URL parser; nothing may crash, leak or read out of bounds, what is accepted must
 * be consistent, and the splitter must find the same objects however the
 * stream is chunked. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kv/kv.h>
#include "net/etcd_json.h"

static void check_kv(const kvi_etcd_kv *kv, size_t size)
{
    if (!kv->key || !kv->value || kv->key_len == 0 || kv->key_len > size ||
        kv->value_len > size || kv->key[kv->key_len] != 0 || kv->value[kv->value_len] != 0 ||
        kv->mod_revision <= 0 || kv->create_revision < 0 || kv->version < 0 || kv->lease < 0)
        abort();
}

/* The objects of a stream, found with the stream given in pieces of step
 * bytes: their ends, into ends (up to cap); the count, or -1 when the
 * splitter refused the stream. */
static int split_all(const char *data, size_t size, size_t step, size_t *ends, size_t cap)
{
    kvi_etcd_splitter s;
    memset(&s, 0, sizeof s);
    size_t base = 0, avail = 0;
    int n = 0;
    for (;;) {
        size_t start, end;
        int rc = kvi_etcd_split(&s, data + base, avail - base, &start, &end);
        if (rc < 0)
            return avail == size ? -1 : -2;
        if (rc == 1) {
            if (start >= end || end > avail - base || data[base + start] != '{' ||
                (data[base + end - 1] != '}' && data[base + end - 1] != ']'))
                abort();
            if ((size_t)n < cap)
                ends[n] = base + end;
            n++;
            /* Each object parses as a watch message or is refused cleanly. */
            kvi_etcd_watch_msg m;
            if (kvi_etcd_parse_watch(&m, data + base + start, end - start) == KV_OK) {
                for (size_t i = 0; i < m.count; i++)
                    check_kv(&m.events[i].kv, size);
                kvi_etcd_watch_msg_free(&m);
            }
            base += end;
            memset(&s, 0, sizeof s);
        } else if (avail < size) {
            avail = size - avail > step ? avail + step : size;
        } else {
            return n;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *json = (const char *)data;

    kvi_etcd_range r;
    if (kvi_etcd_parse_range(&r, json, size) == KV_OK) {
        if (r.revision <= 0 || (r.count && !r.kvs))
            abort();
        for (size_t i = 0; i < r.count; i++)
            check_kv(&r.kvs[i], size);
        kvi_etcd_range_free(&r);
    } else if (r.root || r.kvs || r.count) {
        abort();
    }

    kvi_etcd_txn t;
    if (kvi_etcd_parse_txn(&t, json, size) == KV_OK) {
        if (t.revision <= 0 || t.current_mod_revision < 0 ||
            (t.succeeded && t.current_mod_revision))
            abort();
    }

    kvi_etcd_lease l;
    if (kvi_etcd_parse_lease(&l, json, size) == KV_OK && l.id < 0)
        abort();

    kvi_etcd_watch_msg m;
    if (kvi_etcd_parse_watch(&m, json, size) == KV_OK) {
        if (!m.cancel_reason || m.compact_revision < 0 || (m.count && !m.events))
            abort();
        for (size_t i = 0; i < m.count; i++)
            check_kv(&m.events[i].kv, size);
        kvi_etcd_watch_msg_free(&m);
    } else if (m.root || m.events) {
        abort();
    }

    int code;
    char msg[64];
    if (kvi_etcd_parse_error(&code, msg, sizeof msg, json, size) == KV_OK) {
        if (code < 0 || strlen(msg) >= sizeof msg)
            abort();
        for (const char *p = msg; *p; p++)
            if (*p < 0x20 || *p > 0x7e)
                abort();
    }

    /* The splitter: whole, byte by byte, and in pieces of the first byte's
     * size, the same objects (up to where it refuses the stream). */
    size_t whole[64], bytes[64], pieces[64];
    int n1 = split_all(json, size, size ? size : 1, whole, 64);
    int n2 = split_all(json, size, 1, bytes, 64);
    int n3 = split_all(json, size, size ? (size_t)data[0] % 31 + 1 : 1, pieces, 64);
    if (n1 == -2 || (n1 >= 0 && (n2 != n1 || n3 != n1)))
        abort();
    for (int i = 0; i < n1 && i < 64; i++)
        if (bytes[i] != whole[i] || pieces[i] != whole[i])
            abort();

    /* The URL parser: what it accepts is well formed. */
    char *url = malloc(size + 1);
    if (url) {
        memcpy(url, data, size);
        url[size] = '\0';
        kvi_etcd_url u;
        if (kvi_etcd_parse_url(&u, url) == KV_OK) {
            size_t plen = strlen(u.prefix);
            if (u.n < 1 || u.n > KVI_ETCD_MAX_ENDPOINTS || u.prefix[0] != '/' || plen < 2 ||
                u.prefix[plen - 1] == '/' || strstr(u.prefix, "//"))
                abort();
            for (size_t i = 0; i < u.n; i++)
                if (!strchr(u.endpoint[i], ':') || u.endpoint[i][0] == ':')
                    abort();
            kvi_etcd_url_free(&u);
        } else if (u.n || u.prefix) {
            abort();
        }
        free(url);
    }

    /* The builders' range_end covers exactly the keys with the prefix. */
    if (size > 0 && size <= 64) {
        unsigned char end[64];
        size_t n = kvi_etcd_prefix_end(end, data, size);
        if (n > size || (n && memcmp(end, data, n - 1) != 0) || (n && end[n - 1] <= data[n - 1]))
            abort();
    }
    return 0;
}
