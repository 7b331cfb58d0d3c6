/*
 * storage/group_commit.h - makes writes durable in groups.
 *
 * Under `sync always` a write must be on disk before it is acknowledged.
 * Syncing each write on its own thread costs one fsync per write and a
 * thread blocked for it; an event loop cannot block at all. Instead the
 * loop writes with the sync off and asks the group committer to tell it
 * when that write is durable. One thread syncs the WAL for everyone who
 * asked before the sync began, then tells them all; whoever asks while a
 * sync runs waits for the next. Idle, a request is synced at once; under
 * load, requests gather while the previous sync runs, so the group grows
 * with the load and the fsync rate stays near one per sync time (about
 * a millisecond), as RocksDB's own write groups and FoundationDB's commit
 * batches do.
 *
 * Threads: kvi_group_commit_request from any thread; callbacks run on the
 * committer's thread and must not block (post to a loop).
 */
#ifndef KVI_GROUP_COMMIT_H
#define KVI_GROUP_COMMIT_H

#include "util/log.h"

typedef struct kvi_group_commit kvi_group_commit;

/* Makes every write completed before it durable: KV_OK or an error. */
typedef int (*kvi_sync_fn)(void *ctx);
/* Told once the writes made before the request are durable (rc KV_OK),
 * or that the sync failed (they may not be). */
typedef void (*kvi_durable_fn)(void *ctx, int rc);

/* A request, embedded in the caller's own record (no allocation). */
typedef struct kvi_sync_request {
    struct kvi_sync_request *next;
    kvi_durable_fn fn;
    void *ctx;
} kvi_sync_request;

int kvi_group_commit_start(kvi_group_commit **out, kvi_sync_fn sync, void *sync_ctx,
                           const kvi_logger *log);
/* Runs the requests still waiting (one last sync), then stops. NULL: no-op. */
void kvi_group_commit_stop(kvi_group_commit *g);
/* Asks to be told when every write completed before this call is durable.
 * r stays the caller's and must stay valid until fn runs. */
void kvi_group_commit_request(kvi_group_commit *g, kvi_sync_request *r, kvi_durable_fn fn,
                              void *ctx);
/* Syncs done so far (for tests and metrics). */
unsigned long long kvi_group_commit_syncs(kvi_group_commit *g);

#endif
