/* client/repair.h - kv_repair on any handle: a client's asks every member
 * (or one) to start an anti-entropy round (REPAIR_START, opcode 24); a
 * node's starts its own. */
#ifndef KVI_CLIENT_REPAIR_H
#define KVI_CLIENT_REPAIR_H

#include <kv/kv.h>

/* kv_repair after its arguments were checked. */
int kvi_repair_run(char **out_report, kv *db, const char *node_id);

#endif
