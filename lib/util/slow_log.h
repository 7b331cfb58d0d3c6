/*
 * util/slow_log.h - one log line per slow request: a coordinated request
 * that took the slow-request threshold or longer is written out with its
 * key's hash (never the key: keys may be personal data), how long it took,
 * and how long each replica it asked took to answer, or that it had not
 * answered yet. At most SLOW_LOG_LINES_PER_S lines a second, so a node
 * that turns slow does not drown its log; the count of every slow request
 * is in kv_slow_requests_total and the once-a-minute summary line.
 *
 * The line's message is a JSON object (kvd writes its fields into the log
 * line's own object): {"event": "slow_request", "op", "consistency", "keyHash",
 * "ms", "replicas": [{"node", "ms"} | {"node", "pending": true} |
 * {"node", "ms", "error"}]}.
 *
 * Threads: kvi_slow_log_* may be called from any thread at once.
 */
#ifndef KVI_SLOW_LOG_H
#define KVI_SLOW_LOG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "util/log.h"

#define SLOW_LOG_LINES_PER_S 10u

typedef struct kvi_slow_log {
    uint64_t threshold_ns;         /* 0: nothing is slow */
    const kvi_logger *log;         /* borrowed */
    atomic_uint_fast64_t second;   /* the second the budget below is for */
    atomic_uint lines;             /* lines written in that second */
} kvi_slow_log;

void kvi_slow_log_init(kvi_slow_log *s, uint32_t threshold_ms, const kvi_logger *log);

/* Whether a request that started at started_ns (monotonic) and ends at
 * now_ns is slow; NULL s: never. */
int kvi_slow_log_is_slow(const kvi_slow_log *s, uint64_t started_ns, uint64_t now_ns);

/* One replica a slow request asked, as the line shows it. */
typedef struct kvi_slow_replica {
    const char *node;
    uint64_t sent_ns, answered_ns; /* answered_ns 0: not answered yet */
    int status;                    /* its answer's KV_* code, when answered */
} kvi_slow_replica;

/* Writes the line (at warn), unless this second's lines are spent. op and
 * level are names ("put", "quorum"); key is hashed. */
void kvi_slow_log_write(kvi_slow_log *s, const char *op, const char *level, const void *key,
                        size_t key_len, uint64_t started_ns, uint64_t now_ns,
                        const kvi_slow_replica *replicas, size_t n_replicas);

#endif
