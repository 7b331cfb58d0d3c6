/*
 * storage/backup.h - snapshots of a store (kv_backup) and their restore
 * (kv_restore): RocksDB checkpoints and a manifest beside them (a client
 * handle's fan-out to every member is client/backup.h).
 *
 * A snapshot directory is a RocksDB checkpoint (it opens as a store of its
 * own) plus KVI_BACKUP_MANIFEST, written last: a directory without it is
 * not a finished snapshot and is never restored.
 *
 * Threads: every function may be called from many threads at once.
 */
#ifndef KVI_BACKUP_H
#define KVI_BACKUP_H

#include <cJSON.h>

#include <kv/kv.h>
#include "storage/embedded.h"

#define KVI_BACKUP_MANIFEST "kv-backup.json"
#define KVI_BACKUP_FORMAT 1

/* Snapshots the embedded store `store` into dir (NUL-terminated, already
 * checked by kvi_check_backup_dir; it must not exist, missing parents are
 * made). node_id (NULL for an embedded store) goes into the manifest.
 * Fills entry (a JSON object) with nodeId, status, path, bytes and
 * estimatedKeys, or with status and message on failure. */
int kvi_backup_local(kvi_embedded *store, const char *dir, const char *node_id, cJSON *entry);

/* Fills nodes (a JSON array) with an entry per node backed up into dir
 * (without trailing slashes); KV_OK or the first failure's code. */
typedef int (*kvi_backup_fill_fn)(void *ctx, const char *dir, cJSON *nodes);

/* kv_backup's report around fill: {"dir": dir, "nodes": [...]} into
 * *out_report (malloc'd; out_report may be NULL), dir's trailing slashes
 * dropped first. fill's code, with its detail message kept. */
int kvi_backup_report(char **out_report, const char *dir, kvi_backup_fill_fn fill,
                      void *ctx);

/* Records a failure in a report's entry: status and message. */
void kvi_backup_entry_failed(cJSON *entry, int rc, const char *message);

/* The status name of a backup entry ("OK", "UNAVAILABLE", ...). */
const char *kvi_backup_status_name(int rc);

/* kv_restore after its arguments were checked for NULL. */
int kvi_backup_restore(const char *backup_dir, const char *data_dir, const char *node_id);

#endif
