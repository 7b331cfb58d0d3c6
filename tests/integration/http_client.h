/* http_client.h - one HTTP request through libcurl, for the tests that
 * drive real kvd processes. */
#ifndef KV_TEST_HTTP_CLIENT_H
#define KV_TEST_HTTP_CLIENT_H

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct body {
    char data[4096];
    size_t len;
} body;

static inline size_t body_collect(char *p, size_t size, size_t n, void *ctx)
{
    body *b = ctx;
    size_t take = size * n;
    if (take > sizeof b->data - 1 - b->len)
        take = sizeof b->data - 1 - b->len;
    memcpy(b->data + b->len, p, take);
    b->len += take;
    b->data[b->len] = 0;
    return size * n;
}

/* METHOD http://host_port/path with an optional JSON body; returns the HTTP
 * status (0 when there was no answer within timeout_ms), the body in out
 * (truncated to 4 KiB). */
static inline long http_request(const char *host_port, const char *method, const char *path,
                                const char *json, body *out, long timeout_ms)
{
    CURL *curl = curl_easy_init();
    char url[2048];
    snprintf(url, sizeof url, "http://%s%s", host_port, path);
    memset(out, 0, sizeof *out);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, body_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
    if (json)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json);
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    return status;
}

/* The whole body of GET http://host_port/path (malloc'd, NUL-terminated;
 * free it), or NULL when the answer is not 200 within timeout_ms. For
 * bodies past body's 4 KiB (/metrics). */
typedef struct grown_body {
    char *data;
    size_t len, cap;
    int failed;
} grown_body;

static inline size_t grown_collect(char *p, size_t size, size_t n, void *ctx)
{
    grown_body *b = ctx;
    size_t take = size * n;
    if (b->len + take + 1 > b->cap) {
        size_t cap = (b->len + take + 1) * 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return 0;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, take);
    b->len += take;
    b->data[b->len] = 0;
    return take;
}

static inline char *http_get_all(const char *host_port, const char *path, long timeout_ms)
{
    CURL *curl = curl_easy_init();
    char url[2048];
    snprintf(url, sizeof url, "http://%s%s", host_port, path);
    grown_body b = {0};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, grown_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    if (status != 200 || b.failed || !b.data) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

#endif
