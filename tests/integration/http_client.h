/* http_client.h - one HTTP request through libcurl, for the tests that
 * drive real kvd processes. */
#ifndef KV_TEST_HTTP_CLIENT_H
#define KV_TEST_HTTP_CLIENT_H

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

typedef struct body {
    char data[4096];
    size_t len;
} body;

static size_t body_collect(char *p, size_t size, size_t n, void *ctx)
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
static long http_request(const char *host_port, const char *method, const char *path,
                         const char *json, body *out, long timeout_ms)
{
    CURL *curl = curl_easy_init();
    char url[512];
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

#endif
