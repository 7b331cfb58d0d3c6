/*
 * examples/node.c - host a libkv storage node inside your own program.
 *
 * Build against an installed libkv:
 *     cc node.c $(pkg-config --cflags --libs kv) -o node
 * Run:
 *     ./node [DATA_DIR]           (default ./node-demo.kv)
 *
 * The node serves its store over the binary protocol (127.0.0.1:7401) and the
 * HTTP/JSON API (127.0.0.1:8081) while this program keeps using the same store
 * directly through the node handle. Try, while it runs:
 *     curl http://127.0.0.1:8081/v1/kv/hosted-by
 * It stops after 30 seconds, or on Ctrl-C.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <kv/kv.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* The library never prints; this callback decides where its logs go. */
static void print_log(kv_log_level level, const char *message, void *ctx)
{
    (void)ctx;
    static const char *const names[] = {"error", "warn", "info", "debug"};
    fprintf(stderr, "[libkv %s] %s\n", names[level], message);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "node-demo.kv";

    kv_open_options store = KV_OPEN_OPTIONS_INIT;
    store.log_fn = print_log;
    store.sync = KV_SYNC_PERIODIC; /* fsync every 100 ms: survives a crash of
                                      this process, may lose 100 ms on power loss */

    kv_node_options opts = KV_NODE_OPTIONS_INIT;
    opts.data_dir = dir;
    opts.node_id = "embedded-node";
    opts.listen_addr = "127.0.0.1:7401"; /* use port 0 to let the OS choose */
    opts.http_addr = "127.0.0.1:8081";
    opts.store = &store;

    kv *node = NULL;
    int rc = kv_node_start(&node, &opts);
    if (rc != KV_OK) {
        /* e.g. KV_EBUSY when a port is taken or the store is open elsewhere */
        fprintf(stderr, "cannot start the node: %s (%s)\n", kv_strerror(rc), kv_error_last());
        return 1;
    }
    int binary_port = 0, http_port = 0;
    kv_node_ports(&binary_port, &http_port, node);
    printf("node serving: binary protocol on port %d, HTTP on port %d\n", binary_port,
           http_port);

    /* The application uses the node's store directly, with no network hop;
     * remote clients see the same data. */
    const char *me = "examples/node.c";
    uint64_t version = 0;
    rc = kv_put(&version, node, "hosted-by", 9, me, strlen(me), NULL);
    if (rc != KV_OK)
        fprintf(stderr, "put: %s (%s)\n", kv_strerror(rc), kv_error_last());
    else
        printf("put hosted-by -> version %llu; try: curl http://127.0.0.1:%d/v1/kv/hosted-by\n",
               (unsigned long long)version, http_port);

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    for (int i = 0; i < 300 && !stop_requested; i++)
        usleep(100 * 1000);

    /* kv_close answers the requests already read, closes the connections,
     * and syncs and closes the store. */
    kv_close(node);
    printf("node stopped\n");
    return 0;
}
