/*
 * kv/scan.h - listing keys: a scan pages through every live key in ring-token
 * order (the order of the keys' 64-bit hash tokens, not of the keys' bytes),
 * with an opaque cursor and a limit, as DynamoDB's Scan with its
 * LastEvaluatedKey and Cassandra's token-range paging.
 *
 * Caveats:
 * - Order is by token: it is stable (the same keys come in the same order on
 *   every scan) but looks random to a reader.
 * - A page may hold fewer than `limit` keys, even none, while more follow:
 *   a page also ends after about 1 MiB of keys and values, or after a bound
 *   on the records (deleted and expired ones included) or ring ranges
 *   examined. Only a NULL next cursor means the scan is over.
 * - There is no snapshot across pages (nor, in a cluster, across the ranges
 *   of one page). A key that is live for the whole scan and not written
 *   during it is returned exactly once. A key written, deleted or expiring
 *   during the scan may or may not be returned, with the value before or
 *   after the write. Keys are never returned twice by one scan unless the
 *   ring changes (a member joins or leaves) while it runs.
 * - In a cluster each ring range is read from R of its home replicas (the
 *   consistency of kv_scan_options) and their states are merged by
 *   causality, as kv_get merges; a scan does no read repair.
 *
 * Threads: kv_scan may be called from many threads at once on one handle.
 * A kv_scan_page is immutable; it may be read from several threads at once,
 * and kv_scan_page_free must not run concurrently with any other use of it.
 *
 * Part of the libkv public API; include <kv/kv.h> rather than this file.
 */
#ifndef KV_SCAN_H
#define KV_SCAN_H

#include "common.h"
#include "options.h"
#include "value.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The largest limit kv_scan accepts (a page's keys). */
#define KV_SCAN_MAX_LIMIT 10000u

#define KV_SCAN_OPTIONS_VERSION 1

/** Options of one kv_scan call. */
typedef struct kv_scan_options {
    unsigned int version;       /**< KV_SCAN_OPTIONS_VERSION */
    /** How many home replicas of each ring range must answer: ONE, QUORUM
     * (the default), ALL or EXPLICIT with r. SERIAL is refused
     * (KV_EINVAL): a scan is not linearizable. Ignored by embedded handles
     * and a node alone (one replica). */
    kv_consistency consistency;
    unsigned int r;             /**< for KV_CONSISTENCY_EXPLICIT */
    /** Non-zero: return keys and versions only, no values (cheaper: in a
     * cluster the replicas send no value bytes). */
    int keys_only;
} kv_scan_options;

#define KV_SCAN_OPTIONS_INIT { KV_SCAN_OPTIONS_VERSION, KV_CONSISTENCY_DEFAULT, 0, 0 }

/**
 * kv_scan_options_init - fill opts with the defaults of the given version.
 * @return KV_OK, or KV_EINVAL for a NULL opts or an unknown version.
 * Threads: safe from any thread.
 */
KV_API int kv_scan_options_init(kv_scan_options *opts, unsigned int version);

/** One page of a scan (opaque). */
typedef struct kv_scan_page kv_scan_page;

/**
 * kv_scan - read the next page of a scan.
 * @param out     out: the page, owned by the caller (kv_scan_page_free);
 *                NULL on failure
 * @param db      any handle: embedded, node or client. A client handle sends
 *                the request to one of its endpoints, and that node reads
 *                the ranges from their replicas.
 * @param cursor  NULL or "" to start at the beginning, else the next cursor
 *                of an earlier page (kv_scan_page_cursor) of a scan of the
 *                same store or cluster; copied. Cursors are opaque text
 *                (letters and digits, safe in a URL) and do not expire.
 * @param limit   the most keys the page may hold, 1..KV_SCAN_MAX_LIMIT
 * @param opts    NULL for the defaults
 * @return KV_OK; KV_EINVAL (a malformed cursor, a limit of 0 or over
 *         KV_SCAN_MAX_LIMIT, bad options); in a cluster KV_EUNAVAILABLE or
 *         KV_ETIMEDOUT when fewer than R replicas of a range answered;
 *         KV_ECORRUPT, KV_EIO, KV_ENOMEM.
 *
 * Values: one per key. Under last-write-wins (the default) the latest
 * write; where concurrent siblings are kept (the SIBLINGS policy) every
 * live sibling and the context, as kv_get returns them; a MERGE handle
 * does not run its merge callback on scanned values (siblings as
 * SIBLINGS). Expired values and deleted keys are never returned.
 * Threads: safe from any thread; it blocks for up to the handle's request
 * timeout per range read (not from a completion callback of a client
 * handle's asynchronous calls).
 */
KV_API int kv_scan(kv_scan_page **out, kv *db, const char *cursor, size_t limit,
                   const kv_scan_options *opts);

/** kv_scan_page_count - the number of keys in the page (0 for NULL). */
KV_API size_t kv_scan_page_count(const kv_scan_page *page);

/**
 * kv_scan_page_key - key i of the page (0 <= i < count), in scan order.
 * @param len  out: its length; may be NULL
 * @return a pointer owned by the page, valid until kv_scan_page_free; NULL
 *         when i is out of range. The len bytes are followed by one NUL
 *         byte (not counted in len), as kv_value_data's are.
 */
KV_API const void *kv_scan_page_key(const kv_scan_page *page, size_t i, size_t *len);

/**
 * kv_scan_page_value - the value of key i: read it with kv_value_data,
 * kv_value_version and the other kv_value_* accessors, but never
 * kv_value_free it.
 * @return a value owned by the page, valid until kv_scan_page_free; NULL
 *         when i is out of range or the scan was keys_only.
 */
KV_API const kv_value *kv_scan_page_value(const kv_scan_page *page, size_t i);

/**
 * kv_scan_page_version - the version of key i (as kv_value_version of its
 * value; keys_only scans have it too). 0 when i is out of range.
 */
KV_API uint64_t kv_scan_page_version(const kv_scan_page *page, size_t i);

/**
 * kv_scan_page_cursor - where the next page starts.
 * @return a NUL-terminated string owned by the page, valid until
 *         kv_scan_page_free; NULL when the scan is complete.
 */
KV_API const char *kv_scan_page_cursor(const kv_scan_page *page);

/** kv_scan_page_free - free a page; NULL is a no-op. */
KV_API void kv_scan_page_free(kv_scan_page *page);

#ifdef __cplusplus
}
#endif

#endif
