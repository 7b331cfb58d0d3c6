/* client/backup.h - kv_backup on any handle (storage/backup.h snapshots one
 * store; a client handle's backup fans out to every member). */
#ifndef KVI_CLIENT_BACKUP_H
#define KVI_CLIENT_BACKUP_H

#include <kv/kv.h>

/* kv_backup after its arguments were checked (dir by kvi_check_backup_dir):
 * dispatches on the handle's kind and writes the report. */
int kvi_backup_run(char **out_report, kv *db, const char *dir);

#endif
