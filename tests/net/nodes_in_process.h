/* Three clustered nodes hosted in the test's own process (so that the
 * sanitizers see every request's life whole), each on a free loopback
 * port, with complete memberships before the test runs. Shared by the
 * tests of requests between nodes. Include after cmocka.h. */
#ifndef KV_TEST_NODES_IN_PROCESS_H
#define KV_TEST_NODES_IN_PROCESS_H

#include <stdio.h>

#include <kv/kv.h>
#include "helpers.h"
#include "integration/kvd_process.h"
#include "integration/loopback.h"

#define INPROC_NODES 3

typedef struct inproc_nodes {
    char *dir[INPROC_NODES];
    char listen[INPROC_NODES][64];
    kv *node[INPROC_NODES];
} inproc_nodes;

static int inproc_start(inproc_nodes *c, int i)
{
    kv_open_options store = KV_OPEN_OPTIONS_INIT;
    store.sync = KV_SYNC_NONE;
    kv_node_options o = KV_NODE_OPTIONS_INIT;
    const char *peers[INPROC_NODES];
    for (int k = 0; k < INPROC_NODES; k++)
        peers[k] = c->listen[k];
    char id[16];
    snprintf(id, sizeof id, "n%d", i + 1);
    o.data_dir = c->dir[i];
    o.node_id = id;
    o.listen_addr = c->listen[i];
    o.store = &store;
    o.peers = peers;
    o.peer_count = INPROC_NODES;
    o.internode_timeout_ms = 2000;
    return kv_node_start(&c->node[i], &o);
}

static void inproc_stop_all(inproc_nodes *c)
{
    for (int i = 0; i < INPROC_NODES; i++) {
        kv_close(c->node[i]);
        c->node[i] = NULL;
    }
}

/* Starts the nodes and waits (bounded) until each has a complete
 * membership: 0, or -1. A port picked free may be taken before a node
 * listens on it: tried again on new ports, at most 5 times. */
static int inproc_up(inproc_nodes *c)
{
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.request_timeout_ms = 3000;
    co.connect_timeout_ms = 500;
    for (int attempt = 0; attempt < 5; attempt++) {
        for (int i = 0; i < INPROC_NODES; i++) {
            if (!c->dir[i])
                c->dir[i] = test_tempdir();
            snprintf(c->listen[i], sizeof c->listen[i], "127.0.0.1:%d", free_port());
        }
        int ok = 1;
        for (int i = 0; i < INPROC_NODES && ok; i++)
            ok = inproc_start(c, i) == KV_OK;
        for (int i = 0; i < INPROC_NODES && ok; i++)
            ok = kvd_wait_complete(c->listen[i], &co);
        if (ok)
            return 0;
        inproc_stop_all(c);
    }
    return -1;
}

/* Stops the nodes and removes their directories. */
static void inproc_down(inproc_nodes *c)
{
    inproc_stop_all(c);
    for (int i = 0; i < INPROC_NODES; i++)
        test_rmtree(c->dir[i]);
}

#endif
