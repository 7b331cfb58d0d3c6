/* net/http_json.c - percent-decoding, base64, UTF-8 checks, JSON output and the request-body parsers of the HTTP API. */
#include "net/http_json.h"
#include "util/hex.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------- percent-decoding */

int kvi_http_percent_decode(unsigned char *out, size_t *out_len, const char *in,
                            size_t in_len)
{
    size_t o = 0;
    for (size_t i = 0; i < in_len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c != '%') {
            out[o++] = c;
            continue;
        }
        if (in_len - i < 3)
            return -1;
        int hi = kvi_hex_digit((unsigned char)in[i + 1]);
        int lo = kvi_hex_digit((unsigned char)in[i + 2]);
        if (hi < 0 || lo < 0)
            return -1;
        out[o++] = (unsigned char)(hi << 4 | lo);
        i += 2;
    }
    *out_len = o;
    return 0;
}

/* ----------------------------------------------------------------- base64 */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t kvi_http_base64_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

void kvi_http_base64_encode(char *out, const unsigned char *in, size_t n)
{
    size_t i = 0;
    for (; n - i >= 3; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = b64_alphabet[v >> 18];
        *out++ = b64_alphabet[(v >> 12) & 63];
        *out++ = b64_alphabet[(v >> 6) & 63];
        *out++ = b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *out++ = b64_alphabet[v >> 18];
        *out++ = b64_alphabet[(v >> 12) & 63];
        *out++ = '=';
        *out++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *out++ = b64_alphabet[v >> 18];
        *out++ = b64_alphabet[(v >> 12) & 63];
        *out++ = b64_alphabet[(v >> 6) & 63];
        *out++ = '=';
    }
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int kvi_http_base64_decode(unsigned char *out, size_t *out_len, const char *in,
                           size_t in_len)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t pad = 0;
    while (pad < 2 && in_len - pad > 0 && s[in_len - pad - 1] == '=')
        pad++;
    size_t n = in_len - pad;
    size_t tail = n % 4;
    if (tail == 1 || (pad && (in_len % 4 != 0 || tail != 4 - pad)))
        return -1;
    size_t o = 0;
    size_t i = 0;
    /* Each group is read whole before its bytes are written, which is what
     * makes decoding in place safe. */
    for (; n - i >= 4; i += 4) {
        int a = b64_value(s[i]), b = b64_value(s[i + 1]);
        int c = b64_value(s[i + 2]), d = b64_value(s[i + 3]);
        if ((a | b | c | d) < 0)
            return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o++] = (unsigned char)(v >> 16);
        out[o++] = (unsigned char)(v >> 8);
        out[o++] = (unsigned char)v;
    }
    if (tail >= 2) {
        int a = b64_value(s[i]), b = b64_value(s[i + 1]);
        int c = tail == 3 ? b64_value(s[i + 2]) : 0;
        if ((a | b | c) < 0)
            return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        /* Bits below the last whole byte must be zero, so that "QQ==" and
         * "QR==" do not both decode to "A". */
        if ((tail == 2 && (v & 0xffff)) || (tail == 3 && (v & 0xff)))
            return -1;
        out[o++] = (unsigned char)(v >> 16);
        if (tail == 3)
            out[o++] = (unsigned char)(v >> 8);
    }
    *out_len = o;
    return 0;
}

/* ------------------------------------------------------------------ UTF-8 */

/* The well-formed byte sequences of RFC 3629 section 4 (Unicode's table
 * 3-7): the lead byte fixes the length and the range of the second byte,
 * which is what shuts out overlong forms (C0, C1, E0 80..9F, F0 80..8F),
 * the UTF-16 surrogates (ED A0..BF) and code points above U+10FFFF (F4
 * 90..BF, F5..FF); every later byte is 80..BF. */
size_t kvi_http_utf8_valid_prefix(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0)
                lo = 0xa0; /* overlong */
            else if (c == 0xed)
                hi = 0x9f; /* surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0)
                lo = 0x90; /* overlong */
            else if (c == 0xf4)
                hi = 0x8f; /* above U+10FFFF */
        } else {
            return i; /* 80..C1 (continuation or overlong lead), F5..FF */
        }
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
        i += len;
    }
    return n;
}

int kvi_http_is_text(const unsigned char *s, size_t n)
{
    return kvi_http_utf8_valid_prefix(s, n) == n && (n == 0 || !memchr(s, 0, n));
}

/* ------------------------------------------------------------ JSON output */

void kvi_http_json_raw(kvi_buf *b, const char *s)
{
    kvi_buf_raw(b, s, strlen(s));
}

void kvi_http_json_string(kvi_buf *b, const void *data, size_t n)
{
    const unsigned char *s = data;
    kvi_buf_raw(b, "\"", 1);
    size_t run = 0; /* start of the bytes not yet appended */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        kvi_buf_raw(b, s + run, i - run);
        run = i + 1;
        char esc[8];
        switch (c) {
        case '"': kvi_buf_raw(b, "\\\"", 2); break;
        case '\\': kvi_buf_raw(b, "\\\\", 2); break;
        case '\n': kvi_buf_raw(b, "\\n", 2); break;
        case '\r': kvi_buf_raw(b, "\\r", 2); break;
        case '\t': kvi_buf_raw(b, "\\t", 2); break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", c);
            kvi_buf_raw(b, esc, 6);
        }
    }
    kvi_buf_raw(b, s + run, n - run);
    kvi_buf_raw(b, "\"", 1);
}

void kvi_http_json_message(kvi_buf *b, const char *msg)
{
    char safe[512];
    size_t n = 0;
    for (; msg[n] && n < sizeof safe; n++) {
        unsigned char c = (unsigned char)msg[n];
        safe[n] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    kvi_http_json_string(b, safe, n);
}

void kvi_http_json_base64(kvi_buf *b, const void *data, size_t n)
{
    const unsigned char *s = data;
    char chunk[1024]; /* 768 input bytes at a time */
    kvi_buf_raw(b, "\"", 1);
    while (n) {
        size_t take = n < 768 ? n : 768;
        kvi_http_base64_encode(chunk, s, take);
        kvi_buf_raw(b, chunk, kvi_http_base64_len(take));
        s += take;
        n -= take;
    }
    kvi_buf_raw(b, "\"", 1);
}

void kvi_http_json_u64(kvi_buf *b, uint64_t v)
{
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
    kvi_buf_raw(b, digits, (size_t)n);
}

/* ----------------------------------------------------- request-body parsers */

static int fail(char *err, size_t err_len, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t err_len, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return code;
}

/* Parses the body as one JSON object. Besides what cJSON checks, rejects
 * what it would silently get wrong: a NUL byte (raw or as \u0000) would cut
 * a string short, since cJSON strings are NUL-terminated; bytes that are not
 * UTF-8, which cJSON copies into strings as they are (RFC 8259 section 8.1:
 * JSON text exchanged between systems is UTF-8), so a Latin-1 body would be
 * stored as Latin-1 and read back base64; and text after the object would be
 * ignored. */
static int parse_object(cJSON **out, const char *body, size_t len, char *err,
                        size_t err_len)
{
    *out = NULL;
    if (len == 0)
        return fail(err, err_len, KV_EINVAL, "the body is empty; expected a JSON object");
    if (memchr(body, 0, len))
        return fail(err, err_len, KV_EINVAL, "the body contains a NUL byte");
    size_t valid = kvi_http_utf8_valid_prefix((const unsigned char *)body, len);
    if (valid != len)
        return fail(err, err_len, KV_EINVAL,
                    "the body is not valid UTF-8 (at byte %zu); JSON text must be UTF-8 "
                    "(RFC 8259): send binary data base64 with \"encoding\": \"base64\"",
                    valid);
    /* Backslashes occur only inside strings in valid JSON, so pairing them
     * up from the left finds every escape. */
    for (size_t i = 0; i + 1 < len; i++) {
        if (body[i] != '\\')
            continue;
        if (body[i + 1] == 'u' && len - i >= 6 && memcmp(body + i + 2, "0000", 4) == 0)
            return fail(err, err_len, KV_EINVAL,
                        "a JSON string contains \\u0000; send binary data base64 "
                        "with \"encoding\": \"base64\"");
        i++;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!root) {
        size_t at = end && end >= body && end <= body + len ? (size_t)(end - body) : 0;
        return fail(err, err_len, KV_EINVAL, "malformed JSON near byte %zu", at);
    }
    for (size_t i = (size_t)(end - body); i < len; i++) {
        if (body[i] != ' ' && body[i] != '\t' && body[i] != '\n' && body[i] != '\r') {
            cJSON_Delete(root);
            return fail(err, err_len, KV_EINVAL, "malformed JSON: unexpected text after the object at byte %zu", i);
        }
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fail(err, err_len, KV_EINVAL, "the body must be a JSON object");
    }
    *out = root;
    return KV_OK;
}

/* Reads an optional non-negative integer field; null counts as absent. */
static int get_uint(uint64_t *out, const cJSON *obj, const char *name, int required,
                    const char *where, char *err, size_t err_len)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!f || cJSON_IsNull(f)) {
        if (required)
            return fail(err, err_len, KV_EINVAL, "%s\"%s\" is missing", where, name);
        *out = 0;
        return KV_OK;
    }
    double d = cJSON_IsNumber(f) ? f->valuedouble : -1;
    /* The range check comes first, so the cast that tests for a fraction is
     * defined (and NaN fails it). */
    if (!(d >= 0 && d <= (double)KVI_HTTP_JSON_MAX_INT) || d != (double)(uint64_t)d)
        return fail(err, err_len, KV_EINVAL,
                    "%s\"%s\" must be a non-negative integer (at most 2^53)", where, name);
    *out = (uint64_t)d;
    return KV_OK;
}

/* Reads "encoding": 1 for base64, 0 for text (absent, null or "utf-8"). */
static int get_encoding(int *base64, const cJSON *obj, const char *where, char *err,
                        size_t err_len)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, "encoding");
    *base64 = 0;
    if (!f || cJSON_IsNull(f))
        return KV_OK;
    if (cJSON_IsString(f) && strcmp(f->valuestring, "base64") == 0) {
        *base64 = 1;
        return KV_OK;
    }
    if (cJSON_IsString(f) && (strcmp(f->valuestring, "utf-8") == 0 ||
                              strcmp(f->valuestring, "utf8") == 0))
        return KV_OK;
    return fail(err, err_len, KV_EINVAL,
                "%s\"encoding\" must be \"base64\" or \"utf-8\"", where);
}

/* Reads a required string field, base64-decoding it in place when asked. */
static int get_bytes(const unsigned char **data, size_t *len, cJSON *obj,
                     const char *name, int base64, const char *where, char *err,
                     size_t err_len)
{
    cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!f)
        return fail(err, err_len, KV_EINVAL, "%s\"%s\" is missing", where, name);
    if (!cJSON_IsString(f) || !f->valuestring)
        return fail(err, err_len, KV_EINVAL, "%s\"%s\" must be a string", where, name);
    unsigned char *s = (unsigned char *)f->valuestring;
    size_t n = strlen(f->valuestring);
    if (base64 && kvi_http_base64_decode(s, &n, (const char *)s, n) != 0)
        return fail(err, err_len, KV_EINVAL, "%s\"%s\" is not valid base64", where, name);
    *data = s;
    *len = n;
    return KV_OK;
}

static int parse_write(kvi_http_write_body *out, const char *body, size_t len,
                       int cas, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    cJSON *root;
    int rc = parse_object(&root, body, len, err, err_len);
    if (rc != KV_OK)
        return rc;
    int base64;
    if ((rc = get_encoding(&base64, root, "", err, err_len)) ||
        (cas && (rc = get_uint(&out->expected_version, root, "expectedVersion", 1, "",
                               err, err_len))) ||
        (rc = get_bytes(&out->value, &out->value_len, root, cas ? "newValue" : "value",
                        base64, "", err, err_len)) ||
        (rc = get_uint(&out->ttl_s, root, "ttl", 0, "", err, err_len)) ||
        (!cas && cJSON_GetObjectItemCaseSensitive(root, "context") &&
         !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(root, "context")) &&
         (rc = get_bytes(&out->context, &out->context_len, root, "context", 1, "", err,
                         err_len)))) {
        cJSON_Delete(root);
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->root = root;
    return KV_OK;
}

int kvi_http_parse_put(kvi_http_write_body *out, const char *body, size_t len,
                       char *err, size_t err_len)
{
    return parse_write(out, body, len, 0, err, err_len);
}

int kvi_http_parse_cas(kvi_http_write_body *out, const char *body, size_t len,
                       char *err, size_t err_len)
{
    return parse_write(out, body, len, 1, err, err_len);
}

void kvi_http_write_body_free(kvi_http_write_body *w)
{
    if (w) {
        cJSON_Delete(w->root);
        memset(w, 0, sizeof *w);
    }
}

static int ascii_caseeq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a >= 'a' && *a <= 'z' ? (char)(*a - 32) : *a;
        if (x != *b)
            return 0;
    }
    return *a == *b;
}

static int parse_item(kvi_http_batch_item *it, cJSON *op, size_t i, char *err,
                      size_t err_len)
{
    char where[48];
    snprintf(where, sizeof where, "operation %zu: ", i);
    if (!cJSON_IsObject(op))
        return fail(err, err_len, KV_EINVAL, "%sit must be a JSON object", where);
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(op, "op");
    if (!kind)
        return fail(err, err_len, KV_EINVAL, "%s\"op\" is missing", where);
    if (!cJSON_IsString(kind) || !kind->valuestring)
        return fail(err, err_len, KV_EINVAL, "%s\"op\" must be a string", where);
    if (ascii_caseeq(kind->valuestring, "PUT"))
        it->kind = KV_BATCH_PUT;
    else if (ascii_caseeq(kind->valuestring, "GET"))
        it->kind = KV_BATCH_GET;
    else if (ascii_caseeq(kind->valuestring, "DELETE"))
        it->kind = KV_BATCH_DELETE;
    else
        return fail(err, err_len, KV_EINVAL,
                    "%sunknown op \"%.32s\" (expected PUT, GET or DELETE)", where,
                    kind->valuestring);
    int rc;
    if ((rc = get_encoding(&it->base64, op, where, err, err_len)) ||
        (rc = get_bytes(&it->key, &it->key_len, op, "key", it->base64, where, err, err_len)))
        return rc;
    if (it->key_len == 0)
        return fail(err, err_len, KV_EINVAL, "%s\"key\" is empty", where);
    if (it->kind == KV_BATCH_PUT &&
        ((rc = get_bytes(&it->value, &it->value_len, op, "value", it->base64, where, err,
                         err_len)) ||
         (rc = get_uint(&it->ttl_s, op, "ttl", 0, where, err, err_len))))
        return rc;
    return KV_OK;
}

int kvi_http_parse_batch(kvi_http_batch_body *out, const char *body, size_t len,
                         size_t max_ops, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    cJSON *root;
    int rc = parse_object(&root, body, len, err, err_len);
    if (rc != KV_OK)
        return rc;
    cJSON *ops = cJSON_GetObjectItemCaseSensitive(root, "operations");
    if (!ops)
        rc = fail(err, err_len, KV_EINVAL, "\"operations\" is missing");
    else if (!cJSON_IsArray(ops))
        rc = fail(err, err_len, KV_EINVAL, "\"operations\" must be an array");
    if (rc != KV_OK) {
        cJSON_Delete(root);
        return rc;
    }
    size_t count = 0;
    for (cJSON *op = ops->child; op; op = op->next)
        count++;
    if (count == 0) {
        cJSON_Delete(root);
        return fail(err, err_len, KV_EINVAL, "\"operations\" is empty");
    }
    if (count > max_ops) {
        cJSON_Delete(root);
        return fail(err, err_len, KV_ETOOBIG, "the batch has %zu operations, the limit is %zu",
                    count, max_ops);
    }
    kvi_http_batch_item *items = calloc(count, sizeof *items);
    if (!items) {
        cJSON_Delete(root);
        return fail(err, err_len, KV_ENOMEM, "out of memory");
    }
    size_t i = 0;
    for (cJSON *op = ops->child; op; op = op->next, i++) {
        if ((rc = parse_item(&items[i], op, i, err, err_len)) != KV_OK) {
            free(items);
            cJSON_Delete(root);
            return rc;
        }
    }
    out->root = root;
    out->items = items;
    out->count = count;
    return KV_OK;
}

void kvi_http_batch_body_free(kvi_http_batch_body *b)
{
    if (b) {
        free(b->items);
        cJSON_Delete(b->root);
        memset(b, 0, sizeof *b);
    }
}

int kvi_http_parse_backup(char *dir, size_t cap, const char *body, size_t len, char *err,
                          size_t err_len)
{
    dir[0] = 0;
    cJSON *root = NULL;
    int rc = parse_object(&root, body, len, err, err_len);
    if (rc != KV_OK)
        return rc;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "dir");
    if (!d || cJSON_IsNull(d))
        rc = fail(err, err_len, KV_EINVAL, "\"dir\" is missing: give {\"dir\": "
                                            "\"/absolute/path\"}");
    else if (!cJSON_IsString(d))
        rc = fail(err, err_len, KV_EINVAL, "\"dir\" must be a string");
    else if (strlen(d->valuestring) >= cap)
        rc = fail(err, err_len, KV_EINVAL, "\"dir\" is %zu bytes, the limit is %zu",
                  strlen(d->valuestring), cap - 1);
    else
        memcpy(dir, d->valuestring, strlen(d->valuestring) + 1);
    for (const cJSON *f = root->child; rc == KV_OK && f; f = f->next)
        if (strcmp(f->string, "dir") != 0)
            rc = fail(err, err_len, KV_EINVAL, "unknown field \"%.32s\" (only \"dir\")",
                      f->string);
    cJSON_Delete(root);
    return rc;
}
