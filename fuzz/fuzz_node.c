/* mkdtemp, nftw: POSIX.1-2008 with XSI. */
#define _XOPEN_SOURCE 700
/* libFuzzer target for the whole of a node's request path, dispatch
 * included: a real node, in-process, that is a cluster of one (its own
 * seed, so requests take the clustered path through the coordinator and
 * the replica code), with a cluster secret and a client token. Each input
 * is a sequence of request frames of one connection; each goes through
 * the gate (net/auth.h) and, when let through, the node's handler, exactly
 * as the server runs them, against a real RocksDB store.
 *
 * Input: repeated [u8 opcode][u16 flags][u16 body length][body]. A frame
 * whose body would run past the input ends it.
 *
 * Invariants: nothing crashes or leaks; every frame gets exactly one
 * answer, a well-formed response frame for its opcode and request id whose
 * status is a public code or one of the node's own wire codes (-100..-102);
 * an internode opcode is never served to this connection, which proved no
 * secret (KV_EPERM). A BACKUP whose directory is valid is not run (see
 * below). */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kv/kv.h>
#include "client/handle.h"
#include "net/auth.h"
#include "format/frame.h"
#include "format/message.h"
#include "node/node_internal.h"

static const char SECRET[] = "fuzzing secret, sixteen+ bytes";
static const char *const TOKENS[] = {"fuzz-token"};

static kv *node_handle;
static char node_dir[] = "/tmp/fuzz-node-XXXXXX";

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* At exit: the node stopped, its store removed. */
static void drop_node(void)
{
    kv_close(node_handle);
    nftw(node_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void discard_log(kv_log_level level, const char *message, void *ctx)
{
    (void)level;
    (void)message;
    (void)ctx;
}

static kvi_node *the_node(void)
{
    if (node_handle)
        return node_handle->node;
    if (!mkdtemp(node_dir))
        abort();
    char *dir = node_dir;
    kv_open_options so = KV_OPEN_OPTIONS_INIT;
    so.sync = KV_SYNC_NONE;
    so.max_key_size = 64;
    so.max_value_size = 4096;
    so.log_fn = discard_log;
    kv_node_options o = KV_NODE_OPTIONS_INIT;
    o.data_dir = dir;
    o.node_id = "fuzz";
    o.listen_addr = "127.0.0.1:0";
    const char *seeds[] = {"127.0.0.1:0"}; /* its own: a cluster of one */
    o.seeds = seeds;
    o.seed_count = 1;
    o.store = &so;
    o.cluster_secret = SECRET;
    o.cluster_secret_len = sizeof SECRET - 1;
    o.client_tokens = TOKENS;
    o.client_token_count = 1;
    if (kv_node_start(&node_handle, &o) != KV_OK)
        abort();
    atexit(drop_node);
    return node_handle->node;
}

static int expected_status(int status)
{
    return (status <= KV_OK && status >= KV_EPERM) || (status <= -100 && status >= -102);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kvi_node *n = the_node();
    unsigned char state[KVI_SERVER_GATE_STATE] = {0};
    kvi_buf out = {0};
    uint64_t id = 1;
    while (size >= 5) {
        kvi_frame_header h = {.version = KVI_PROTOCOL_VERSION, .opcode = data[0],
                              .flags = (uint16_t)((data[1] << 8 | data[2]) &
                                                  KVI_FRAME_FLAGS_KNOWN & ~KVI_FRAME_FLAG_RESPONSE),
                              .request_id = id++,
                              .body_len = (uint32_t)(data[3] << 8 | data[4])};
        data += 5;
        size -= 5;
        if (h.body_len > size)
            break;
        if (h.opcode == 0 || h.opcode > KVI_OP_MAX)
            h.opcode = (uint8_t)(1 + h.opcode % KVI_OP_MAX);
        const unsigned char *body = data;
        data += h.body_len;
        size -= h.body_len;
        /* A BACKUP the node would accept writes a checkpoint wherever its
         * path says: only its refusals are fuzzed here (a good one would
         * fill the disk); it becomes a PING. */
        kvi_request backup;
        if (h.opcode == KVI_OP_BACKUP &&
            kvi_request_decode(&backup, h.opcode, body, h.body_len) == 0 &&
            kvi_check_backup_dir((const char *)backup.value.data, backup.value.len,
                                 "dir") == KV_OK)
            h.opcode = KVI_OP_PING;
        kvi_buf_reset(&out);
        int gated = kvi_auth_gate(n->auth, state, 0, &h, body, &out);
        if (!gated) {
            if (kvi_auth_access(&h) == KVI_ACCESS_PEER)
                abort(); /* this connection proved no secret */
            kvi_node_handle_request(n, &h, body, &out);
        }
        /* Exactly one answer, for this request. */
        kvi_frame_header a;
        if (out.failed ||
            kvi_frame_parse_header(&a, out.data, out.len, KVI_FRAME_MAX_BODY_LIMIT) !=
                KVI_FRAME_OK ||
            out.len != KVI_FRAME_HEADER + a.body_len ||
            kvi_frame_verify(&a, out.data, out.data + KVI_FRAME_HEADER) != KVI_FRAME_OK ||
            a.request_id != h.request_id || a.opcode != h.opcode ||
            !(a.flags & KVI_FRAME_FLAG_RESPONSE) || !expected_status(a.status))
            abort();
        if (gated == 2)
            memset(state, 0, sizeof state); /* the connection would close */
    }
    kvi_buf_free(&out);
    return 0;
}
