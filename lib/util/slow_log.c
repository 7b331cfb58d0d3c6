/* util/slow_log.c - one log line per slow request (slow_log.h). */
#include "util/slow_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <xxhash.h>

#include "util/error.h"

void kvi_slow_log_init(kvi_slow_log *s, uint32_t threshold_ms, const kvi_logger *log)
{
    s->threshold_ns = (uint64_t)threshold_ms * 1000000u;
    s->log = log;
    atomic_init(&s->second, 0);
    atomic_init(&s->lines, 0);
}

int kvi_slow_log_is_slow(const kvi_slow_log *s, uint64_t started_ns, uint64_t now_ns)
{
    return s && s->threshold_ns && now_ns >= started_ns && now_ns - started_ns >= s->threshold_ns;
}

/* Takes one line of this second's budget; 0 when it is spent. */
static int take_line(kvi_slow_log *s, uint64_t now_ns)
{
    uint64_t second = now_ns / 1000000000u;
    uint_fast64_t seen = atomic_load(&s->second);
    if (seen != second && atomic_compare_exchange_strong(&s->second, &seen, second))
        atomic_store(&s->lines, 0);
    return atomic_fetch_add(&s->lines, 1) < SLOW_LOG_LINES_PER_S;
}

/* Appends to line at *len, never past its end. */
static void add(char *line, size_t size, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add(char *line, size_t size, size_t *len, const char *fmt, ...)
{
    if (*len >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + *len, size - *len, fmt, ap);
    va_end(ap);
    *len = n < 0 ? size : *len + (size_t)n;
}

/* A node id as a JSON string body: ids are printable without quotes or
 * backslashes (cluster/membership checks them); anything else becomes '?'. */
static void add_id(char *line, size_t size, size_t *len, const char *id)
{
    add(line, size, len, "\"");
    for (const char *p = id ? id : ""; *p && *len < size; p++) {
        char c = (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) ? '?' : *p;
        add(line, size, len, "%c", c);
    }
    add(line, size, len, "\"");
}

void kvi_slow_log_write(kvi_slow_log *s, const char *op, const char *level, const void *key,
                        size_t key_len, uint64_t started_ns, uint64_t now_ns,
                        const kvi_slow_replica *replicas, size_t n_replicas)
{
    if (!s || !s->log || !s->log->fn || KV_LOG_WARN > s->log->level || !take_line(s, now_ns))
        return;
    char line[1600];
    size_t len = 0;
    add(line, sizeof line, &len,
        "{\"event\":\"slow_request\",\"op\":\"%s\",\"consistency\":\"%s\",\"keyHash\":\"%016llx\","
        "\"ms\":%.3f,\"replicas\":[",
        op, level, (unsigned long long)XXH3_64bits(key, key_len),
        (double)(now_ns - started_ns) / 1e6);
    size_t i = 0;
    /* Room for the longest entry (a 64-byte id, an error) and the end. */
    for (; i < n_replicas && len + 200 < sizeof line; i++) {
        const kvi_slow_replica *r = &replicas[i];
        add(line, sizeof line, &len, "%s{\"node\":", i ? "," : "");
        add_id(line, sizeof line, &len, r->node);
        if (!r->answered_ns)
            add(line, sizeof line, &len, ",\"pending\":true}");
        else if (r->status == 0 || r->status == KV_ENOTFOUND)
            add(line, sizeof line, &len, ",\"ms\":%.3f}",
                (double)(r->answered_ns - r->sent_ns) / 1e6);
        else
            add(line, sizeof line, &len, ",\"ms\":%.3f,\"error\":\"%s\"}",
                (double)(r->answered_ns - r->sent_ns) / 1e6, kvi_strerror(r->status));
    }
    add(line, sizeof line, &len, "]");
    if (i < n_replicas)
        add(line, sizeof line, &len, ",\"replicasNotShown\":%zu", n_replicas - i);
    add(line, sizeof line, &len, "}");
    /* Straight to the callback: kvi_log would cut the line at 1 KiB. */
    if (s->log->fn && KV_LOG_WARN <= s->log->level)
        s->log->fn(KV_LOG_WARN, line, s->log->ctx);
}
