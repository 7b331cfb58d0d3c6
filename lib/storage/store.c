/* storage/store.c - RocksDB setup, reads, writes and durability. */
#include "storage/store.h"
#include "storage/group_commit.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <rocksdb/c.h>
#include <xxhash.h>

#include "format/entry_hash.h"
#include "format/record.h"
#include "storage/digest.h"
#include "storage/expiry_filter.h"
#include "storage/row_cache.h"
#include "util/buf.h"
#include "util/endian.h"
#include "util/error.h"
#include "util/ticker.h"

struct kvi_store {
    rocksdb_t *db;
    rocksdb_options_t *db_options;
    rocksdb_options_t *data_options;
    rocksdb_options_t *paxos_options;   /* a hash memtable, updates in place, no expiry */
    rocksdb_block_based_table_options_t *table_options;
    rocksdb_cache_t *cache;
    rocksdb_filterpolicy_t *filter_policy; /* owned by table_options */
    rocksdb_compactionfilter_t *expiry_filter;
    rocksdb_column_family_handle_t *cf_meta;
    rocksdb_column_family_handle_t *cf_data;
    rocksdb_column_family_handle_t *cf_hints;
    rocksdb_column_family_handle_t *cf_paxos;
    rocksdb_readoptions_t *read_options;
    rocksdb_readoptions_t *scan_options; /* total order, whatever a family's prefix */
    rocksdb_writeoptions_t *write_options;
    rocksdb_writeoptions_t *synced_options; /* Paxos promises and accepts */
    rocksdb_writeoptions_t *unsynced_options; /* Paxos commits */
    const kvi_logger *log;
    char *path; /* the store's directory: its WAL files are counted there */
    /* The latest record of recently used keys (row_cache.h); NULL when
     * the store was opened without one. */
    kvi_row_cache *rows;
    /* Anti-entropy's digest of the data family (digest.h), kept current by
     * every write of it; NULL when the store keeps none. */
    kvi_digest *digest;
    int digest_in_background; /* kvi_store_config's */
    /* Records that failed their checks and were replaced by a merge. */
    atomic_uint_fast64_t corrupt_replaced;
    /* Blocks the data family's point reads found in the block cache, and
     * read from the files (block_count_*). */
    atomic_uint_fast64_t block_hits, block_reads;

    /* KV_SYNC_PERIODIC: a thread that syncs the WAL every interval. */
    uint32_t sync_interval_ms;
    kvi_ticker sync_ticker;
    /* Syncs for writers that wrote unsynced and wait (the loop's writes
     * under KV_SYNC_ALWAYS, Paxos under every policy). */
    kvi_group_commit *committer;
    int sync_always;
};

/* Maps a RocksDB error string to a status code, sets the detail message and
 * frees the string. */
static int rocks_error(char *err, const char *what)
{
    int code = KV_EIO;
    if (strstr(err, "lock") && (strstr(err, "Resource temporarily unavailable") ||
                                strstr(err, "No locks available")))
        code = KV_EBUSY;
    else if (strncmp(err, "Invalid argument", 16) == 0)
        code = KV_EINVAL;
    else if (strncmp(err, "Corruption", 10) == 0)
        code = KV_ECORRUPT;
    kvi_error(code, "%s: %s", what, err);
    rocksdb_free(err);
    return code;
}

/* Syncs the WAL: everything written before is durable. */
static int sync_wal(void *arg)
{
    kvi_store *s = arg;
    char *err = NULL;
    rocksdb_flush_wal(s->db, 1, &err);
    return err ? rocks_error(err, "syncing the write-ahead log") : KV_OK;
}

/* KV_SYNC_PERIODIC: one WAL sync per interval. */
static uint32_t sync_tick(void *arg)
{
    kvi_store *s = arg;
    char *err = NULL;
    rocksdb_flush_wal(s->db, 1, &err);
    if (err) {
        kvi_log(s->log, KV_LOG_ERROR, "periodic WAL sync failed: %s", err);
        rocksdb_free(err);
    }
    return s->sync_interval_ms;
}

static void free_options(kvi_store *s)
{
    if (s->read_options)
        rocksdb_readoptions_destroy(s->read_options);
    if (s->scan_options)
        rocksdb_readoptions_destroy(s->scan_options);
    if (s->write_options)
        rocksdb_writeoptions_destroy(s->write_options);
    if (s->synced_options)
        rocksdb_writeoptions_destroy(s->synced_options);
    if (s->unsynced_options)
        rocksdb_writeoptions_destroy(s->unsynced_options);
    if (s->data_options)
        rocksdb_options_destroy(s->data_options);
    if (s->paxos_options)
        rocksdb_options_destroy(s->paxos_options);
    if (s->db_options)
        rocksdb_options_destroy(s->db_options);
    if (s->table_options)
        rocksdb_block_based_options_destroy(s->table_options);
    if (s->expiry_filter)
        rocksdb_compactionfilter_destroy(s->expiry_filter);
    if (s->cache)
        rocksdb_cache_destroy(s->cache);
    kvi_row_cache_free(s->rows);
    s->rows = NULL;
    free(s->path);
    s->path = NULL;
}

static int check_format(kvi_store *s)
{
    char *err = NULL;
    size_t len = 0;
    char *format = rocksdb_get_cf(s->db, s->read_options, s->cf_meta,
                                  KVI_META_FORMAT_KEY, strlen(KVI_META_FORMAT_KEY),
                                  &len, &err);
    if (err)
        return rocks_error(err, "reading the store format");
    if (!format) {
        /* A new store: record its format so that a later version can tell. */
        rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
        rocksdb_writeoptions_set_sync(wo, 1);
        rocksdb_put_cf(s->db, wo, s->cf_meta, KVI_META_FORMAT_KEY,
                       strlen(KVI_META_FORMAT_KEY), KVI_META_FORMAT_VALUE,
                       strlen(KVI_META_FORMAT_VALUE), &err);
        rocksdb_writeoptions_destroy(wo);
        return err ? rocks_error(err, "writing the store format") : KV_OK;
    }
    int same = len == strlen(KVI_META_FORMAT_VALUE) &&
               memcmp(format, KVI_META_FORMAT_VALUE, len) == 0;
    rocksdb_free(format);
    if (!same)
        return kvi_error(KV_ECORRUPT, "the store's on-disk format is not one "
                                      "this version of libkv reads");
    return KV_OK;
}

/* ---------------------------------------------------- the digest's life */

static int scan_cf(kvi_store *s, rocksdb_column_family_handle_t *cf, const char *what,
                   const void *from, size_t from_len, int prefix_only, kvi_store_scan_fn fn,
                   void *ctx);

/* Meta key of the digest a clean close kept (digest.h's encoding). Open
 * takes it and deletes it before anything is written, so after a crash
 * there is none, and the digest is built again from the data. */
#define META_DIGEST_KEY "kv.digest"

static int digest_add(void *ctx, const void *key, size_t key_len, const void *value,
                      size_t value_len)
{
    if (key_len >= KVI_TOKEN_SIZE)
        kvi_digest_change(ctx, kvi_get_be64(key), 0, 0, 1,
                          kvi_entry_hash(key, key_len, value, value_len));
    return 0;
}

/* Stops a scan at its first record: the data family is not empty. */
static int any_record(void *ctx, const void *key, size_t key_len, const void *value,
                      size_t value_len)
{
    (void)key;
    (void)key_len;
    (void)value;
    (void)value_len;
    *(int *)ctx = 0;
    return 1;
}

static int meta_delete_synced(kvi_store *s, const char *name)
{
    char *err = NULL;
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(wo, 1);
    rocksdb_delete_cf(s->db, wo, s->cf_meta, name, strlen(name), &err);
    rocksdb_writeoptions_destroy(wo);
    return err ? rocks_error(err, "deleting metadata") : KV_OK;
}

/* The digest kept by the last clean close, if it is there, readable and of
 * this size; else one built by reading every record. */
static int digest_open(kvi_store *s, unsigned bits)
{
    char *blob;
    size_t len;
    kvi_digest *d = NULL;
    int rc = kvi_store_meta_get(s, META_DIGEST_KEY, &blob, &len);
    if (rc == KV_OK) {
        if (kvi_digest_decode(&d, blob, len) != KV_OK || kvi_digest_bits(d) != bits) {
            kvi_log(s->log, KV_LOG_WARN, "the anti-entropy digest kept at the last close is "
                    "unreadable or of another size; building it again from the data");
            kvi_digest_free(d);
            d = NULL;
        }
        free(blob);
        rc = meta_delete_synced(s, META_DIGEST_KEY);
        if (rc != KV_OK) {
            kvi_digest_free(d);
            return rc;
        }
    } else if (rc != KV_ENOTFOUND) {
        return rc;
    }
    if (!d && s->digest_in_background) {
        d = kvi_digest_new(bits);
        if (!d)
            return kvi_error(KV_ENOMEM, "out of memory for the anti-entropy digest");
        int empty = 1;
        rc = scan_cf(s, s->cf_data, "the data", NULL, 0, 0, any_record, &empty);
        if (rc != KV_OK) {
            kvi_digest_free(d);
            return rc;
        }
        if (empty) {
            kvi_digest_set_ready(d, 1); /* nothing to build it from */
        } else {
            kvi_log(s->log, KV_LOG_INFO, "no anti-entropy digest kept by a clean close: "
                    "building it from the data in the background");
        }
        s->digest = d;
        return KV_OK;
    }
    if (!d) {
        d = kvi_digest_new(bits);
        if (!d)
            return kvi_error(KV_ENOMEM, "out of memory for the anti-entropy digest");
        /* The iterator's own values: nothing writes while the store
         * opens, so none can be half updated in place (kvi_store_data_scan
         * reads each key again for that, at twice the cost). */
        rc = scan_cf(s, s->cf_data, "the data", NULL, 0, 0, digest_add, d);
        if (rc != KV_OK) {
            kvi_digest_free(d);
            return rc;
        }
        uint64_t h, keys;
        kvi_digest_range(d, 0, kvi_digest_segments(d), &h, &keys);
        kvi_log(s->log, KV_LOG_INFO, "built the anti-entropy digest from the data: %llu keys",
                (unsigned long long)keys);
    }
    kvi_digest_set_ready(d, 1);
    s->digest = d;
    return KV_OK;
}

/* The recomputation of a run of segments. */
typedef struct recompute {
    kvi_digest *d;
    uint32_t first, end;
    uint64_t *hashes, *counts;
} recompute;

static int recompute_add(void *ctx, const void *key, size_t key_len, const void *value,
                         size_t value_len)
{
    recompute *r = ctx;
    if (key_len < KVI_TOKEN_SIZE)
        return 0;
    size_t seg = kvi_digest_segment_of(r->d, kvi_get_be64(key));
    if (seg >= r->end)
        return 1;
    if (seg >= r->first) {
        r->hashes[seg - r->first] ^= kvi_entry_hash(key, key_len, value, value_len);
        r->counts[seg - r->first]++;
    }
    return 0;
}

int kvi_store_digest_recompute(kvi_store *s, uint32_t first, uint32_t end, uint64_t *hashes,
                               uint64_t *counts)
{
    if (!s->digest || first >= end || end > kvi_digest_segments(s->digest))
        return kvi_error(KV_EINVAL, "no such digest segments");
    memset(hashes, 0, (end - first) * sizeof *hashes);
    memset(counts, 0, (end - first) * sizeof *counts);
    recompute r = {s->digest, first, end, hashes, counts};
    /* The first token of segment `first`: no storage key is exactly these
     * 8 bytes, so the scan "after" them starts at the segment. */
    unsigned char from[KVI_TOKEN_SIZE];
    kvi_put_be64(from, (uint64_t)first << (64u - kvi_digest_bits(s->digest)));
    return kvi_store_data_scan(s, from, sizeof from, recompute_add, &r);
}

/* At a clean close: keeps the digest for the next open. */
static void digest_keep(kvi_store *s)
{
    kvi_buf b = {0};
    kvi_digest_encode(s->digest, &b);
    int rc = b.failed ? kvi_error(KV_ENOMEM, "out of memory") :
                        kvi_store_meta_put(s, META_DIGEST_KEY, b.data, b.len);
    if (rc != KV_OK)
        kvi_log(s->log, KV_LOG_WARN, "could not keep the anti-entropy digest (%s); the next "
                "start builds it again", kvi_error_last());
    kvi_buf_free(&b);
}

kvi_digest *kvi_store_digest(kvi_store *s)
{
    return s->digest;
}

void kvi_store_count_corrupt_replaced(kvi_store *s, uint64_t n)
{
    atomic_fetch_add(&s->corrupt_replaced, n);
}

uint64_t kvi_store_corrupt_replaced(kvi_store *s)
{
    return atomic_load(&s->corrupt_replaced);
}

int kvi_store_open(kvi_store **out, const kvi_store_config *cfg)
{
    *out = NULL;
    char marker[4200];
    struct stat st;
    snprintf(marker, sizeof marker, "%s/%s", cfg->path, KVI_RESTORE_MARKER);
    if (lstat(marker, &st) == 0)
        return kvi_error(KV_EINVAL, "%s holds %s: a restore into it did not finish; empty the "
                                    "directory and restore again", cfg->path,
                         KVI_RESTORE_MARKER);
    kvi_store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(cfg->path))) {
        free(s);
        return kvi_error(KV_ENOMEM, "out of memory opening the store");
    }
    s->log = cfg->log;
    s->rows = kvi_row_cache_new(cfg->row_cache_bytes);
    if (cfg->row_cache_bytes && !s->rows) {
        free(s);
        return kvi_error(KV_ENOMEM, "out of memory opening the store");
    }

    s->cache = rocksdb_cache_create_lru(cfg->block_cache_bytes);
    s->table_options = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(s->table_options, s->cache);
    /* Full (not block-based) bloom filters: a get of an absent key, which
     * every first write of a key does, usually touches no data block. */
    s->filter_policy = rocksdb_filterpolicy_create_bloom_full(10);
    rocksdb_block_based_options_set_filter_policy(s->table_options, s->filter_policy);

    s->db_options = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(s->db_options, (unsigned char)(cfg->create_if_missing != 0));
    rocksdb_options_set_create_missing_column_families(s->db_options, 1);
    /* With a sync per write group, writers waiting for the group's fsync
     * block instead of spinning: the spinning took the CPU that the group
     * leader and the network needed (+30% replicated writes on 2 cores).
     * Without syncs the wait is short and spinning pays (3x for 2 embedded
     * writers), so it stays. Measured in docs/BENCHMARKS.md. */
    rocksdb_options_set_enable_write_thread_adaptive_yield(s->db_options,
                                                           cfg->sync != KV_SYNC_ALWAYS);
    rocksdb_options_increase_parallelism(s->db_options, 2);
    rocksdb_options_set_block_based_table_factory(s->db_options, s->table_options);

    s->data_options = rocksdb_options_create_copy(s->db_options);
    rocksdb_options_set_compression(s->data_options, rocksdb_lz4_compression);
    /* Every put reads its key first (for the version), and most keys of a
     * fresh write are absent: a whole-key bloom filter on the memtable
     * answers those reads without a skip-list search (measured: +19% on
     * fillrandom, see docs/BENCHMARKS.md). */
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(s->data_options, 0.02);
    rocksdb_options_set_memtable_whole_key_filtering(s->data_options, 1);
    /* A key written again while its last record is still in the memtable
     * is updated in place when the new record is no larger (RocksDB's
     * inplace_update_support, made for update-heavy keys): the memtable
     * keeps one entry per key instead of one per write, so the
     * read-before-write of every put searches a skip list of the live keys,
     * not of every version written since the last flush. The skip-list
     * search was a quarter of a replicated write's CPU; with this, 3-node
     * QUORUM writes on a hot key set ran +26-44% (docs/BENCHMARKS.md).
     * The price: iterators over the data family see no point-in-time state
     * (scans promise none; backups flush first), no backward iteration on
     * memtables (nothing here iterates backward), and memtable writes are
     * not concurrent (the loop writes from one thread; RocksDB's group
     * commit still batches writers). */
    rocksdb_options_set_allow_concurrent_memtable_write(s->db_options, 0);
    rocksdb_options_set_allow_concurrent_memtable_write(s->data_options, 0);
    rocksdb_options_set_inplace_update_support(s->data_options, 1);
    /* The Paxos family is only ever read by key: each promise, accept and
     * commit reads its key's record and rewrites it (three times per round
     * at each acceptor). Its memtable is a hash table of linked lists keyed
     * by the ring token that begins every key, not a skip list: a skip-list
     * search, one cache miss per level, was a fifth of a SERIAL CAS's
     * server CPU, and a SERIAL CAS ran +40% without it (docs/BENCHMARKS.md).
     * Records are updated in place, as the data family's are, so a bucket
     * holds one entry per key rather than one per write. The price, paid
     * only by the sweeper's scan (once a minute): a scan must ask for total
     * order (scan_options), and copies the memtable into order first; the
     * scan may see a record changing under it, and takes nothing from it
     * on trust (each candidate is loaded again under its key's lock). The
     * data family keeps its skip list: scans of it are frequent. */
    s->paxos_options = rocksdb_options_create_copy(s->db_options);
    rocksdb_options_set_inplace_update_support(s->paxos_options, 1);
    rocksdb_options_set_prefix_extractor(s->paxos_options,
                                         rocksdb_slicetransform_create_fixed_prefix(KVI_TOKEN_SIZE));
    rocksdb_options_set_hash_link_list_rep(s->paxos_options, 1u << 16);
    s->expiry_filter = kvi_expiry_filter_create(cfg->grace_ms, cfg->digest_bits != 0);
    s->digest_in_background = cfg->digest_in_background;
    if (!s->expiry_filter) {
        free_options(s);
        free(s);
        return kvi_error(KV_ENOMEM, "out of memory opening the store");
    }
    rocksdb_options_set_compaction_filter(s->data_options, s->expiry_filter);

    s->read_options = rocksdb_readoptions_create();
    s->scan_options = rocksdb_readoptions_create();
    rocksdb_readoptions_set_total_order_seek(s->scan_options, 1);
    s->write_options = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->write_options, cfg->sync == KV_SYNC_ALWAYS);
    s->synced_options = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->synced_options, 1);
    s->unsynced_options = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->unsynced_options, 0);

    /* Hints and Paxos state have the meta family's plain options: no
     * expiry filter (a hint's age is judged by the hint window; a promise
     * must never expire, ScyllaDB 6149). */
    const char *names[4] = {KVI_CF_META, KVI_CF_DATA, KVI_CF_HINTS, KVI_CF_PAXOS};
    const rocksdb_options_t *cf_options[4] = {s->db_options, s->data_options, s->db_options,
                                              s->paxos_options};
    rocksdb_column_family_handle_t *handles[4] = {NULL, NULL, NULL, NULL};
    char *err = NULL;
    s->db = rocksdb_open_column_families(s->db_options, cfg->path, 4, names,
                                         cf_options, handles, &err);
    if (err) {
        int code = rocks_error(err, "opening the store");
        free_options(s);
        free(s);
        return code;
    }
    s->cf_meta = handles[0];
    s->cf_data = handles[1];
    s->cf_hints = handles[2];
    s->cf_paxos = handles[3];

    int rc = check_format(s);
    if (rc == KV_OK && cfg->digest_bits)
        rc = digest_open(s, cfg->digest_bits);
    if (rc == KV_OK && cfg->sync == KV_SYNC_PERIODIC) {
        s->sync_interval_ms = cfg->sync_interval_ms;
        if (kvi_ticker_start(&s->sync_ticker, sync_tick, s) != 0)
            rc = kvi_error(KV_ENOMEM, "cannot start the WAL sync thread");
    }
    /* Under every policy: Paxos promises and accepts are synced whatever
     * the policy, and a loop makes them durable through it. */
    if (rc == KV_OK)
        rc = kvi_group_commit_start(&s->committer, sync_wal, s, s->log);
    s->sync_always = cfg->sync == KV_SYNC_ALWAYS;
    if (rc != KV_OK) {
        kvi_store_close(s);
        return rc;
    }
    if (cfg->sync == KV_SYNC_PERIODIC)
        kvi_log(s->log, KV_LOG_INFO, "opened store %s (sync periodic: the WAL is synced every "
                "%u ms)", cfg->path, s->sync_interval_ms);
    else
        kvi_log(s->log, KV_LOG_INFO, "opened store %s (sync %s)", cfg->path,
                cfg->sync == KV_SYNC_NONE ? "none: the OS writes the WAL when it will"
                                          : "always: each write's WAL is synced before it "
                                            "is acknowledged");
    *out = s;
    return KV_OK;
}

void kvi_store_close(kvi_store *s)
{
    if (!s)
        return;
    kvi_ticker_stop(&s->sync_ticker);
    kvi_group_commit_stop(s->committer);
    /* One still being built holds nothing yet to keep: the next open
     * builds it again. */
    if (s->db && s->digest && kvi_digest_ready(s->digest))
        digest_keep(s);
    kvi_digest_free(s->digest);
    if (s->db) {
        char *err = NULL;
        rocksdb_flush_wal(s->db, 1, &err);
        if (err) {
            kvi_log(s->log, KV_LOG_ERROR, "final WAL sync failed: %s", err);
            rocksdb_free(err);
        }
        rocksdb_column_family_handle_destroy(s->cf_data);
        rocksdb_column_family_handle_destroy(s->cf_hints);
        rocksdb_column_family_handle_destroy(s->cf_paxos);
        rocksdb_column_family_handle_destroy(s->cf_meta);
        rocksdb_close(s->db);
    }
    free_options(s);
    free(s);
}

/* The block cache's hits and misses of the data family's point reads are
 * counted by RocksDB's thread-local perf context, at its counting level (no
 * timers), switched on only around those reads: RocksDB's statistics
 * object would count them too, but cost every read 15% (embedded
 * readrandom, three alternating pairs). A thread's own use of the perf
 * context is not kept across these reads. */
typedef struct block_count {
    rocksdb_perfcontext_t *pc;
} block_count;

static void block_count_start(block_count *c)
{
    c->pc = rocksdb_perfcontext_create();
    if (!c->pc)
        return;
    rocksdb_set_perf_level(rocksdb_enable_count);
    rocksdb_perfcontext_reset(c->pc);
}

static void block_count_end(kvi_store *s, block_count *c)
{
    if (!c->pc)
        return;
    rocksdb_set_perf_level(rocksdb_disable);
    uint64_t hits = rocksdb_perfcontext_metric(c->pc, rocksdb_block_cache_hit_count);
    uint64_t reads = rocksdb_perfcontext_metric(c->pc, rocksdb_block_read_count);
    if (hits)
        atomic_fetch_add_explicit(&s->block_hits, hits, memory_order_relaxed);
    if (reads)
        atomic_fetch_add_explicit(&s->block_reads, reads, memory_order_relaxed);
    rocksdb_perfcontext_destroy(c->pc);
}

/* A record from the row cache, or else from RocksDB; the RocksDB read
 * fills the cache when `fill` (a scan's reads pass through without
 * pushing the working set out). */
static int get_record(kvi_store *s, const void *skey, size_t skey_len, kvi_slice *out, int fill)
{
    *out = (kvi_slice){0};
    uint64_t ticket;
    char *copy;
    if (kvi_row_cache_get(s->rows, skey, skey_len, &copy, &out->len, &ticket)) {
        out->data = out->copy = copy;
        return KV_OK;
    }
    char *err = NULL;
    block_count blocks;
    block_count_start(&blocks);
    rocksdb_pinnableslice_t *pin = rocksdb_get_pinned_cf(
        s->db, s->read_options, s->cf_data, skey, skey_len, &err);
    block_count_end(s, &blocks);
    if (err)
        return rocks_error(err, "reading a record");
    if (!pin)
        return KV_ENOTFOUND;
    out->pin = pin;
    out->data = rocksdb_pinnableslice_value(pin, &out->len);
    if (fill)
        kvi_row_cache_fill(s->rows, skey, skey_len, out->data, out->len, ticket);
    return KV_OK;
}

int kvi_store_get(kvi_store *s, const void *skey, size_t skey_len, kvi_slice *out)
{
    return get_record(s, skey, skey_len, out, 1);
}

int kvi_store_multi_get(kvi_store *s, size_t n, const unsigned char *const *skeys,
                        const size_t *skey_lens, kvi_slice *out, int *rcs)
{
    size_t cap = n ? n : 1;
    rocksdb_pinnableslice_t **pins = calloc(cap, sizeof *pins);
    char **errs = calloc(cap, sizeof *errs);
    /* The keys the cache did not hold, and their tickets. */
    const char **miss_keys = malloc(cap * sizeof *miss_keys);
    size_t *miss_lens = malloc(cap * sizeof *miss_lens);
    size_t *miss_at = malloc(cap * sizeof *miss_at);
    uint64_t *tickets = malloc(cap * sizeof *tickets);
    if (!pins || !errs || !miss_keys || !miss_lens || !miss_at || !tickets) {
        free(pins);
        free(errs);
        free(miss_keys);
        free(miss_lens);
        free(miss_at);
        free(tickets);
        return kvi_error(KV_ENOMEM, "out of memory reading %zu records", n);
    }
    size_t misses = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = (kvi_slice){0};
        char *copy;
        uint64_t ticket;
        if (kvi_row_cache_get(s->rows, skeys[i], skey_lens[i], &copy, &out[i].len, &ticket)) {
            out[i].data = out[i].copy = copy;
            rcs[i] = KV_OK;
            continue;
        }
        miss_keys[misses] = (const char *)skeys[i];
        miss_lens[misses] = skey_lens[i];
        miss_at[misses] = i;
        tickets[misses++] = ticket;
    }
    if (misses) {
        block_count blocks;
        block_count_start(&blocks);
        rocksdb_batched_multi_get_cf(s->db, s->read_options, s->cf_data, misses, miss_keys,
                                     miss_lens, pins, errs, 0);
        block_count_end(s, &blocks);
    }
    for (size_t m = 0; m < misses; m++) {
        size_t i = miss_at[m];
        if (errs[m]) {
            rcs[i] = rocks_error(errs[m], "reading a record");
        } else if (!pins[m]) {
            rcs[i] = KV_ENOTFOUND;
        } else {
            out[i].pin = pins[m];
            out[i].data = rocksdb_pinnableslice_value(pins[m], &out[i].len);
            kvi_row_cache_fill(s->rows, miss_keys[m], miss_lens[m], out[i].data, out[i].len,
                               tickets[m]);
            rcs[i] = KV_OK;
        }
    }
    free(pins);
    free(errs);
    free(miss_keys);
    free(miss_lens);
    free(miss_at);
    free(tickets);
    return KV_OK;
}

void kvi_slice_release(kvi_slice *slice)
{
    if (slice->pin)
        rocksdb_pinnableslice_destroy(slice->pin);
    free(slice->copy);
    slice->pin = NULL;
    slice->copy = NULL;
}

/* The entry hash of skey's record as it stands (*had 0: none; none either
 * when the store keeps no digest, which alone needs it), read before
 * a write replaces it. Every writer of the data family holds the key's
 * lock across its read and its write, so nothing changes it meanwhile. */
static int current_entry(kvi_store *s, const void *skey, size_t skey_len, int *had,
                         uint64_t *hash)
{
    *had = 0;
    *hash = 0;
    if (!s->digest)
        return KV_OK; /* nothing needs it */
    if (kvi_row_cache_entry_hash(s->rows, skey, skey_len, hash)) {
        *had = 1;
        return KV_OK;
    }
    kvi_slice rec;
    int rc = get_record(s, skey, skey_len, &rec, 0);
    if (rc == KV_ENOTFOUND)
        return KV_OK;
    if (rc != KV_OK)
        return rc;
    *had = 1;
    *hash = kvi_entry_hash(skey, skey_len, rec.data, rec.len);
    kvi_slice_release(&rec);
    return KV_OK;
}

static int put_record(kvi_store *s, const rocksdb_writeoptions_t *wo, const void *skey,
                      size_t skey_len, const void *rec, size_t rec_len)
{
    int had;
    uint64_t old;
    int rc = current_entry(s, skey, skey_len, &had, &old);
    if (rc != KV_OK)
        return rc;
    char *err = NULL;
    rocksdb_put_cf(s->db, wo, s->cf_data, skey, skey_len, rec, rec_len, &err);
    if (err)
        return rocks_error(err, "writing a record");
    if (s->digest) {
        uint64_t now = kvi_entry_hash(skey, skey_len, rec, rec_len);
        kvi_row_cache_put_hashed(s->rows, skey, skey_len, rec, rec_len, now);
        kvi_digest_change(s->digest, kvi_get_be64(skey), had, old, 1, now);
    } else {
        kvi_row_cache_put(s->rows, skey, skey_len, rec, rec_len);
    }
    return KV_OK;
}

int kvi_store_purge(kvi_store *s, const void *skey, size_t skey_len)
{
    int had;
    uint64_t old;
    int rc = current_entry(s, skey, skey_len, &had, &old);
    if (rc != KV_OK)
        return rc;
    char *err = NULL;
    rocksdb_delete_cf(s->db, s->write_options, s->cf_data, skey, skey_len, &err);
    if (err)
        return rocks_error(err, "purging a record");
    kvi_row_cache_forget(s->rows, skey, skey_len);
    if (s->digest && had)
        kvi_digest_change(s->digest, kvi_get_be64(skey), 1, old, 0, 0);
    return KV_OK;
}

int kvi_store_put(kvi_store *s, const void *skey, size_t skey_len,
                  const void *rec, size_t rec_len)
{
    return put_record(s, s->write_options, skey, skey_len, rec, rec_len);
}

int kvi_store_put_unsynced(kvi_store *s, const void *skey, size_t skey_len, const void *rec,
                           size_t rec_len)
{
    return put_record(s, s->unsynced_options, skey, skey_len, rec, rec_len);
}

kvi_group_commit *kvi_store_committer(kvi_store *s)
{
    return s->committer;
}

int kvi_store_sync_always(const kvi_store *s)
{
    return s->sync_always;
}

struct kvi_store_batch {
    rocksdb_writebatch_t *wb;
    rocksdb_column_family_handle_t *cf; /* the store's data family */
    rocksdb_column_family_handle_t *cf_paxos;
    /* The data puts again, for the row cache once the write is accepted:
     * (u32 key length, u32 record length, key, record) each. */
    kvi_buf rows;
    int rows_failed; /* one could not be noted: the write clears the cache */
};

kvi_store_batch *kvi_store_batch_new(kvi_store *s)
{
    kvi_store_batch *b = calloc(1, sizeof *b);
    if (b) {
        b->wb = rocksdb_writebatch_create();
        b->cf = s->cf_data;
        b->cf_paxos = s->cf_paxos;
    }
    return b;
}

void kvi_store_batch_put(kvi_store_batch *b, const void *skey, size_t skey_len,
                         const void *rec, size_t rec_len)
{
    rocksdb_writebatch_put_cf(b->wb, b->cf, skey, skey_len, rec, rec_len);
    if (skey_len > UINT32_MAX || rec_len > UINT32_MAX) {
        b->rows_failed = 1;
        return;
    }
    uint32_t lens[2] = {(uint32_t)skey_len, (uint32_t)rec_len}; /* host order */
    kvi_buf_raw(&b->rows, lens, sizeof lens);
    kvi_buf_raw(&b->rows, skey, skey_len);
    kvi_buf_raw(&b->rows, rec, rec_len);
    if (b->rows.failed)
        b->rows_failed = 1;
}

void kvi_store_batch_put_paxos(kvi_store_batch *b, const void *skey, size_t skey_len,
                               const void *rec, size_t rec_len)
{
    rocksdb_writebatch_put_cf(b->wb, b->cf_paxos, skey, skey_len, rec, rec_len);
}

/* One data put of a batch, for the digest: its key's entry before and
 * after. */
typedef struct digest_step {
    const unsigned char *key;
    uint32_t key_len;
    int had;
    uint64_t old, now;
} digest_step;

/* After RocksDB accepted b: its data puts into the row cache, in order,
 * with their entry hashes when the digest planned them (steps, one per
 * put; NULL: none). */
static void cache_batch(kvi_store *s, const kvi_store_batch *b, const digest_step *steps)
{
    if (!s->rows || (!b->rows_failed && b->rows.len == 0))
        return; /* no cache, or no data put (Paxos records only) */
    if (b->rows_failed) {
        kvi_row_cache_clear(s->rows);
        return;
    }
    const unsigned char *p = b->rows.data, *end = p + b->rows.len;
    while (p < end) {
        uint32_t klen, rlen;
        memcpy(&klen, p, 4);
        memcpy(&rlen, p + 4, 4);
        if (steps)
            kvi_row_cache_put_hashed(s->rows, p + 8, klen, p + 8 + klen, rlen, (steps++)->now);
        else
            kvi_row_cache_put(s->rows, p + 8, klen, p + 8 + klen, rlen);
        p += 8 + (size_t)klen + rlen;
    }
}

/* The digest's changes for b's data puts, in order: *out (malloc'd, *n of
 * them; NULL with 0). A key put twice in one batch replaces, the second
 * time, what the first put. */
static int plan_digest(kvi_store *s, const kvi_store_batch *b, digest_step **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (b->rows_failed)
        return kvi_error(KV_ENOMEM, "out of memory noting a batch's records");
    if (b->rows.len == 0)
        return KV_OK; /* Paxos records only (and no buffer to walk) */
    size_t count = 0;
    for (const unsigned char *p = b->rows.data, *end = p + b->rows.len; p < end;) {
        uint32_t lens[2];
        memcpy(lens, p, sizeof lens);
        p += sizeof lens + (size_t)lens[0] + lens[1];
        count++;
    }
    if (count == 0)
        return KV_OK;
    /* An open-addressed index of the steps by key, for the repeats. */
    size_t slots = 16;
    while (slots < count * 2)
        slots *= 2;
    digest_step *steps = malloc(count * sizeof *steps);
    size_t *index = calloc(slots, sizeof *index); /* step + 1; 0 = empty */
    if (!steps || !index) {
        free(steps);
        free(index);
        return kvi_error(KV_ENOMEM, "out of memory planning a batch's digest");
    }
    size_t i = 0;
    for (const unsigned char *p = b->rows.data, *end = p + b->rows.len; p < end; i++) {
        uint32_t lens[2];
        memcpy(lens, p, sizeof lens);
        digest_step *st = &steps[i];
        st->key = p + sizeof lens;
        st->key_len = lens[0];
        st->now = kvi_entry_hash(st->key, lens[0], st->key + lens[0], lens[1]);
        p += sizeof lens + (size_t)lens[0] + lens[1];
        size_t slot = (size_t)XXH3_64bits(st->key, st->key_len) & (slots - 1);
        for (; index[slot]; slot = (slot + 1) & (slots - 1)) {
            const digest_step *prev = &steps[index[slot] - 1];
            if (prev->key_len == st->key_len && memcmp(prev->key, st->key, st->key_len) == 0)
                break;
        }
        int rc = KV_OK;
        if (index[slot]) {
            st->had = 1;
            st->old = steps[index[slot] - 1].now;
        } else {
            rc = current_entry(s, st->key, st->key_len, &st->had, &st->old);
        }
        if (rc != KV_OK) {
            free(steps);
            free(index);
            return rc;
        }
        index[slot] = i + 1;
    }
    free(index);
    *out = steps;
    *n = count;
    return KV_OK;
}

static int write_batch(kvi_store *s, kvi_store_batch *b, const rocksdb_writeoptions_t *wo,
                       const char *what)
{
    digest_step *steps = NULL;
    size_t n = 0;
    if (s->digest) {
        int rc = plan_digest(s, b, &steps, &n);
        if (rc != KV_OK)
            return rc;
    }
    char *err = NULL;
    rocksdb_write(s->db, wo, b->wb, &err);
    if (err) {
        free(steps);
        return rocks_error(err, what);
    }
    cache_batch(s, b, steps);
    for (size_t i = 0; i < n; i++)
        kvi_digest_change(s->digest, kvi_get_be64(steps[i].key), steps[i].had, steps[i].old,
                          1, steps[i].now);
    free(steps);
    return KV_OK;
}

int kvi_store_write(kvi_store *s, kvi_store_batch *b)
{
    return write_batch(s, b, s->write_options, "writing a batch");
}

int kvi_store_write_synced(kvi_store *s, kvi_store_batch *b)
{
    return write_batch(s, b, s->synced_options, "writing a synced batch");
}

int kvi_store_write_unsynced(kvi_store *s, kvi_store_batch *b)
{
    return write_batch(s, b, s->unsynced_options, "writing a batch");
}

int kvi_store_paxos_get(kvi_store *s, const void *skey, size_t skey_len, kvi_slice *out)
{
    char *err = NULL;
    rocksdb_pinnableslice_t *pin = rocksdb_get_pinned_cf(
        s->db, s->read_options, s->cf_paxos, skey, skey_len, &err);
    if (err)
        return rocks_error(err, "reading a Paxos record");
    if (!pin)
        return KV_ENOTFOUND;
    *out = (kvi_slice){.pin = pin};
    out->data = rocksdb_pinnableslice_value(pin, &out->len);
    return KV_OK;
}

void kvi_store_batch_free(kvi_store_batch *b)
{
    if (!b)
        return;
    rocksdb_writebatch_destroy(b->wb);
    kvi_buf_free(&b->rows);
    free(b);
}

int kvi_store_meta_get(kvi_store *s, const char *name, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    char *err = NULL;
    size_t n = 0;
    char *v = rocksdb_get_cf(s->db, s->read_options, s->cf_meta, name, strlen(name), &n, &err);
    if (err)
        return rocks_error(err, "reading metadata");
    if (!v)
        return KV_ENOTFOUND;
    *out = malloc(n + 1);
    if (*out) {
        memcpy(*out, v, n);
        (*out)[n] = 0;
        *len = n;
    }
    rocksdb_free(v);
    return *out ? KV_OK : kvi_error(KV_ENOMEM, "out of memory reading metadata");
}

int kvi_store_meta_put(kvi_store *s, const char *name, const void *value, size_t len)
{
    char *err = NULL;
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(wo, 1);
    rocksdb_put_cf(s->db, wo, s->cf_meta, name, strlen(name), value, len, &err);
    rocksdb_writeoptions_destroy(wo);
    return err ? rocks_error(err, "writing metadata") : KV_OK;
}

int kvi_store_hint_put(kvi_store *s, const void *hkey, size_t hkey_len, const void *value,
                       size_t value_len)
{
    char *err = NULL;
    rocksdb_put_cf(s->db, s->write_options, s->cf_hints, hkey, hkey_len, value, value_len, &err);
    return err ? rocks_error(err, "writing a hint") : KV_OK;
}

int kvi_store_hint_delete(kvi_store *s, const void *hkey, size_t hkey_len)
{
    char *err = NULL;
    rocksdb_delete_cf(s->db, s->write_options, s->cf_hints, hkey, hkey_len, &err);
    return err ? rocks_error(err, "deleting a hint") : KV_OK;
}

/* Walks cf in key order from `from` (from_len 0: the first key), until fn
 * returns non-zero; with `prefix_only`, only while keys start with `from`. */
static int scan_cf(kvi_store *s, rocksdb_column_family_handle_t *cf, const char *what,
                   const void *from, size_t from_len, int prefix_only, kvi_store_scan_fn fn,
                   void *ctx)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, s->scan_options, cf);
    if (!it)
        return kvi_error(KV_ENOMEM, "out of memory scanning %s", what);
    if (from_len)
        rocksdb_iter_seek(it, from, from_len);
    else
        rocksdb_iter_seek_to_first(it);
    int rc = KV_OK;
    for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (prefix_only && from_len && (klen < from_len || memcmp(k, from, from_len) != 0))
            break;
        const char *v = rocksdb_iter_value(it, &vlen);
        if (fn(ctx, k, klen, v, vlen) != 0)
            break;
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    if (err)
        rc = rocks_error(err, what);
    rocksdb_iter_destroy(it);
    return rc;
}

int kvi_store_hint_scan(kvi_store *s, const void *prefix, size_t prefix_len,
                        kvi_store_scan_fn fn, void *ctx)
{
    return scan_cf(s, s->cf_hints, "hints", prefix, prefix_len, 1, fn, ctx);
}

/* kvi_store_data_scan's walk: the caller's function and where it stands. */
typedef struct data_walk {
    kvi_store *s;
    const void *after;
    size_t after_len;
    kvi_store_scan_fn fn;
    void *ctx;
    int rc;
} data_walk;

static int data_record(void *ctx, const void *key, size_t key_len, const void *value,
                       size_t value_len)
{
    (void)value;
    (void)value_len;
    data_walk *w = ctx;
    if (w->after_len && key_len == w->after_len && memcmp(key, w->after, key_len) == 0)
        return 0; /* strictly after */
    /* The record itself comes from a point read: the data family updates
     * memtable records in place, under a lock that a get takes and an
     * iterator does not, so the iterator's copy of a key written meanwhile
     * could be half old, half new. */
    kvi_slice rec;
    int got = get_record(w->s, key, key_len, &rec, 0);
    if (got == KV_ENOTFOUND)
        return 0;
    if (got != KV_OK) {
        w->rc = got;
        return 1;
    }
    int stop = w->fn(w->ctx, key, key_len, rec.data, rec.len);
    kvi_slice_release(&rec);
    return stop;
}

int kvi_store_data_scan(kvi_store *s, const void *after, size_t after_len,
                        kvi_store_scan_fn fn, void *ctx)
{
    data_walk w = {s, after, after_len, fn, ctx, KV_OK};
    int rc = scan_cf(s, s->cf_data, "the data", after, after_len, 0, data_record, &w);
    return w.rc != KV_OK ? w.rc : rc;
}

static uint64_t cf_property(kvi_store *s, const char *name)
{
    uint64_t n = 0;
    if (rocksdb_property_int_cf(s->db, s->cf_data, name, &n) != 0)
        return 0;
    return n;
}

void kvi_store_data_figures(kvi_store *s, uint64_t *estimated_keys, uint64_t *live_sst_bytes,
                            uint64_t *total_sst_bytes)
{
    *estimated_keys = cf_property(s, "rocksdb.estimate-num-keys");
    *live_sst_bytes = cf_property(s, "rocksdb.live-sst-files-size");
    *total_sst_bytes = cf_property(s, "rocksdb.total-sst-files-size");
}

/* A DB-wide integer property, or 0. */
static uint64_t db_property(kvi_store *s, const char *name)
{
    uint64_t n = 0;
    return rocksdb_property_int(s->db, name, &n) == 0 ? n : 0;
}

/* A per-family property summed over the four families. */
static uint64_t families_property(kvi_store *s, const char *name)
{
    rocksdb_column_family_handle_t *cfs[] = {s->cf_meta, s->cf_data, s->cf_hints, s->cf_paxos};
    uint64_t sum = 0;
    for (size_t i = 0; i < sizeof cfs / sizeof cfs[0]; i++) {
        uint64_t n = 0;
        if (rocksdb_property_int_cf(s->db, cfs[i], name, &n) == 0)
            sum += n;
    }
    return sum;
}

/* The bytes of the WAL's files (NNNNNN.log in the store's directory):
 * RocksDB 7.8 has no property for them. */
static uint64_t wal_bytes(const kvi_store *s)
{
    DIR *d = s->path ? opendir(s->path) : NULL;
    if (!d)
        return 0;
    uint64_t sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".log") != 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, 0) == 0 && S_ISREG(st.st_mode))
            sum += (uint64_t)st.st_size;
    }
    closedir(d);
    return sum;
}

void kvi_store_engine_figures_get(kvi_store *s, kvi_store_engine_figures *out)
{
    *out = (kvi_store_engine_figures){0};
    out->memtable_bytes = families_property(s, "rocksdb.cur-size-all-mem-tables");
    out->pending_compaction_bytes = families_property(s, "rocksdb.estimate-pending-compaction-bytes");
    out->running_compactions = db_property(s, "rocksdb.num-running-compactions");
    out->running_flushes = db_property(s, "rocksdb.num-running-flushes");
    out->wal_bytes = wal_bytes(s);
    if (s->cache) {
        out->block_cache_bytes = rocksdb_cache_get_usage(s->cache);
        out->block_cache_capacity = rocksdb_cache_get_capacity(s->cache);
    }
    out->block_cache_hits = atomic_load_explicit(&s->block_hits, memory_order_relaxed);
    out->block_cache_misses = atomic_load_explicit(&s->block_reads, memory_order_relaxed);
}

void kvi_store_row_cache_figures(kvi_store *s, kvi_row_cache_figures *out)
{
    kvi_row_cache_figures_get(s->rows, out);
}

int kvi_store_paxos_scan(kvi_store *s, kvi_store_scan_fn fn, void *ctx)
{
    return scan_cf(s, s->cf_paxos, "Paxos records", NULL, 0, 0, fn, ctx);
}

int kvi_store_paxos_delete(kvi_store *s, const void *skey, size_t skey_len)
{
    char *err = NULL;
    rocksdb_delete_cf(s->db, s->write_options, s->cf_paxos, skey, skey_len, &err);
    return err ? rocks_error(err, "deleting a Paxos record") : KV_OK;
}

int kvi_store_delete_tokens(kvi_store *s, uint64_t first, uint64_t last)
{
    unsigned char begin[8];
    kvi_put_be64(begin, first);
    /* The end is excluded: the next token's first key, or past every key
     * of the last token (its 8 bytes, then more 0xff than a key can hold). */
    size_t end_len = last == UINT64_MAX ? 8u + KV_MAX_KEY_SIZE_LIMIT + 1u : 8u;
    unsigned char *end = malloc(end_len);
    if (!end)
        return kvi_error(KV_ENOMEM, "out of memory deleting a token range");
    if (last == UINT64_MAX)
        memset(end, 0xff, end_len);
    else
        kvi_put_be64(end, last + 1);
    char *err = NULL;
    rocksdb_delete_range_cf(s->db, s->write_options, s->cf_data, (const char *)begin,
                            sizeof begin, (const char *)end, end_len, &err);
    free(end);
    kvi_row_cache_clear(s->rows);
    return err ? rocks_error(err, "deleting a token range") : KV_OK;
}

int kvi_store_compact(kvi_store *s)
{
    rocksdb_compact_range_cf(s->db, s->cf_data, NULL, 0, NULL, 0);
    /* The expiry filter may have dropped records the cache still holds. */
    kvi_row_cache_clear(s->rows);
    return KV_OK;
}

int kvi_store_checkpoint(kvi_store *s, const char *dir)
{
    char *err = NULL;
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(s->db, &err);
    if (err)
        return rocks_error(err, "starting a checkpoint");
    /* log_size_for_flush 0: always flush the memtables first, so the
     * checkpoint holds every write in sorted files, not only in a copy of
     * the write-ahead log. */
    rocksdb_checkpoint_create(cp, dir, 0, &err);
    rocksdb_checkpoint_object_destroy(cp);
    return err ? rocks_error(err, "creating a checkpoint") : KV_OK;
}

uint64_t kvi_store_estimate_keys(kvi_store *s)
{
    uint64_t n = 0;
    if (rocksdb_property_int_cf(s->db, s->cf_data, "rocksdb.estimate-num-keys", &n) != 0)
        return 0;
    return n;
}
