/* net/etcd_json.c - the client's URL, request bodies for etcd's v3 JSON
 * gateway, parsers of its answers and the splitter of its streams (see
 * net/etcd_json.h). */
#include "net/etcd_json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kv/kv.h>
#include "net/http_json.h"
#include "util/error.h"

/* ------------------------------------------------------------- requests */

static void json_i64(kvi_buf *b, int64_t v)
{
    char text[32];
    int n = snprintf(text, sizeof text, "\"%" PRId64 "\"", v);
    kvi_buf_raw(b, text, (size_t)n);
}

static int finish(kvi_buf *b)
{
    return b->failed ? kvi_error(KV_ENOMEM, "out of memory building an etcd request")
                     : KV_OK;
}

int kvi_etcd_body_range(kvi_buf *out, const void *key, size_t key_len, const void *range_end,
                        size_t range_end_len, int64_t limit, int64_t revision)
{
    static const unsigned char nul = 0;
    kvi_http_json_raw(out, "{\"key\":");
    kvi_http_json_base64(out, key, key_len);
    if (range_end) {
        kvi_http_json_raw(out, ",\"range_end\":");
        if (range_end_len == 0)
            kvi_http_json_base64(out, &nul, 1);
        else
            kvi_http_json_base64(out, range_end, range_end_len);
    }
    if (limit > 0) {
        kvi_http_json_raw(out, ",\"limit\":");
        json_i64(out, limit);
    }
    if (revision > 0) {
        kvi_http_json_raw(out, ",\"revision\":");
        json_i64(out, revision);
    }
    kvi_http_json_raw(out, "}");
    return finish(out);
}

int kvi_etcd_body_put_if(kvi_buf *out, const void *key, size_t key_len, const void *value,
                         size_t value_len, int64_t expect)
{
    /* expect 0 compares create_revision: 0 exactly when the key does not
     * exist (mod_revision would do too, but this says what is meant). */
    kvi_http_json_raw(out, expect > 0 ? "{\"compare\":[{\"target\":\"MOD\",\"result\":\"EQUAL\","
                                        "\"mod_revision\":"
                                      : "{\"compare\":[{\"target\":\"CREATE\",\"result\":\"EQUAL\","
                                        "\"create_revision\":");
    json_i64(out, expect > 0 ? expect : 0);
    kvi_http_json_raw(out, ",\"key\":");
    kvi_http_json_base64(out, key, key_len);
    kvi_http_json_raw(out, "}],\"success\":[{\"request_put\":{\"key\":");
    kvi_http_json_base64(out, key, key_len);
    kvi_http_json_raw(out, ",\"value\":");
    kvi_http_json_base64(out, value, value_len);
    kvi_http_json_raw(out, "}}],\"failure\":[{\"request_range\":{\"key\":");
    kvi_http_json_base64(out, key, key_len);
    kvi_http_json_raw(out, "}}]}");
    return finish(out);
}

int kvi_etcd_body_put(kvi_buf *out, const void *key, size_t key_len, const void *value,
                      size_t value_len, int64_t lease)
{
    kvi_http_json_raw(out, "{\"key\":");
    kvi_http_json_base64(out, key, key_len);
    kvi_http_json_raw(out, ",\"value\":");
    kvi_http_json_base64(out, value, value_len);
    if (lease != 0) {
        kvi_http_json_raw(out, ",\"lease\":");
        json_i64(out, lease);
    }
    kvi_http_json_raw(out, "}");
    return finish(out);
}

int kvi_etcd_body_watch(kvi_buf *out, const void *key, size_t key_len, int64_t start_revision)
{
    kvi_http_json_raw(out, "{\"create_request\":{\"key\":");
    kvi_http_json_base64(out, key, key_len);
    if (start_revision > 0) {
        kvi_http_json_raw(out, ",\"start_revision\":");
        json_i64(out, start_revision);
    }
    kvi_http_json_raw(out, "}}");
    return finish(out);
}

int kvi_etcd_body_lease(kvi_buf *out, int64_t id, int64_t ttl_s)
{
    if (id == 0 && ttl_s > 0) {
        kvi_http_json_raw(out, "{\"TTL\":");
        json_i64(out, ttl_s);
    } else {
        kvi_http_json_raw(out, "{\"ID\":");
        json_i64(out, id);
    }
    kvi_http_json_raw(out, "}");
    return finish(out);
}

size_t kvi_etcd_prefix_end(unsigned char *out, const unsigned char *prefix, size_t len)
{
    size_t n = len;
    while (n > 0 && prefix[n - 1] == 0xff)
        n--;
    if (n == 0)
        return 0;
    memcpy(out, prefix, n);
    out[n - 1]++;
    return n;
}

/* ------------------------------------------------------------------ URL */

static int url_error(const char *url, const char *fmt, const char *detail)
{
    char what[320];
    snprintf(what, sizeof what, fmt, detail);
    return kvi_error(KV_EINVAL, "etcd URL \"%.200s\": %s", url, what);
}

static int is_host_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '-' || c == '_';
}

static int is_v6_char(unsigned char c)
{
    return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') ||
           c == ':' || c == '.';
}

/* One "HOST[:PORT]" of the URL (s, len bytes; index counts from 1). */
static int parse_endpoint(char **out, const char *url, const char *s, size_t len, size_t index)
{
    char what[320];
    const char *host = s, *port = NULL;
    size_t host_len, port_len = 0;
    int v6 = 0;

    if (len == 0) {
        snprintf(what, sizeof what, "endpoint %zu is empty", index);
        return url_error(url, "%s", what);
    }
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close) {
            snprintf(what, sizeof what, "endpoint %zu (\"%.*s\") opens '[' without ']'", index,
                     (int)len, s);
            return url_error(url, "%s", what);
        }
        host = s + 1;
        host_len = (size_t)(close - host);
        v6 = 1;
        size_t rest = len - (size_t)(close + 1 - s);
        if (rest > 0 && close[1] != ':') {
            snprintf(what, sizeof what, "endpoint %zu (\"%.*s\") has text after ']' that is "
                                        "not \":PORT\"",
                     index, (int)len, s);
            return url_error(url, "%s", what);
        }
        if (rest > 0) {
            port = close + 2;
            port_len = rest - 1;
        }
    } else {
        const char *colon = memchr(s, ':', len);
        host_len = colon ? (size_t)(colon - s) : len;
        if (colon) {
            port = colon + 1;
            port_len = len - host_len - 1;
            if (memchr(port, ':', port_len)) {
                snprintf(what, sizeof what, "endpoint %zu (\"%.*s\") has two ':' (an IPv6 "
                                            "address goes in brackets: [::1]:2379)",
                         index, (int)len, s);
                return url_error(url, "%s", what);
            }
        }
    }
    if (host_len == 0) {
        snprintf(what, sizeof what, "endpoint %zu (\"%.*s\") has no host", index, (int)len, s);
        return url_error(url, "%s", what);
    }
    if (host_len > KVI_ETCD_MAX_HOST) {
        snprintf(what, sizeof what, "endpoint %zu has a host of %zu bytes (at most %d)", index,
                 host_len, KVI_ETCD_MAX_HOST);
        return url_error(url, "%s", what);
    }
    for (size_t i = 0; i < host_len; i++) {
        unsigned char c = (unsigned char)host[i];
        if (v6 ? !is_v6_char(c) : !is_host_char(c)) {
            snprintf(what, sizeof what, "endpoint %zu (\"%.*s\") has a bad character 0x%02x in "
                                        "its host",
                     index, (int)len, s, c);
            return url_error(url, "%s", what);
        }
    }
    long portnum = KVI_ETCD_DEFAULT_PORT;
    if (port) {
        int ok = port_len > 0 && port_len <= 5;
        portnum = 0;
        for (size_t i = 0; ok && i < port_len; i++) {
            ok = port[i] >= '0' && port[i] <= '9';
            portnum = portnum * 10 + (port[i] - '0');
        }
        if (!ok || portnum < 1 || portnum > 65535) {
            snprintf(what, sizeof what, "endpoint %zu (\"%.*s\") has a bad port \"%.*s\" (a "
                                        "number 1..65535)",
                     index, (int)len, s, (int)port_len, port);
            return url_error(url, "%s", what);
        }
    }
    char name[KVI_ETCD_MAX_HOST + 16];
    snprintf(name, sizeof name, v6 ? "[%.*s]:%ld" : "%.*s:%ld", (int)host_len, host, portnum);
    *out = strdup(name);
    return *out ? KV_OK : kvi_error(KV_ENOMEM, "out of memory parsing an etcd URL");
}

/* The path after the endpoints ("" or starting with '/') into u->prefix. */
static int parse_prefix(kvi_etcd_url *u, const char *url, const char *path)
{
    char what[320];
    size_t len = strlen(path);
    while (len > 0 && path[len - 1] == '/')
        len--;
    if (len == 0) {
        u->prefix = strdup(KVI_ETCD_DEFAULT_PREFIX);
    } else {
        /* path[0] is '/': every segment starts after one. */
        for (size_t i = 0; i < len;) {
            size_t j = i + 1;
            while (j < len && path[j] != '/')
                j++;
            size_t seg = j - i - 1;
            if (seg == 0 || (seg == 1 && path[i + 1] == '.') ||
                (seg == 2 && path[i + 1] == '.' && path[i + 2] == '.')) {
                snprintf(what, sizeof what, "the prefix \"%.*s\" has an empty, \".\" or \"..\" "
                                            "segment",
                         (int)len, path);
                return url_error(url, "%s", what);
            }
            for (size_t k = i + 1; k < j; k++) {
                unsigned char c = (unsigned char)path[k];
                if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#' || c == '%') {
                    snprintf(what, sizeof what, "the prefix has a bad character 0x%02x (printable "
                                                "ASCII but '?', '#' and '%%')",
                             c);
                    return url_error(url, "%s", what);
                }
            }
            i = j;
        }
        u->prefix = strndup(path, len);
    }
    return u->prefix ? KV_OK : kvi_error(KV_ENOMEM, "out of memory parsing an etcd URL");
}

static int parse_url(kvi_etcd_url *u, const char *url)
{
    static const char scheme[] = "etcd://";
    if (!url || !*url)
        return kvi_error(KV_EINVAL, "etcd URL is missing (etcd://HOST:PORT[,HOST:PORT...]/PREFIX)");
    if (strncmp(url, scheme, sizeof scheme - 1) != 0)
        return url_error(url, "%s", "does not start with etcd:// (etcd://HOST:PORT/PREFIX)");
    const char *hosts = url + sizeof scheme - 1;
    const char *slash = strchr(hosts, '/');
    size_t hosts_len = slash ? (size_t)(slash - hosts) : strlen(hosts);
    if (hosts_len == 0)
        return url_error(url, "%s", "names no host (etcd://HOST:PORT/PREFIX)");
    size_t count = 1;
    for (size_t i = 0; i < hosts_len; i++)
        count += hosts[i] == ',';
    if (count > KVI_ETCD_MAX_ENDPOINTS) {
        char what[96];
        snprintf(what, sizeof what, "names %zu endpoints, more than %d", count,
                 KVI_ETCD_MAX_ENDPOINTS);
        return url_error(url, "%s", what);
    }
    const char *s = hosts, *end = hosts + hosts_len;
    for (size_t i = 0; i < count; i++) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        size_t len = comma ? (size_t)(comma - s) : (size_t)(end - s);
        int rc = parse_endpoint(&u->endpoint[i], url, s, len, i + 1);
        u->n = i + 1; /* so that kvi_etcd_url_free frees what was made */
        if (rc != KV_OK)
            return rc;
        s += len + 1;
    }
    return parse_prefix(u, url, slash ? slash : "");
}

int kvi_etcd_parse_url(kvi_etcd_url *out, const char *url)
{
    memset(out, 0, sizeof *out);
    int rc = parse_url(out, url);
    if (rc != KV_OK)
        kvi_etcd_url_free(out);
    return rc;
}

void kvi_etcd_url_free(kvi_etcd_url *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < u->n; i++)
        free(u->endpoint[i]);
    free(u->prefix);
    memset(u, 0, sizeof *u);
}

/* -------------------------------------------------------------- answers */

/* Parses the answer as one JSON object, with nothing but whitespace after
 * it. A NUL byte is refused: cJSON strings end at one, so a string holding
 * one would silently be cut short. */
static int parse_root(cJSON **out, const char *json, size_t len)
{
    *out = NULL;
    if (len == 0)
        return kvi_error(KV_EIO, "etcd answer is empty");
    if (memchr(json, 0, len))
        return kvi_error(KV_EIO, "etcd answer contains a NUL byte");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        size_t at = end && end >= json && end <= json + len ? (size_t)(end - json) : 0;
        return kvi_error(KV_EIO, "etcd answer is not JSON (malformed near byte %zu of %zu)", at,
                         len);
    }
    for (size_t i = (size_t)(end - json); i < len; i++) {
        if (json[i] != ' ' && json[i] != '\t' && json[i] != '\n' && json[i] != '\r') {
            cJSON_Delete(root);
            return kvi_error(KV_EIO, "etcd answer has text after its JSON object (byte %zu)",
                             i);
        }
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return kvi_error(KV_EIO, "etcd answer is not a JSON object");
    }
    *out = root;
    return KV_OK;
}

/* Decimal text of an int64, as proto3 JSON writes one: 0, or -1 when it
 * is not. */
static int i64_of_text(int64_t *out, const char *s)
{
    int neg = *s == '-';
    s += neg;
    if (*s == '\0')
        return -1;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (limit - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (!neg)
        *out = (int64_t)v;
    else
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    return 0;
}

/* obj's int64 field name (a string, or an integral number within 2^53),
 * at least min; absent or null is 0. where prefixes the field's name in
 * messages ("kvs[2]."). */
static int get_i64(int64_t *out, const cJSON *obj, const char *name, int64_t min,
                   const char *where)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = 0;
    if (!f || cJSON_IsNull(f))
        return KV_OK;
    int64_t v;
    if (cJSON_IsString(f)) {
        if (i64_of_text(&v, f->valuestring) != 0)
            return kvi_error(KV_EIO, "etcd answer: %s\"%s\" is not an int64", where, name);
    } else if (cJSON_IsNumber(f)) {
        double d = f->valuedouble;
        /* The range check comes first, so that the cast testing for a
         * fraction is defined (and NaN fails it). */
        if (!(d >= -(double)KVI_HTTP_JSON_MAX_INT && d <= (double)KVI_HTTP_JSON_MAX_INT) ||
            d != (double)(int64_t)d)
            return kvi_error(KV_EIO, "etcd answer: %s\"%s\" is not an integer", where, name);
        v = (int64_t)d;
    } else {
        return kvi_error(KV_EIO, "etcd answer: %s\"%s\" is neither a string nor a number",
                         where, name);
    }
    if (v < min)
        return kvi_error(KV_EIO, "etcd answer: %s\"%s\" is %" PRId64 ", below %" PRId64, where,
                         name, v, min);
    *out = v;
    return KV_OK;
}

/* obj's boolean field name; absent or null is 0. */
static int get_bool(int *out, const cJSON *obj, const char *name, const char *where)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = 0;
    if (!f || cJSON_IsNull(f))
        return KV_OK;
    if (!cJSON_IsBool(f))
        return kvi_error(KV_EIO, "etcd answer: %s\"%s\" is not a boolean", where, name);
    *out = cJSON_IsTrue(f) ? 1 : 0;
    return KV_OK;
}

/* obj's object field name: *out NULL when absent or null. */
static int get_object(const cJSON **out, const cJSON *obj, const char *name, const char *where)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = NULL;
    if (!f || cJSON_IsNull(f))
        return KV_OK;
    if (!cJSON_IsObject(f))
        return kvi_error(KV_EIO, "etcd answer: %s\"%s\" is not an object", where, name);
    *out = f;
    return KV_OK;
}

/* obj's array field name: *out NULL when absent or null. */
static int get_array(const cJSON **out, const cJSON *obj, const char *name, const char *where)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = NULL;
    if (!f || cJSON_IsNull(f))
        return KV_OK;
    if (!cJSON_IsArray(f))
        return kvi_error(KV_EIO, "etcd answer: %s\"%s\" is not an array", where, name);
    *out = f;
    return KV_OK;
}

/* obj's bytes field name, base64 decoded in place (the tree is ours) and
 * NUL-terminated; absent or null is "". */
static int get_bytes(const unsigned char **out, size_t *len, cJSON *obj, const char *name,
                     const char *where)
{
    cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = (const unsigned char *)"";
    *len = 0;
    if (!f || cJSON_IsNull(f))
        return KV_OK;
    if (!cJSON_IsString(f))
        return kvi_error(KV_EIO, "etcd answer: %s\"%s\" is not a string", where, name);
    unsigned char *s = (unsigned char *)f->valuestring;
    size_t n;
    if (kvi_http_base64_decode(s, &n, f->valuestring, strlen(f->valuestring)) != 0)
        return kvi_error(KV_EIO, "etcd answer: %s\"%s\" is not base64", where, name);
    s[n] = '\0'; /* decoding shortens the text, so this is inside it */
    *out = s;
    *len = n;
    return KV_OK;
}

/* The header's revision (0 when there is none). */
static int header_revision(int64_t *out, const cJSON *obj)
{
    const cJSON *h;
    *out = 0;
    int rc = get_object(&h, obj, "header", "");
    return rc != KV_OK || !h ? rc : get_i64(out, h, "revision", 0, "header.");
}

/* One mvccpb.KeyValue: a key and a mod_revision > 0 are required. */
static int parse_kv(kvi_etcd_kv *kv, cJSON *o, const char *where)
{
    int rc;
    memset(kv, 0, sizeof *kv);
    if (!cJSON_IsObject(o))
        return kvi_error(KV_EIO, "etcd answer: %s is not an object", where);
    if ((rc = get_bytes(&kv->key, &kv->key_len, o, "key", where)) != KV_OK ||
        (rc = get_bytes(&kv->value, &kv->value_len, o, "value", where)) != KV_OK ||
        (rc = get_i64(&kv->create_revision, o, "create_revision", 0, where)) != KV_OK ||
        (rc = get_i64(&kv->mod_revision, o, "mod_revision", 0, where)) != KV_OK ||
        (rc = get_i64(&kv->version, o, "version", 0, where)) != KV_OK ||
        (rc = get_i64(&kv->lease, o, "lease", 0, where)) != KV_OK)
        return rc;
    if (kv->key_len == 0)
        return kvi_error(KV_EIO, "etcd answer: %s has no key", where);
    if (kv->mod_revision <= 0)
        return kvi_error(KV_EIO, "etcd answer: %s has no mod_revision", where);
    return KV_OK;
}

/* The "kvs" of a range answer into a fresh array. */
static int parse_kvs(kvi_etcd_kv **out, size_t *count, cJSON *obj, const char *where)
{
    const cJSON *kvs;
    *out = NULL;
    *count = 0;
    int rc = get_array(&kvs, obj, "kvs", where);
    if (rc != KV_OK || !kvs)
        return rc;
    int n = cJSON_GetArraySize(kvs);
    if (n <= 0)
        return KV_OK;
    kvi_etcd_kv *a = calloc((size_t)n, sizeof *a);
    if (!a)
        return kvi_error(KV_ENOMEM, "out of memory parsing an etcd answer");
    size_t i = 0;
    for (cJSON *it = kvs->child; it; it = it->next, i++) {
        char at[64];
        snprintf(at, sizeof at, "%skvs[%zu]", where, i);
        if ((rc = parse_kv(&a[i], it, at)) != KV_OK) {
            free(a);
            return rc;
        }
    }
    *out = a;
    *count = i;
    return KV_OK;
}

int kvi_etcd_parse_range(kvi_etcd_range *out, const char *json, size_t len)
{
    memset(out, 0, sizeof *out);
    cJSON *root;
    int rc = parse_root(&root, json, len);
    if (rc != KV_OK)
        return rc;
    int64_t revision;
    int more;
    kvi_etcd_kv *kvs = NULL;
    size_t count = 0;
    if ((rc = header_revision(&revision, root)) != KV_OK ||
        (rc = get_bool(&more, root, "more", "")) != KV_OK ||
        (rc = parse_kvs(&kvs, &count, root, "")) != KV_OK) {
        cJSON_Delete(root);
        return rc;
    }
    if (revision <= 0) {
        free(kvs);
        cJSON_Delete(root);
        return kvi_error(KV_EIO, "etcd answer: the range answer has no header revision");
    }
    out->root = root;
    out->revision = revision;
    out->more = more;
    out->kvs = kvs;
    out->count = count;
    return KV_OK;
}

void kvi_etcd_range_free(kvi_etcd_range *r)
{
    if (!r)
        return;
    free(r->kvs);
    cJSON_Delete(r->root);
    memset(r, 0, sizeof *r);
}

int kvi_etcd_parse_txn(kvi_etcd_txn *out, const char *json, size_t len)
{
    memset(out, 0, sizeof *out);
    cJSON *root;
    int rc = parse_root(&root, json, len);
    if (rc != KV_OK)
        return rc;
    const cJSON *responses = NULL;
    if ((rc = header_revision(&out->revision, root)) != KV_OK ||
        (rc = get_bool(&out->succeeded, root, "succeeded", "")) != KV_OK ||
        (rc = get_array(&responses, root, "responses", "")) != KV_OK)
        goto done;
    if (out->revision <= 0) {
        rc = kvi_error(KV_EIO, "etcd answer: the txn answer has no header revision");
        goto done;
    }
    if (!out->succeeded) {
        /* The failure branch is one range of the key. */
        const cJSON *range = NULL;
        cJSON *first = responses ? responses->child : NULL;
        if (!first || !cJSON_IsObject(first) ||
            (rc = get_object(&range, first, "response_range", "responses[0].")) != KV_OK ||
            !range) {
            rc = rc != KV_OK ? rc
                             : kvi_error(KV_EIO, "etcd answer: the failed txn has no "
                                                 "\"responses[0].response_range\"");
            goto done;
        }
        kvi_etcd_kv *kvs;
        size_t count;
        if ((rc = parse_kvs(&kvs, &count, (cJSON *)range, "responses[0].response_range.")) !=
            KV_OK)
            goto done;
        out->current_mod_revision = count ? kvs[0].mod_revision : 0;
        free(kvs);
        if (count > 1)
            rc = kvi_error(KV_EIO, "etcd answer: the failed txn read %zu keys, not one",
                           count);
    }
done:
    cJSON_Delete(root);
    if (rc != KV_OK)
        memset(out, 0, sizeof *out);
    return rc;
}

/* Copies text into msg (cap >= 1 bytes), printable ASCII only: etcd's
 * messages end up in ours, which may be logged anywhere. */
static void copy_message(char *msg, size_t cap, const char *text)
{
    size_t i = 0;
    for (; text && text[i] && i + 1 < cap; i++) {
        unsigned char c = (unsigned char)text[i];
        msg[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    msg[i] = '\0';
}

/* root's "error" as (code, message): KV_OK when root is an error answer. */
static int error_of(int *code, char *msg, size_t cap, const cJSON *root)
{
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *c = NULL, *m = NULL;
    if (cJSON_IsString(err)) {
        /* unary: {"error": "...", "message": "...", "code": N} */
        c = cJSON_GetObjectItemCaseSensitive(root, "code");
        m = cJSON_GetObjectItemCaseSensitive(root, "message");
        if (!cJSON_IsString(m))
            m = err;
    } else if (cJSON_IsObject(err)) {
        /* stream: {"error": {"grpc_code": N, "http_code": N, "message": "..."}} */
        c = cJSON_GetObjectItemCaseSensitive(err, "grpc_code");
        if (!c)
            c = cJSON_GetObjectItemCaseSensitive(err, "code");
        m = cJSON_GetObjectItemCaseSensitive(err, "message");
    } else {
        return KV_EIO;
    }
    double d = cJSON_IsNumber(c) ? c->valuedouble : 0;
    *code = d >= 0 && d <= 1000 ? (int)d : 0;
    copy_message(msg, cap, cJSON_IsString(m) ? m->valuestring : "");
    return KV_OK;
}

int kvi_etcd_parse_error(int *code, char *msg, size_t cap, const char *json, size_t len)
{
    *code = 0;
    msg[0] = '\0';
    cJSON *root;
    int rc = parse_root(&root, json, len);
    if (rc != KV_OK)
        return rc;
    rc = error_of(code, msg, cap, root);
    cJSON_Delete(root);
    if (rc != KV_OK)
        return kvi_error(KV_EIO, "etcd answer: not an error answer (no \"error\")");
    return KV_OK;
}

int kvi_etcd_parse_lease(kvi_etcd_lease *out, const char *json, size_t len)
{
    memset(out, 0, sizeof *out);
    cJSON *root;
    int rc = parse_root(&root, json, len);
    if (rc != KV_OK)
        return rc;
    char msg[256];
    int code;
    const cJSON *result = NULL;
    const cJSON *body = root;
    if ((rc = get_object(&result, root, "result", "")) != KV_OK)
        goto done;
    if (result) {
        body = result;
    } else if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "error")) &&
               error_of(&code, msg, sizeof msg, root) == KV_OK) {
        rc = kvi_error(KV_EIO, "etcd: %s (code %d)", msg, code);
        goto done;
    }
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(body, "error");
    if (error && !cJSON_IsNull(error)) {
        /* LeaseGrantResponse has an error text of its own. */
        if (!cJSON_IsString(error)) {
            rc = kvi_error(KV_EIO, "etcd answer: \"error\" is not a string");
            goto done;
        }
        if (error->valuestring[0]) {
            copy_message(msg, sizeof msg, error->valuestring);
            rc = kvi_error(KV_EIO, "etcd: %s", msg);
            goto done;
        }
    }
    if ((rc = get_i64(&out->id, body, "ID", 0, "")) != KV_OK ||
        (rc = get_i64(&out->ttl, body, "TTL", INT64_MIN, "")) != KV_OK)
        goto done;
done:
    cJSON_Delete(root);
    if (rc != KV_OK)
        memset(out, 0, sizeof *out);
    return rc;
}

/* An event's "type": absent (proto3's default), "PUT" or 0 is a put;
 * "DELETE" or 1 a delete. */
static int event_type(int *deleted, const cJSON *ev, const char *where)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(ev, "type");
    *deleted = 0;
    if (!t || cJSON_IsNull(t))
        return KV_OK;
    if (cJSON_IsString(t) && strcmp(t->valuestring, "PUT") == 0)
        return KV_OK;
    if (cJSON_IsString(t) && strcmp(t->valuestring, "DELETE") == 0) {
        *deleted = 1;
        return KV_OK;
    }
    if (cJSON_IsNumber(t) && (t->valuedouble == 0 || t->valuedouble == 1)) {
        *deleted = t->valuedouble == 1;
        return KV_OK;
    }
    return kvi_error(KV_EIO, "etcd answer: %s\"type\" is not PUT or DELETE", where);
}

int kvi_etcd_parse_watch(kvi_etcd_watch_msg *out, const char *json, size_t len)
{
    memset(out, 0, sizeof *out);
    out->cancel_reason = "";
    cJSON *root;
    int rc = parse_root(&root, json, len);
    if (rc != KV_OK)
        return rc;
    kvi_etcd_event *events = NULL;
    const cJSON *result = NULL, *list = NULL, *reason;
    char msg[256];
    int code;
    if ((rc = get_object(&result, root, "result", "")) != KV_OK)
        goto fail;
    if (!result) {
        if (error_of(&code, msg, sizeof msg, root) == KV_OK)
            rc = kvi_error(KV_EIO, "etcd watch stream failed: %s (code %d)", msg, code);
        else
            rc = kvi_error(KV_EIO, "etcd answer: a watch message has no \"result\"");
        goto fail;
    }
    if ((rc = header_revision(&out->revision, result)) != KV_OK ||
        (rc = get_bool(&out->created, result, "created", "result.")) != KV_OK ||
        (rc = get_bool(&out->canceled, result, "canceled", "result.")) != KV_OK ||
        (rc = get_i64(&out->compact_revision, result, "compact_revision", 0, "result.")) !=
            KV_OK ||
        (rc = get_array(&list, result, "events", "result.")) != KV_OK)
        goto fail;
    reason = cJSON_GetObjectItemCaseSensitive(result, "cancel_reason");
    if (reason && !cJSON_IsNull(reason)) {
        if (!cJSON_IsString(reason)) {
            rc = kvi_error(KV_EIO, "etcd answer: \"result.cancel_reason\" is not a string");
            goto fail;
        }
        out->cancel_reason = reason->valuestring;
    }
    int n = list ? cJSON_GetArraySize(list) : 0;
    if (n > 0) {
        events = calloc((size_t)n, sizeof *events);
        if (!events) {
            rc = kvi_error(KV_ENOMEM, "out of memory parsing an etcd watch message");
            goto fail;
        }
        size_t i = 0;
        for (cJSON *ev = list->child; ev; ev = ev->next, i++) {
            char at[64];
            snprintf(at, sizeof at, "result.events[%zu].", i);
            cJSON *kv = NULL;
            if (!cJSON_IsObject(ev)) {
                rc = kvi_error(KV_EIO, "etcd answer: %s is not an object", at);
                goto fail;
            }
            if ((rc = event_type(&events[i].deleted, ev, at)) != KV_OK)
                goto fail;
            kv = cJSON_GetObjectItemCaseSensitive(ev, "kv");
            snprintf(at, sizeof at, "result.events[%zu].kv", i);
            if (!kv) {
                rc = kvi_error(KV_EIO, "etcd answer: %s is missing", at);
                goto fail;
            }
            if ((rc = parse_kv(&events[i].kv, kv, at)) != KV_OK)
                goto fail;
        }
        out->count = i;
    }
    out->root = root;
    out->events = events;
    return KV_OK;
fail:
    free(events);
    cJSON_Delete(root);
    memset(out, 0, sizeof *out);
    out->cancel_reason = "";
    return rc;
}

void kvi_etcd_watch_msg_free(kvi_etcd_watch_msg *m)
{
    if (!m)
        return;
    free(m->events);
    cJSON_Delete(m->root);
    memset(m, 0, sizeof *m);
    m->cancel_reason = "";
}

/* ------------------------------------------------------------- streams */

int kvi_etcd_split(kvi_etcd_splitter *s, const char *buf, size_t len, size_t *start,
                   size_t *end)
{
    for (; s->pos < len; s->pos++) {
        unsigned char c = (unsigned char)buf[s->pos];
        if (!s->started) {
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
                continue;
            if (c != '{')
                return kvi_error(KV_EIO,
                                 "etcd stream: byte %zu (0x%02x) is not the start of a JSON "
                                 "object",
                                 s->pos, c);
            s->started = 1;
            s->start = s->pos;
            s->depth = 1;
            continue;
        }
        if (s->in_string) {
            if (s->escaped)
                s->escaped = 0;
            else if (c == '\\')
                s->escaped = 1;
            else if (c == '"')
                s->in_string = 0;
            continue;
        }
        if (c == '"') {
            s->in_string = 1;
        } else if (c == '{' || c == '[') {
            if (++s->depth > KVI_ETCD_SPLIT_MAX_DEPTH)
                return kvi_error(KV_EIO, "etcd stream: a message nests deeper than %d",
                                 KVI_ETCD_SPLIT_MAX_DEPTH);
        } else if (c == '}' || c == ']') {
            if (--s->depth == 0) {
                *start = s->start;
                *end = ++s->pos;
                return 1;
            }
        }
    }
    return 0;
}
