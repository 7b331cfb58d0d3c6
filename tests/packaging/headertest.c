/*
 * headertest.c - the public headers as a consumer sees them.
 *
 * Compiled as C11 and as C++11 with -pedantic -Wall -Wextra -Werror by
 * check_headers.sh. Compiling proves the headers are self-contained, valid in
 * both languages and warning-free, including the KV_*_INIT macros; linking
 * and running proves the C++ declarations have C linkage and that each
 * KV_*_INIT macro gives the same defaults as its kv_*_init() function.
 */
#include <kv/kv.h>
#include <kv/kv.h> /* include guards */

#include <stdio.h>
#include <string.h>

#if !defined(KV_VERSION_NUMBER) || KV_VERSION_NUMBER != \
    (KV_VERSION_MAJOR * 10000 + KV_VERSION_MINOR * 100 + KV_VERSION_PATCH)
#error "KV_VERSION_NUMBER must be usable in #if"
#endif

static int failures;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
            failures++;                                                    \
        }                                                                  \
    } while (0)

static int check_open_options(void)
{
    kv_open_options m = KV_OPEN_OPTIONS_INIT;
    kv_open_options f;
    memset(&f, 0xA5, sizeof f);
    CHECK(kv_open_options_init(&f, KV_OPEN_OPTIONS_VERSION) == KV_OK);
    CHECK(m.version == KV_OPEN_OPTIONS_VERSION);
    CHECK(f.version == m.version);
    CHECK(f.create_if_missing == m.create_if_missing);
    CHECK(f.max_key_size == m.max_key_size);
    CHECK(f.max_value_size == m.max_value_size);
    CHECK(f.sync == m.sync);
    CHECK(f.sync_interval_ms == m.sync_interval_ms);
    CHECK(f.block_cache_bytes == m.block_cache_bytes);
    CHECK(f.tombstone_grace_s == m.tombstone_grace_s);
    CHECK(f.log_fn == m.log_fn);
    CHECK(f.log_ctx == m.log_ctx);
    CHECK(f.log_level == m.log_level);
    CHECK(kv_open_options_init(NULL, KV_OPEN_OPTIONS_VERSION) == KV_EINVAL);
    m.tombstone_grace_s = KV_GRACE_NONE;
    return (int)m.version;
}

static int check_write_options(void)
{
    kv_write_options m = KV_WRITE_OPTIONS_INIT;
    kv_write_options f;
    memset(&f, 0xA5, sizeof f);
    CHECK(kv_write_options_init(&f, KV_WRITE_OPTIONS_VERSION) == KV_OK);
    CHECK(m.version == KV_WRITE_OPTIONS_VERSION);
    CHECK(f.version == m.version);
    CHECK(f.ttl_s == m.ttl_s);
    CHECK(f.consistency == m.consistency);
    CHECK(f.w == m.w);
    CHECK(f.context == m.context);
    CHECK(f.context_len == m.context_len);
    return (int)m.version;
}

static int check_read_options(void)
{
    kv_read_options m = KV_READ_OPTIONS_INIT;
    kv_read_options f;
    memset(&f, 0xA5, sizeof f);
    CHECK(kv_read_options_init(&f, KV_READ_OPTIONS_VERSION) == KV_OK);
    CHECK(m.version == KV_READ_OPTIONS_VERSION);
    CHECK(f.version == m.version);
    CHECK(f.consistency == m.consistency);
    CHECK(f.r == m.r);
    return (int)m.version;
}

static int check_scan_options(void)
{
    kv_scan_options m = KV_SCAN_OPTIONS_INIT;
    kv_scan_options f;
    memset(&f, 0xA5, sizeof f);
    CHECK(kv_scan_options_init(&f, KV_SCAN_OPTIONS_VERSION) == KV_OK);
    CHECK(m.version == KV_SCAN_OPTIONS_VERSION);
    CHECK(f.version == m.version);
    CHECK(f.consistency == m.consistency);
    CHECK(f.r == m.r);
    CHECK(f.keys_only == m.keys_only);
    CHECK(kv_scan_options_init(&f, 99) == KV_EINVAL);
    return (int)m.version;
}

static int check_node_options(void)
{
    kv_node_options m = KV_NODE_OPTIONS_INIT;
    kv_node_options f;
    memset(&f, 0xA5, sizeof f);
    CHECK(kv_node_options_init(&f, KV_NODE_OPTIONS_VERSION) == KV_OK);
    CHECK(m.version == KV_NODE_OPTIONS_VERSION);
    CHECK(f.version == m.version);
    CHECK(f.data_dir == m.data_dir);
    CHECK(f.node_id == m.node_id);
    CHECK(f.listen_addr == m.listen_addr);
    CHECK(f.http_addr == m.http_addr);
    CHECK(f.store == m.store);
    CHECK(f.io_threads == m.io_threads);
    CHECK(f.http_threads == m.http_threads);
    return (int)m.version;
}

static int check_client_options(void)
{
    kv_client_options m = KV_CLIENT_OPTIONS_INIT;
    kv_client_options f;
    memset(&f, 0xA5, sizeof f);
    CHECK(kv_client_options_init(&f, KV_CLIENT_OPTIONS_VERSION) == KV_OK);
    CHECK(m.version == KV_CLIENT_OPTIONS_VERSION);
    CHECK(f.version == m.version);
    CHECK(f.connect_timeout_ms == m.connect_timeout_ms);
    CHECK(f.request_timeout_ms == m.request_timeout_ms);
    CHECK(f.connections_per_node == m.connections_per_node);
    CHECK(f.log_fn == m.log_fn);
    CHECK(f.log_ctx == m.log_ctx);
    CHECK(f.log_level == m.log_level);
    return (int)m.version;
}

int main(void)
{
    int major = -1, minor = -1, patch = -1;
    const char *v = kv_version(&major, &minor, &patch);

    CHECK(v != NULL && strcmp(v, KV_VERSION_STRING) == 0);
    CHECK(major == KV_VERSION_MAJOR && minor == KV_VERSION_MINOR &&
          patch == KV_VERSION_PATCH);
    CHECK(kv_strerror(KV_OK) != NULL);
    CHECK(kv_strerror(-12345) != NULL);
    CHECK(kv_error_last() != NULL);

    check_open_options();
    check_write_options();
    check_read_options();
    check_scan_options();
    check_node_options();
    check_client_options();

#ifdef __cplusplus
    printf("headertest (C++): libkv %s, %d failure(s)\n", v, failures);
#else
    printf("headertest (C): libkv %s, %d failure(s)\n", v, failures);
#endif
    return failures == 0 ? 0 : 1;
}
