/* libFuzzer target for the HTTP API's pure helpers: arbitrary bytes go to the PUT, CAS and batch body parsers, the percent-decoder and the base64 decoder; nothing may crash, leak or read out of bounds, and what is accepted must round-trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include <kv/kv.h>
#include "net/http_json.h"

#define MAX_OPS 64

/* Text written as a JSON string must parse back to the same bytes. */
static void check_json_string(const unsigned char *s, size_t n)
{
    if (!kvi_http_is_text(s, n))
        return;
    kvi_buf b = {0};
    kvi_http_json_string(&b, s, n);
    if (b.failed) {
        kvi_buf_free(&b);
        return;
    }
    cJSON *back = cJSON_ParseWithLength((const char *)b.data, b.len);
    if (!back || !cJSON_IsString(back) || strlen(back->valuestring) != n ||
        memcmp(back->valuestring, s, n) != 0)
        abort();
    cJSON_Delete(back);
    kvi_buf_free(&b);
}

static void check_base64(const char *in, size_t n)
{
    unsigned char *out = malloc(n / 4 * 3 + 3);
    if (!out)
        return;
    size_t len;
    if (kvi_http_base64_decode(out, &len, in, n) == 0) {
        if (len > n / 4 * 3 + 2)
            abort();
        /* The canonical encoding decodes to the same bytes... */
        char *enc = malloc(kvi_http_base64_len(len) + 1);
        unsigned char *again = malloc(len + 3);
        size_t len2;
        if (enc && again) {
            kvi_http_base64_encode(enc, out, len);
            if (kvi_http_base64_decode(again, &len2, enc, kvi_http_base64_len(len)) != 0 ||
                len2 != len || (len && memcmp(again, out, len) != 0))
                abort();
            /* ... and is the input itself, give or take the padding. */
            size_t unpadded = kvi_http_base64_len(len);
            while (unpadded && enc[unpadded - 1] == '=')
                unpadded--;
            if (!(n == kvi_http_base64_len(len) && memcmp(enc, in, n) == 0) &&
                !(n == unpadded && memcmp(enc, in, n) == 0))
                abort();
        }
        free(enc);
        free(again);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    char err[256];

    kvi_http_write_body w;
    if (kvi_http_parse_put(&w, body, size, err, sizeof err) == KV_OK) {
        if (w.value_len > size)
            abort();
        check_json_string(w.value, w.value_len);
        kvi_http_write_body_free(&w);
    }
    if (kvi_http_parse_cas(&w, body, size, err, sizeof err) == KV_OK) {
        if (w.value_len > size || w.expected_version > KVI_HTTP_JSON_MAX_INT)
            abort();
        kvi_http_write_body_free(&w);
    }
    char dir[KV_BACKUP_MAX_PATH + 1];
    if (kvi_http_parse_backup(dir, sizeof dir, body, size, err, sizeof err) == KV_OK &&
        strlen(dir) > size)
        abort();
    kvi_http_batch_body b;
    int rc = kvi_http_parse_batch(&b, body, size, MAX_OPS, err, sizeof err);
    if (rc == KV_OK) {
        if (b.count == 0 || b.count > MAX_OPS)
            abort();
        for (size_t i = 0; i < b.count; i++) {
            const kvi_http_batch_item *it = &b.items[i];
            if (it->key_len == 0 || it->key_len > size || it->value_len > size ||
                (it->kind != KV_BATCH_PUT && it->kind != KV_BATCH_GET &&
                 it->kind != KV_BATCH_DELETE))
                abort();
            check_json_string(it->key, it->key_len);
        }
        kvi_http_batch_body_free(&b);
    } else if (b.root || b.items) {
        abort();
    }

    unsigned char *out = malloc(size + 1);
    size_t len;
    if (out && kvi_http_percent_decode(out, &len, body, size) == 0 && len > size)
        abort();
    free(out);
    check_base64(body, size);
    check_json_string(data, size);
    return 0;
}
