/*
 * node/node_figures.c - what a node knows of failures, for GET /metrics and for
 * its cluster description (kvctl members).
 */
#include "node/node_internal.h"

#include <stdio.h>
#include <string.h>

#include "cluster/view.h"
#include "storage/row_cache.h"
#include "storage/store.h"
#include "util/clock.h"

/* What a node knows of failures: members up and down as it sees them,
 * its detector's suspicions, its hints, and its sloppy writes. GET
 * /metrics and the cluster description (kvctl members) both show them. */
typedef struct failure_figures {
    unsigned up, down;
    uint64_t suspicions, sloppy_writes;
    kvi_handoff_stats hints;
    double oldest_age_s;
} failure_figures;

static void gather_figures(const kvi_node *n, failure_figures *f)
{
    memset(f, 0, sizeof *f);
    kvi_view *v = kvi_membership_view(n->membership);
    for (size_t i = 0; v && i < v->n; i++) {
        if ((int)i != v->self && kvi_membership_is_down(n->membership, v->members[i].id))
            f->down++;
        else
            f->up++;
    }
    kvi_view_unref(v);
    if (n->handoff)
        kvi_handoff_get_stats(n->handoff, &f->hints);
    uint64_t now = kvi_now_ms();
    f->oldest_age_s = f->hints.oldest_ms && now > f->hints.oldest_ms
                          ? (double)(now - f->hints.oldest_ms) / 1000.0 : 0;
    f->suspicions = kvi_membership_suspicions(n->membership);
    f->sloppy_writes = atomic_load(&n->sloppy_writes);
}

/* The membership's description with the node's own store figures added,
 * "storage": {"estimatedKeys", "liveSstBytes", "sstBytes"} (RocksDB's
 * estimates for the data family: kvctl members shows them per member), and
 * the node's failure figures:
 * "failures": {"membersUp", "membersDown", "suspicions", "hintsPending",
 * "hintOldestAgeSeconds", "hintsReplayed", "hintsDropped", "sloppyWrites",
 * "readRepairs"}. */
void kvi_node_describe(const kvi_node *n, kvi_buf *out)
{
    size_t start = out->len;
    kvi_membership_describe(n->membership, out);
    if (out->failed || out->len == start || out->data[out->len - 1] != '}')
        return;
    out->len--; /* reopen the object */
    failure_figures f;
    gather_figures(n, &f);
    uint64_t keys, live_bytes, total_bytes;
    kvi_store_data_figures(kvi_embedded_store(n->store), &keys, &live_bytes, &total_bytes);
    char text[768];
    int len = snprintf(text, sizeof text,
                       ",\"storage\":{\"estimatedKeys\":%llu,\"liveSstBytes\":%llu,"
                       "\"sstBytes\":%llu}"
                       ",\"limits\":{\"maxKeySize\":%u,\"maxValueSize\":%u},"
                       "\"failures\":{\"membersUp\":%u,\"membersDown\":%u,\"suspicions\":%llu,"
                       "\"hintsPending\":%llu,\"hintOldestAgeSeconds\":%.3f,"
                       "\"hintsReplayed\":%llu,\"hintsDropped\":%llu,\"sloppyWrites\":%llu,"
                       "\"readRepairs\":%llu}}",
                       (unsigned long long)keys, (unsigned long long)live_bytes,
                       (unsigned long long)total_bytes,
                       n->limits.max_key_size, n->limits.max_value_size,
                       f.up, f.down, (unsigned long long)f.suspicions,
                       (unsigned long long)f.hints.pending, f.oldest_age_s,
                       (unsigned long long)f.hints.replayed,
                       (unsigned long long)f.hints.dropped,
                       (unsigned long long)f.sloppy_writes,
                       (unsigned long long)atomic_load(&n->read_repairs));
    kvi_buf_raw(out, text, len > 0 && (size_t)len < sizeof text ? (size_t)len : 0);
    if (len <= 0 || (size_t)len >= sizeof text)
        kvi_buf_raw(out, "}", 1);
}

static void metric_line(kvi_buf *b, const char *help, const char *type, const char *name,
                        double value)
{
    char line[512];
    int len = snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help,
                       name, type, name, value);
    if (len > 0 && (size_t)len < sizeof line)
        kvi_buf_raw(b, line, (size_t)len);
}

/* The node's store and failure figures for GET /metrics (docs/HTTP.md lists
 * them). */
void kvi_node_render_metrics(void *ctx, kvi_buf *b)
{
    const kvi_node *n = ctx;
    uint64_t keys, live_bytes, total_bytes;
    kvi_store_data_figures(kvi_embedded_store(n->store), &keys, &live_bytes, &total_bytes);
    metric_line(b, "RocksDB's estimate of the keys in this node's data (deleted keys and "
                "overwritten versions not yet compacted count too).", "gauge",
                "kv_store_estimated_keys", (double)keys);
    metric_line(b, "Bytes of this node's live data files on disk (SST files of the current "
                "version; memtables not counted).", "gauge", "kv_store_live_sst_bytes",
                (double)live_bytes);
    metric_line(b, "Bytes of all this node's data files on disk, obsolete ones not yet "
                "deleted included.", "gauge", "kv_store_sst_bytes", (double)total_bytes);
    kvi_row_cache_figures rows;
    kvi_store_row_cache_figures(kvi_embedded_store(n->store), &rows);
    metric_line(b, "Point reads of this node's data answered by its row cache.", "counter",
                "kv_row_cache_hits_total", (double)rows.hits);
    metric_line(b, "Point reads of this node's data that went to RocksDB (the key was not "
                "in the row cache).", "counter", "kv_row_cache_misses_total",
                (double)rows.misses);
    metric_line(b, "Bytes the row cache holds (keys, records and bookkeeping).", "gauge",
                "kv_row_cache_bytes", (double)rows.bytes);
    metric_line(b, "The row cache's capacity in bytes (0: none).", "gauge",
                "kv_row_cache_capacity_bytes", (double)rows.capacity);
    failure_figures f;
    gather_figures(ctx, &f);
    metric_line(b, "Members this node sees up, itself included.", "gauge", "kv_members_up",
                f.up);
    metric_line(b, "Members this node's failure detector holds down (or stopped).", "gauge",
                "kv_members_down", f.down);
    metric_line(b, "Failure-detector suspicions: a member newly held down.", "counter",
                "kv_failure_suspicions_total", (double)f.suspicions);
    metric_line(b, "Hints stored here and not yet delivered to their home replica.", "gauge",
                "kv_hints_pending", (double)f.hints.pending);
    metric_line(b, "Age of the oldest pending hint: how far the most lagging home replica "
                "is behind.", "gauge", "kv_hint_oldest_age_seconds", f.oldest_age_s);
    metric_line(b, "Hints delivered to their home replica and deleted.", "counter",
                "kv_hints_replayed_total", (double)f.hints.replayed);
    metric_line(b, "Hints dropped: past the hint window, damaged, or refused for good.",
                "counter", "kv_hints_dropped_total", (double)f.hints.dropped);
    metric_line(b, "Writes coordinated here that a stand-in acknowledged (sloppy quorum).",
                "counter", "kv_sloppy_writes_total", (double)f.sloppy_writes);
    metric_line(b, "Replicas that reads coordinated here found stale and sent the merged "
                "state (read repair).", "counter", "kv_read_repairs_total",
                (double)atomic_load(&n->read_repairs));
}
