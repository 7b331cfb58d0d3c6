/*
 * backup.h - snapshots of a store (kv_backup) and their restore
 * (kv_restore): RocksDB checkpoints, a manifest beside them, and the
 * fan-out of a client handle's backup to every member.
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

#define KVI_BACKUP_MANIFEST "kv-backup.json"
#define KVI_BACKUP_FORMAT 1

/* Snapshots the embedded handle `store` into dir (NUL-terminated, already
 * checked by kvi_check_backup_dir; it must not exist, missing parents are
 * made). node_id (NULL for an embedded store) goes into the manifest.
 * Fills entry (a JSON object) with nodeId, status, path, bytes and
 * estimatedKeys, or with status and message on failure. */
int kvi_backup_local(kv *store, const char *dir, const char *node_id, cJSON *entry);

/* kv_backup after its arguments were checked (dir by kvi_check_backup_dir):
 * dispatches on the handle's kind and writes the report. */
int kvi_backup_run(char **out_report, kv *db, const char *dir);

/* The status name of a backup entry ("OK", "UNAVAILABLE", ...). */
const char *kvi_backup_status_name(int rc);

/* kv_restore after its arguments were checked for NULL. */
int kvi_backup_restore(const char *backup_dir, const char *data_dir, const char *node_id);

#endif
