/*
 * cluster/handoff.h - hinted handoff: a node's thread that gives the hints
 * it keeps (cluster/hints.h) back to their home replicas once they are up.
 *
 * Each round it takes the hints of one member that is up, oldest first,
 * sends each as REPLICATE (flagged as a handoff, so the target merges it
 * even if the ring moved the key since) and deletes a hint only after the
 * target acknowledged it. A hint the target refuses for good (malformed,
 * over its limits) or that fails its own checksum is dropped and counted;
 * so is every hint older than the window, which anti-entropy must repair.
 * Replay is throttled to a byte budget per second, so that a returning
 * node's backlog does not starve live traffic. Each replay to a member is
 * logged once, at info, when it ends: how many hints it handed over and
 * dropped, and how long it took (or that the member went down again).
 * See docs/design/FAILURES.md.
 *
 * Threads: kvi_handoff_stats from any thread; start and stop from the
 * owner.
 */
#ifndef KVI_HANDOFF_H
#define KVI_HANDOFF_H

#include <stdint.h>

#include "cluster/hints.h"
#include "util/log.h"

struct kvi_view;

/* Hints older than this are dropped, unless configured otherwise. */
#define KVI_DEFAULT_HINT_WINDOW_S 10800u

typedef struct kvi_handoff_config {
    kvi_hints *hints;                    /* borrowed; outlives the handoff */
    /* The current view with a reference taken, or NULL (not built yet). */
    struct kvi_view *(*view)(void *ctx);
    /* Whether the failure detector holds member id down. */
    int (*is_down)(void *ctx, const char *id);
    void *ctx;
    uint32_t window_s;                   /* 0 = 10800 (3 h) */
    uint32_t kib_per_s;                  /* 0 = 4096 */
    const kvi_logger *log;               /* borrowed */
} kvi_handoff_config;

typedef struct kvi_handoff_stats {
    uint64_t pending;     /* hints stored, not yet delivered */
    uint64_t oldest_ms;   /* creation time of the oldest; 0 when none */
    uint64_t replayed;    /* delivered and deleted since start */
    uint64_t dropped;     /* past the window, damaged, or refused for good */
} kvi_handoff_stats;

typedef struct kvi_handoff kvi_handoff;

int kvi_handoff_start(kvi_handoff **out, const kvi_handoff_config *cfg);
void kvi_handoff_stop(kvi_handoff *h);
/* The figures as of the last round (pending and oldest are refreshed each
 * round that may have changed them). */
void kvi_handoff_get_stats(kvi_handoff *h, kvi_handoff_stats *out);

#endif
