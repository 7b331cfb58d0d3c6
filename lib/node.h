/*
 * node.h - a storage node: an embedded store served over the binary
 * protocol and the HTTP/JSON API.
 *
 * Threads: the node's servers run their own threads; kvi_node_store may be
 * used from any thread; kvi_node_stop must not race with other calls.
 */
#ifndef KVI_NODE_H
#define KVI_NODE_H

#include <kv/kv.h>
#include "util/log.h"

typedef struct kvi_node kvi_node;

int kvi_node_start(kvi_node **out, const kv_node_options *opts, const kvi_logger *log);
/* Stops the servers (finishing requests already read), then closes the
 * store. */
void kvi_node_stop(kvi_node *n);
/* The node's own store: data calls on a node handle run against it. */
kv *kvi_node_store(const kvi_node *n);
void kvi_node_ports(const kvi_node *n, int *binary_port, int *http_port);
/* Appends the JSON description of the cluster as this node sees it. */
struct kvi_buf;
void kvi_node_describe(const kvi_node *n, struct kvi_buf *out);

#endif
