/* client/topology.h - kv_topology_change on any handle: a client's asks the
 * node it reaches (TOPOLOGY_CHANGE, opcode 26); a node's records the change
 * itself. */
#ifndef KVI_CLIENT_TOPOLOGY_H
#define KVI_CLIENT_TOPOLOGY_H

#include <kv/kv.h>

/* kv_topology_change after its arguments were checked. */
int kvi_topology_change_run(char **out_json, kv *db, const char *change, const char *node_id);

#endif
