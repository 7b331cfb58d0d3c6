/*
 * node/node_figures.c - what a node knows of failures, for GET /metrics and for
 * its cluster description (kvctl members).
 */
#include "node/node_internal.h"
#include "net/http_json.h"

#include <stdio.h>
#include <string.h>

#include "cluster/view.h"
#include "storage/digest.h"
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

static int digest_ready(const kvi_node *n)
{
    kvi_digest *d = kvi_store_digest(kvi_embedded_store(n->store));
    return d && kvi_digest_ready(d);
}

/* Appends a JSON string (escaped) to out. */
static void json_string(kvi_buf *out, const char *s)
{
    kvi_buf_raw(out, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            kvi_buf_raw(out, e, 2);
        } else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            kvi_buf_raw(out, e, 6);
        } else {
            kvi_buf_raw(out, s, 1);
        }
    }
    kvi_buf_raw(out, "\"", 1);
}

/* ,"antiEntropy":{...}: the node's exchanges and its last repair round
 * (kvctl repair-status; docs/CLUSTER.md lists the fields). */
static void describe_anti_entropy(const kvi_node *n, kvi_buf *out)
{
    if (!n->ae)
        return;
    kvi_ae_status s;
    kvi_anti_entropy_status(n->ae, &s);
    char text[1024];
    int len = snprintf(text, sizeof text,
                       ",\"antiEntropy\":{\"exchanges\":%llu,\"exchangesFailed\":%llu,"
                       "\"keysReceived\":%llu,\"keysSent\":%llu,\"recordsDamaged\":%llu,"
                       "\"bytes\":{\"digest\":%llu,\"keys\":%llu,\"repair\":%llu},"
                       "\"lastFullRepairMs\":%llu,\"lastExchangeMs\":%llu,\"lagMs\":%llu,"
                       "\"tombstonesPendingPurge\":%llu,\"tombstonesPurged\":%llu,"
                       "\"digestReady\":%s,\"digestCorrected\":%llu,"
                       "\"digestVerifications\":%llu,"
                       "\"round\":{\"id\":%llu,\"running\":%s,\"startedMs\":%llu,"
                       "\"finishedMs\":%llu,\"peers\":%u,\"peersDone\":%u,"
                       "\"peersFailed\":%u,\"keysRepaired\":%llu,\"bytes\":%llu,"
                       "\"error\":",
                       (unsigned long long)s.exchanges_ok, (unsigned long long)s.exchanges_failed,
                       (unsigned long long)s.keys_received, (unsigned long long)s.keys_sent,
                       (unsigned long long)s.records_damaged,
                       (unsigned long long)s.bytes[KVI_AE_PHASE_DIGEST],
                       (unsigned long long)s.bytes[KVI_AE_PHASE_KEYS],
                       (unsigned long long)s.bytes[KVI_AE_PHASE_REPAIR],
                       (unsigned long long)s.last_full_repair_ms,
                       (unsigned long long)s.last_exchange_ms, (unsigned long long)s.lag_ms,
                       (unsigned long long)atomic_load(&n->tombstones_pending),
                       (unsigned long long)atomic_load(&n->tombstones_purged),
                       digest_ready(n) ? "true" : "false",
                       (unsigned long long)atomic_load(&n->digest_mismatches),
                       (unsigned long long)atomic_load(&n->digest_passes),
                       (unsigned long long)s.round.id,
                       s.round.running ? "true" : "false",
                       (unsigned long long)s.round.started_ms,
                       (unsigned long long)s.round.finished_ms, s.round.peers,
                       s.round.peers_done, s.round.peers_failed,
                       (unsigned long long)s.round.keys_repaired,
                       (unsigned long long)s.round.bytes);
    if (len <= 0 || (size_t)len >= sizeof text)
        return;
    kvi_buf_raw(out, text, (size_t)len);
    if (s.round.error[0])
        json_string(out, s.round.error);
    else
        kvi_buf_raw(out, "null", 4);
    kvi_buf_raw(out, "},\"lastPeer\":", strlen("},\"lastPeer\":"));
    json_string(out, s.last_peer);
    kvi_buf_raw(out, ",\"lastError\":", strlen(",\"lastError\":"));
    if (s.last_error[0])
        json_string(out, s.last_error);
    else
        kvi_buf_raw(out, "null", 4);
    /* Per member: when the ranges the two share were last fully compared. */
    kvi_buf_raw(out, ",\"members\":[", strlen(",\"members\":["));
    kvi_ae_peer_status peers[64];
    size_t n_peers = kvi_anti_entropy_peers(n->ae, peers, 64);
    for (size_t i = 0; i < n_peers && i < 64; i++) {
        char figures[160];
        const char *open = i ? ",{\"nodeId\":" : "{\"nodeId\":";
        kvi_buf_raw(out, open, strlen(open));
        json_string(out, peers[i].id);
        int len = snprintf(figures, sizeof figures,
                           ",\"lastCleanExchangeMs\":%llu,\"lastExchangeEndMs\":%llu,"
                           "\"lastError\":",
                           (unsigned long long)peers[i].clean_start_ms,
                           (unsigned long long)peers[i].last_end_ms);
        kvi_buf_raw(out, figures, len > 0 && (size_t)len < sizeof figures ? (size_t)len : 0);
        if (peers[i].last_error[0])
            json_string(out, peers[i].last_error);
        else
            kvi_buf_raw(out, "null", 4);
        kvi_buf_raw(out, "}", 1);
    }
    kvi_buf_raw(out, "]}", 2);
}

/* The membership's description with the node's own store figures added,
 * "storage": {"estimatedKeys", "liveSstBytes", "sstBytes", ...} (RocksDB's
 * estimates for the data family and the engine's figures, describe_storage:
 * kvctl members and the status page show them per member), and
 * the node's failure figures:
 * "failures": {"membersUp", "membersDown", "suspicions", "hintsPending",
 * "hintOldestAgeSeconds", "hintsReplayed", "hintsDropped", "sloppyWrites",
 * "readRepairs"}. */
/* ,"stream":{...} while this node streams ranges in (kvctl streams), else
 * ,"stream":null. The rate is the average since it started; the ETA
 * follows from the share of the plan's tokens already in. */
static void describe_stream(kvi_node *n, kvi_buf *out)
{
    pthread_mutex_lock(&n->stream_lock);
    uint64_t started = n->stream_started_ms;
    char what[96], sources[256];
    snprintf(what, sizeof what, "%s", n->stream_what);
    snprintf(sources, sizeof sources, "%s", n->stream_sources);
    pthread_mutex_unlock(&n->stream_lock);
    if (!started) {
        kvi_buf_raw(out, ",\"stream\":null", strlen(",\"stream\":null"));
        return;
    }
    const kvi_stream_progress *p = &n->stream_progress;
    uint64_t now = kvi_now_ms(), bytes = atomic_load(&p->bytes);
    uint64_t done = atomic_load(&p->millionths);
    double secs = now > started ? (double)(now - started) / 1000.0 : 0;
    double rate = secs > 0 ? (double)bytes / secs : 0;
    /* Done so far took secs (of this run); the rest at the same pace. */
    double eta = done > 0 && done < 1000000u ? secs * (double)(1000000u - done) / (double)done
                                            : -1;
    kvi_buf_raw(out, ",\"stream\":{\"change\":", strlen(",\"stream\":{\"change\":"));
    json_string(out, what);
    kvi_buf_raw(out, ",\"sources\":", strlen(",\"sources\":"));
    json_string(out, sources);
    char text[400];
    int len = snprintf(text, sizeof text,
                       ",\"rangesDone\":%llu,\"ranges\":%llu,\"records\":%llu,\"bytes\":%llu,"
                       "\"fractionDone\":%.4f,\"startedMs\":%llu,\"bytesPerSecond\":%.0f,"
                       "\"etaSeconds\":%.1f}",
                       (unsigned long long)atomic_load(&p->ranges_done),
                       (unsigned long long)atomic_load(&p->ranges),
                       (unsigned long long)atomic_load(&p->records), (unsigned long long)bytes,
                       (double)done / 1000000.0, (unsigned long long)started, rate, eta);
    if (len > 0 && (size_t)len < sizeof text)
        kvi_buf_raw(out, text, (size_t)len);
}

/* ,"storage":{...}: the data family's figures, and the engine's memory,
 * disk and compaction figures as GET /metrics has them (the status page
 * shows them per member; docs/CLUSTER.md lists the fields). */
static void describe_storage(const kvi_node *n, kvi_buf *out)
{
    kvi_store *s = kvi_embedded_store(n->store);
    uint64_t keys, live_bytes, total_bytes;
    kvi_store_data_figures(s, &keys, &live_bytes, &total_bytes);
    kvi_store_engine_figures e;
    kvi_store_engine_figures_get(s, &e);
    char text[768];
    int len = snprintf(text, sizeof text,
                       ",\"storage\":{\"estimatedKeys\":%llu,\"liveSstBytes\":%llu,"
                       "\"sstBytes\":%llu,\"corruptRecordsRepaired\":%llu,"
                       "\"memtableBytes\":%llu,\"walBytes\":%llu,"
                       "\"pendingCompactionBytes\":%llu,\"runningCompactions\":%llu,"
                       "\"runningFlushes\":%llu,\"blockCache\":{\"bytes\":%llu,"
                       "\"capacityBytes\":%llu,\"hits\":%llu,\"misses\":%llu}}",
                       (unsigned long long)keys, (unsigned long long)live_bytes,
                       (unsigned long long)total_bytes,
                       (unsigned long long)kvi_store_corrupt_replaced(s),
                       (unsigned long long)e.memtable_bytes, (unsigned long long)e.wal_bytes,
                       (unsigned long long)e.pending_compaction_bytes,
                       (unsigned long long)e.running_compactions,
                       (unsigned long long)e.running_flushes,
                       (unsigned long long)e.block_cache_bytes,
                       (unsigned long long)e.block_cache_capacity,
                       (unsigned long long)e.block_cache_hits,
                       (unsigned long long)e.block_cache_misses);
    if (len > 0 && (size_t)len < sizeof text)
        kvi_buf_raw(out, text, (size_t)len);
}

void kvi_node_describe(const kvi_node *n, kvi_buf *out)
{
    size_t start = out->len;
    kvi_membership_describe(n->membership, out);
    if (out->failed || out->len == start || out->data[out->len - 1] != '}')
        return;
    out->len--; /* reopen the object */
    failure_figures f;
    gather_figures(n, &f);
    describe_storage(n, out);
    char text[768];
    int len = snprintf(text, sizeof text,
                       ",\"limits\":{\"maxKeySize\":%u,\"maxValueSize\":%u},"
                       "\"failures\":{\"membersUp\":%u,\"membersDown\":%u,\"suspicions\":%llu,"
                       "\"hintsPending\":%llu,\"hintOldestAgeSeconds\":%.3f,"
                       "\"hintsReplayed\":%llu,\"hintsDropped\":%llu,\"sloppyWrites\":%llu,"
                       "\"readRepairs\":%llu}}",
                       n->limits.max_key_size, n->limits.max_value_size,
                       f.up, f.down, (unsigned long long)f.suspicions,
                       (unsigned long long)f.hints.pending, f.oldest_age_s,
                       (unsigned long long)f.hints.replayed,
                       (unsigned long long)f.hints.dropped,
                       (unsigned long long)f.sloppy_writes,
                       (unsigned long long)atomic_load(&n->read_repairs));
    if (len <= 0 || (size_t)len >= sizeof text) {
        kvi_buf_raw(out, "}", 1);
        return;
    }
    kvi_buf_raw(out, text, (size_t)len - 1); /* without the closing brace */
    describe_anti_entropy(n, out);
    describe_stream((kvi_node *)n, out);
    if (n->hotkeys) {
        static const char key[] = ",\"hotKeys\":";
        kvi_buf_raw(out, key, sizeof key - 1);
        kvi_node_render_hotkeys((kvi_node *)n, out);
    }
    if (n->metrics) {
        /* The latency histograms: kvctl stats reads two descriptions and
         * takes the difference. */
        static const char key[] = ",\"latency\":";
        kvi_buf_raw(out, key, sizeof key - 1);
        kvi_metrics_render_json(n->metrics, out);
    }
    if (n->peer_latency)
        kvi_node_describe_peer_latency(n, out);
    kvi_buf_raw(out, "}", 1);
}

/* ------------------------------------------------------------ hot keys */

#define HOTKEYS_SHOWN 10u

void kvi_node_count_key(kvi_node *n, kvi_hotkey_kind kind, const void *key, size_t key_len)
{
    /* A key the request is refused for is no key of the node's: some
     * doors count before the checks (the coordinator's run them). */
    if (!key || key_len == 0 || key_len > n->limits.max_key_size)
        return;
    kvi_hotkeys_record(n->hotkeys, kind, key, key_len, kvi_monotonic_ns() / 1000000u);
}

/* One kind's top keys: {"total": N, "keys": [{"key": "..." (or "keyBase64"
 * when not text), "keyLength": L, "truncated": bool, "count": C, "error": E,
 * "share": C/N}]}. */
static void hotkeys_json(kvi_node *n, kvi_hotkey_kind kind, uint64_t now_ms, kvi_buf *out)
{
    kvi_hotkey top[HOTKEYS_SHOWN];
    uint64_t total;
    size_t k = kvi_hotkeys_top(n->hotkeys, kind, now_ms, top, HOTKEYS_SHOWN, &total);
    kvi_http_json_raw(out, "{\"total\":");
    kvi_http_json_u64(out, total);
    kvi_http_json_raw(out, ",\"keys\":[");
    for (size_t i = 0; i < k; i++) {
        size_t shown = top[i].key_len < KVI_HOTKEYS_KEY_MAX ? top[i].key_len : KVI_HOTKEYS_KEY_MAX;
        kvi_http_json_raw(out, i ? ",{" : "{");
        if (kvi_http_is_text(top[i].key, shown)) {
            kvi_http_json_raw(out, "\"key\":");
            kvi_http_json_string(out, top[i].key, shown);
        } else {
            kvi_http_json_raw(out, "\"keyBase64\":");
            kvi_http_json_base64(out, top[i].key, shown);
        }
        char rest[160];
        snprintf(rest, sizeof rest, ",\"keyLength\":%zu,\"truncated\":%s,\"count\":%llu,"
                 "\"error\":%llu,\"share\":%.4f}",
                 top[i].key_len, shown < top[i].key_len ? "true" : "false",
                 (unsigned long long)top[i].count, (unsigned long long)top[i].error,
                 total ? (double)top[i].count / (double)total : 0.0);
        kvi_http_json_raw(out, rest);
    }
    kvi_http_json_raw(out, "]}");
}

void kvi_node_render_hotkeys(void *ctx, kvi_buf *out)
{
    kvi_node *n = ctx;
    uint64_t now_ms = kvi_monotonic_ns() / 1000000u;
    kvi_http_json_raw(out, "{\"nodeId\":");
    kvi_http_json_message(out, n->node_id);
    kvi_http_json_raw(out, ",\"spanMs\":");
    kvi_http_json_u64(out, kvi_hotkeys_span_ms(n->hotkeys, now_ms));
    kvi_http_json_raw(out, ",\"reads\":");
    hotkeys_json(n, KVI_HOTKEY_READ, now_ms, out);
    kvi_http_json_raw(out, ",\"writes\":");
    hotkeys_json(n, KVI_HOTKEY_WRITE, now_ms, out);
    kvi_http_json_raw(out, "}");
}

/* The hottest key's share of a kind's requests in the window (0: none). */
static double hottest_share(const kvi_node *n, kvi_hotkey_kind kind)
{
    kvi_hotkey top[1];
    uint64_t total;
    size_t k = kvi_hotkeys_top(n->hotkeys, kind, kvi_monotonic_ns() / 1000000u, top, 1, &total);
    return k && total ? (double)top[0].count / (double)total : 0;
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

/* Anti-entropy's figures for GET /metrics (in a cluster only). */
static void render_anti_entropy(const kvi_node *n, kvi_buf *b)
{
    if (!n->ae)
        return;
    kvi_ae_status s;
    kvi_anti_entropy_status(n->ae, &s);
    char text[3072];
    int len = snprintf(
        text, sizeof text,
        "# HELP kv_ae_exchanges_total Anti-entropy exchanges this node ran, by result.\n"
        "# TYPE kv_ae_exchanges_total counter\n"
        "kv_ae_exchanges_total{result=\"ok\"} %llu\n"
        "kv_ae_exchanges_total{result=\"failed\"} %llu\n"
        "# HELP kv_ae_keys_repaired_total Key states anti-entropy took in from a peer "
        "(received) or sent to one (sent).\n"
        "# TYPE kv_ae_keys_repaired_total counter\n"
        "kv_ae_keys_repaired_total{direction=\"received\"} %llu\n"
        "kv_ae_keys_repaired_total{direction=\"sent\"} %llu\n"
        "# HELP kv_ae_bytes_total Bytes of anti-entropy's requests and answers, by phase.\n"
        "# TYPE kv_ae_bytes_total counter\n"
        "kv_ae_bytes_total{phase=\"digest\"} %llu\n"
        "kv_ae_bytes_total{phase=\"keys\"} %llu\n"
        "kv_ae_bytes_total{phase=\"repair\"} %llu\n"
        "# HELP kv_ae_records_damaged_total A peer's records anti-entropy found failing "
        "their checksum.\n"
        "# TYPE kv_ae_records_damaged_total counter\n"
        "kv_ae_records_damaged_total %llu\n"
        "# HELP kv_ae_last_full_repair_timestamp_seconds When the oldest of the last clean "
        "exchanges with every member sharing ranges started (0: never).\n"
        "# TYPE kv_ae_last_full_repair_timestamp_seconds gauge\n"
        "kv_ae_last_full_repair_timestamp_seconds %.3f\n"
        "# HELP kv_ae_replication_lag_seconds Age of the oldest difference the last exchange "
        "repaired (0: it found none).\n"
        "# TYPE kv_ae_replication_lag_seconds gauge\n"
        "kv_ae_replication_lag_seconds %.3f\n"
        "# HELP kv_tombstones_pending_purge Dead keys the last purge pass kept: not every "
        "replica has been repaired since they died, or the hint window has not passed.\n"
        "# TYPE kv_tombstones_pending_purge gauge\n"
        "kv_tombstones_pending_purge %llu\n"
        "# HELP kv_tombstones_purged_total Dead keys purged once every replica held them.\n"
        "# TYPE kv_tombstones_purged_total counter\n"
        "kv_tombstones_purged_total %llu\n"
        "# HELP kv_ae_digest_ready 1 once the anti-entropy digest holds the data's figures "
        "(0 while it is built in the background: no exchange meanwhile).\n"
        "# TYPE kv_ae_digest_ready gauge\n"
        "kv_ae_digest_ready %d\n"
        "# HELP kv_ae_digest_corrected_total Digest segments the background verification "
        "found different from the data, and corrected.\n"
        "# TYPE kv_ae_digest_corrected_total counter\n"
        "kv_ae_digest_corrected_total %llu\n"
        "# HELP kv_ae_digest_verifications_total Whole passes of the background verification.\n"
        "# TYPE kv_ae_digest_verifications_total counter\n"
        "kv_ae_digest_verifications_total %llu\n",
        (unsigned long long)s.exchanges_ok, (unsigned long long)s.exchanges_failed,
        (unsigned long long)s.keys_received, (unsigned long long)s.keys_sent,
        (unsigned long long)s.bytes[KVI_AE_PHASE_DIGEST],
        (unsigned long long)s.bytes[KVI_AE_PHASE_KEYS],
        (unsigned long long)s.bytes[KVI_AE_PHASE_REPAIR],
        (unsigned long long)s.records_damaged, (double)s.last_full_repair_ms / 1000.0,
        (double)s.lag_ms / 1000.0, (unsigned long long)atomic_load(&n->tombstones_pending),
        (unsigned long long)atomic_load(&n->tombstones_purged), digest_ready(n),
        (unsigned long long)atomic_load(&n->digest_mismatches),
        (unsigned long long)atomic_load(&n->digest_passes));
    if (len > 0 && (size_t)len < sizeof text)
        kvi_buf_raw(b, text, (size_t)len);
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
    kvi_store_engine_figures e;
    kvi_store_engine_figures_get(kvi_embedded_store(n->store), &e);
    metric_line(b, "Bytes of the store's memtables (every family, active and being flushed).",
                "gauge", "kv_store_memtable_bytes", (double)e.memtable_bytes);
    metric_line(b, "Bytes of the store's write-ahead log files on disk.", "gauge",
                "kv_store_wal_bytes", (double)e.wal_bytes);
    metric_line(b, "Bytes RocksDB estimates its compactions must rewrite to bring every level "
                "under its target size: the compaction lag.", "gauge",
                "kv_store_pending_compaction_bytes", (double)e.pending_compaction_bytes);
    metric_line(b, "Compactions running now.", "gauge", "kv_store_running_compactions",
                (double)e.running_compactions);
    metric_line(b, "Memtable flushes running now.", "gauge", "kv_store_running_flushes",
                (double)e.running_flushes);
    metric_line(b, "Bytes the block cache holds (SST blocks: data, index, filters).", "gauge",
                "kv_block_cache_bytes", (double)e.block_cache_bytes);
    metric_line(b, "The block cache's capacity in bytes.", "gauge",
                "kv_block_cache_capacity_bytes", (double)e.block_cache_capacity);
    metric_line(b, "SST blocks the point reads that missed the row cache found in the block "
                "cache.", "counter", "kv_block_cache_hits_total", (double)e.block_cache_hits);
    metric_line(b, "SST blocks those reads had to read from the files (block cache misses).",
                "counter", "kv_block_cache_misses_total", (double)e.block_cache_misses);
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
    metric_line(b, "The hottest key's share of the reads this node coordinated lately "
                "(GET /v1/hotkeys; 0: none).", "gauge", "kv_hot_key_read_share",
                hottest_share(n, KVI_HOTKEY_READ));
    metric_line(b, "The hottest key's share of the writes this node coordinated lately.",
                "gauge", "kv_hot_key_write_share", hottest_share(n, KVI_HOTKEY_WRITE));
    metric_line(b, "Records of this node that failed their checks and were replaced by "
                "another replica's state (read repair or anti-entropy).", "counter",
                "kv_corrupt_records_repaired_total",
                (double)kvi_store_corrupt_replaced(kvi_embedded_store(n->store)));
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
    render_anti_entropy(n, b);
    if (!kvi_node_clustered((kvi_node *)n))
        return;
    metric_line(b, "The epoch of the topology record this node holds (each change of the "
                "cluster's shape raises it by one).", "gauge", "kv_ring_epoch",
                (double)kvi_membership_epoch(n->membership));
    metric_line(b, "Bytes of records this node took in by streams of topology changes "
                "(its join, or the ranges it gained).", "counter", "kv_stream_bytes_total",
                (double)atomic_load(&n->streamed_bytes));
    metric_line(b, "Streams this node is running now (0 or 1).", "gauge", "kv_streams_active",
                (double)atomic_load(&n->streams_active));
    kvi_latency_set_render(n->peer_latency, b, "kv_peer_request_duration_seconds", "peer",
                           "Time from this node's request to a peer (replication, reads of "
                           "replicas, Paxos, anti-entropy) to its answer, by peer.");
}
