/* Writes seed inputs for the fuzz targets; the output is committed.
 *   fuzz_make_corpus fuzz/corpus/record        records behind their token
 *   fuzz_make_corpus frame fuzz/corpus/frame   one request frame per opcode
 *   fuzz_make_corpus state fuzz/corpus/state   a clock with two siblings
 *   fuzz_make_corpus auth fuzz/corpus/auth     handshakes, good and bad
 *   fuzz_make_corpus request fuzz/corpus/request  requests behind limits
 *   fuzz_make_corpus scan fuzz/corpus/scan        scan answers and cursors
 *   fuzz_make_corpus ae fuzz/corpus/ae            anti-entropy bodies
 *   fuzz_make_corpus node fuzz/corpus/node     connections to a node of one
 *   fuzz_make_corpus paxos fuzz/corpus/paxos   acceptor records
 *   fuzz_make_corpus topology fuzz/corpus/topology  topology records
 *   fuzz_make_corpus topology_paxos fuzz/corpus/topology_paxos  its Paxos */
#include <stdio.h>
#include <string.h>

#include <kv/kv.h>
#include "format/ae.h"
#include "format/dvv.h"
#include "format/paxos.h"
#include "format/state.h"
#include "format/topology.h"
#include "cluster/topology.h"
#include "format/topology_paxos.h"
#include "net/auth.h"
#include "format/frame.h"
#include "format/message.h"
#include "format/scan.h"
#include "format/value.h"
#include "format/record.h"
#include "util/endian.h"

static void emit(const char *dir, const char *name, const kvi_record *rec, uint64_t token)
{
    unsigned char buf[KVI_TOKEN_SIZE + 256];
    kvi_put_be64(buf, token);
    kvi_record_encode(buf + KVI_TOKEN_SIZE, rec, token);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(buf, 1, KVI_TOKEN_SIZE + kvi_record_size(rec->value_len), f);
        fclose(f);
    }
}

static void emit_frame(const char *dir, const char *name, const kvi_request *req,
                       const kvi_batch_item *items, uint32_t n_items)
{
    kvi_buf b = {0};
    kvi_frame_begin(&b);
    kvi_request_encode(&b, req);
    for (uint32_t i = 0; i < n_items; i++)
        kvi_batch_item_encode(&b, &items[i]);
    kvi_frame_finish(&b, 0, req->opcode, 0, 0, 1);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(b.data, 1, b.len, f);
        fclose(f);
    }
    kvi_buf_free(&b);
}

static kvi_bytes text(const char *s)
{
    kvi_bytes b = {(const unsigned char *)s, strlen(s)};
    return b;
}

/* Seeds for fuzz_frame: one request frame of each opcode. */
static void frame_corpus(const char *dir)
{
    kvi_request ping = {.opcode = KVI_OP_PING};
    emit_frame(dir, "ping", &ping, NULL, 0);
    kvi_request get = {.opcode = KVI_OP_GET, .consistency = 2, .key = text("user:1")};
    emit_frame(dir, "get", &get, NULL, 0);
    kvi_request put = {.opcode = KVI_OP_PUT, .ttl_s = 60, .key = text("k"),
                       .value = text("value"), .context = text("")};
    emit_frame(dir, "put", &put, NULL, 0);
    kvi_request del = {.opcode = KVI_OP_DELETE, .key = text("k")};
    emit_frame(dir, "delete", &del, NULL, 0);
    kvi_request cas = {.opcode = KVI_OP_CAS, .expected_version = 3, .key = text("k"),
                       .value = text("v")};
    emit_frame(dir, "cas", &cas, NULL, 0);
    kvi_request batch = {.opcode = KVI_OP_BATCH, .batch_count = 2};
    kvi_batch_item items[2] = {{1, 0, text("a"), text("1")}, {2, 0, text("b"), text("")}};
    emit_frame(dir, "batch", &batch, items, 2);
    kvi_request hint = {.opcode = KVI_OP_HINT, .key = text("k"), .value = text("state"),
                        .context = text("n2")};
    emit_frame(dir, "hint", &hint, NULL, 0);
}

/* Seeds for fuzz_state: a state with a value and a tombstone sibling. */
static void state_corpus(const char *dir)
{
    static kvi_state s;
    kvi_state_init(&s);
    kvi_sibling v = {.value = (const unsigned char *)"hello", .value_len = 5, .write_ms = 7};
    kvi_state_write(&s, NULL, "n1", &v);
    kvi_sibling t = {.tombstone = 1, .write_ms = 8};
    kvi_state_write(&s, NULL, "n2", &t);
    kvi_buf b = {0};
    unsigned char token[8] = {0, 0, 0, 0, 0, 0, 0, 42};
    kvi_buf_raw(&b, token, 8);
    kvi_state_encode(&b, &s, 42);
    char path[512];
    snprintf(path, sizeof path, "%s/two-siblings", dir);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(b.data, 1, b.len, f);
        fclose(f);
    }
    kvi_buf_free(&b);
}

static void write_file(const char *dir, const char *name, const kvi_buf *b)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(b->data, 1, b->len, f);
        fclose(f);
    }
}

/* ------------------------------------------------------------ fuzz_auth */

/* The head of a fuzz_auth input: the credentials (0: secret and tokens,
 * 1: secret, 2: tokens, 3: none), then a HELLO answer body and its client
 * nonce for kvi_auth_answer. */
static void auth_head(kvi_buf *in, uint8_t config, const kvi_buf *answer)
{
    unsigned char nonce_c[KVI_AUTH_NONCE];
    for (unsigned i = 0; i < KVI_AUTH_NONCE; i++)
        nonce_c[i] = (unsigned char)i;
    kvi_buf_u8(in, config);
    kvi_buf_u8(in, (uint8_t)(answer ? answer->len : 0));
    kvi_buf_raw(in, nonce_c, sizeof nonce_c);
    if (answer)
        kvi_buf_raw(in, answer->data, answer->len);
}

/* One record of the connection: a control byte (see fuzz_auth.c), then a
 * request frame. */
static void auth_record(kvi_buf *in, uint8_t ctrl, uint8_t opcode, uint16_t flags,
                        const kvi_buf *body)
{
    static uint64_t id = 1;
    kvi_buf_u8(in, ctrl);
    size_t start = in->len;
    kvi_frame_begin(in);
    if (body)
        kvi_buf_raw(in, body->data, body->len);
    kvi_frame_finish(in, start, opcode, flags, 0, id++);
}

static void auth_corpus(const char *dir)
{
    kvi_buf in = {0}, body = {0}, get = {0}, state = {0}, hello = {0}, peer = {0};
    kvi_request g = {.opcode = KVI_OP_GET, .key = text("user:1")};
    kvi_request_encode(&get, &g);
    kvi_request gs = {.opcode = KVI_OP_GET_STATE, .key = text("user:1")};
    kvi_request_encode(&state, &gs);
    unsigned char nonce[KVI_AUTH_NONCE] = {1, 2, 3};
    kvi_buf_bytes(&hello, nonce, sizeof nonce);
    unsigned char zero_mac[KVI_AUTH_MAC] = {0};
    kvi_buf_u8(&peer, KVI_AUTH_METHOD_PEER);
    kvi_buf_bytes(&peer, zero_mac, sizeof zero_mac);

    /* A client token (given by the control byte), then data and a peer
     * opcode, and a data opcode flagged as forwarded. */
    auth_head(&in, 0, NULL);
    kvi_auth_token_body(&body, "x");
    auth_record(&in, 0x02, KVI_OP_AUTH, 0, &body);
    auth_record(&in, 0, KVI_OP_GET, 0, &get);
    auth_record(&in, 0, KVI_OP_GET_STATE, 0, &state);
    auth_record(&in, 0, KVI_OP_GET, KVI_FRAME_FLAG_FORWARDED, &get);
    write_file(dir, "token-then-data", &in);

    /* The peer handshake (the proof given by the control byte), peer
     * opcodes, then the same proof again: a nonce is good once. */
    kvi_buf_reset(&in);
    auth_head(&in, 0, NULL);
    auth_record(&in, 0, KVI_OP_GET, 0, &get);
    auth_record(&in, 0x08, KVI_OP_HELLO, 0, &hello);
    auth_record(&in, 0x01, KVI_OP_AUTH, 0, &peer);
    auth_record(&in, 0, KVI_OP_GET_STATE, 0, &state);
    auth_record(&in, 0, KVI_OP_GOSSIP, KVI_FRAME_FLAG_HANDOFF, NULL);
    auth_record(&in, 0x01, KVI_OP_AUTH, 0, &peer);
    auth_record(&in, 0, KVI_OP_GET, 0, &get);
    write_file(dir, "hello-peer-proof", &in);

    /* A wrong proof after a HELLO; a proof without a HELLO. */
    kvi_buf_reset(&in);
    auth_head(&in, 1, NULL);
    auth_record(&in, 0, KVI_OP_HELLO, 0, &hello);
    auth_record(&in, 0, KVI_OP_AUTH, 0, &peer);
    auth_record(&in, 0, KVI_OP_AUTH, 0, &peer);
    auth_record(&in, 0, KVI_OP_GET_STATE, 0, &state);
    write_file(dir, "wrong-proof", &in);

    /* A wrong token, a malformed HELLO and AUTH. */
    kvi_buf_reset(&in);
    auth_head(&in, 2, NULL);
    kvi_buf_reset(&body);
    kvi_auth_token_body(&body, "nope");
    auth_record(&in, 0, KVI_OP_HELLO, 0, &get);
    auth_record(&in, 0, KVI_OP_AUTH, 0, &body);
    auth_record(&in, 0, KVI_OP_GET, 0, &get);
    auth_record(&in, 0x06, KVI_OP_AUTH, 0, &body);
    auth_record(&in, 0, KVI_OP_GET, 0, &get);
    kvi_buf_reset(&body);
    kvi_buf_u8(&body, 9);
    auth_record(&in, 0, KVI_OP_AUTH, 0, &body);
    write_file(dir, "wrong-token", &in);

    /* A node with no credentials: everything open, no AUTH succeeds. */
    kvi_buf_reset(&in);
    auth_head(&in, 3, NULL);
    auth_record(&in, 0, KVI_OP_PING, 0, NULL);
    auth_record(&in, 0, KVI_OP_GET_STATE, 0, &state);
    auth_record(&in, 0x08, KVI_OP_HELLO, 0, &hello);
    auth_record(&in, 0x01, KVI_OP_AUTH, 0, &peer);
    write_file(dir, "open-node", &in);

    /* A HELLO answer of the right shape with a wrong proof, for
     * kvi_auth_answer. */
    kvi_buf answer = {0};
    kvi_buf_bytes(&answer, nonce, sizeof nonce);
    kvi_buf_bytes(&answer, zero_mac, sizeof zero_mac);
    kvi_buf_reset(&in);
    auth_head(&in, 0, &answer);
    auth_record(&in, 0, KVI_OP_PING, 0, NULL);
    write_file(dir, "answer-body", &in);

    kvi_buf_free(&answer);
    kvi_buf_free(&in);
    kvi_buf_free(&body);
    kvi_buf_free(&get);
    kvi_buf_free(&state);
    kvi_buf_free(&hello);
    kvi_buf_free(&peer);
}

/* --------------------------------------------------------- fuzz_request */

/* A fuzz_request input: the opcode, the key and value limits, the
 * replication factor, then the request body. */
static void emit_request(const char *dir, const char *name, uint16_t max_key,
                         uint16_t max_value, const kvi_request *req, const kvi_batch_item *items,
                         uint32_t n_items)
{
    kvi_buf b = {0};
    kvi_buf_u8(&b, req->opcode);
    kvi_buf_u16(&b, (uint16_t)(max_key - 1));
    kvi_buf_u16(&b, max_value);
    kvi_buf_u8(&b, 2); /* three replicas */
    kvi_request_encode(&b, req);
    for (uint32_t i = 0; i < n_items; i++)
        kvi_batch_item_encode(&b, &items[i]);
    write_file(dir, name, &b);
    kvi_buf_free(&b);
}

static void request_corpus(const char *dir)
{
    kvi_request get = {.opcode = KVI_OP_GET, .consistency = 2, .key = text("user:1")};
    emit_request(dir, "get", 64, 4096, &get, NULL, 0);
    kvi_request get_r = {.opcode = KVI_OP_GET, .consistency = 4, .quorum = 3,
                         .key = text("123456789")};
    emit_request(dir, "get-explicit-over", 8, 16, &get_r, NULL, 0);
    kvi_request put = {.opcode = KVI_OP_PUT, .ttl_s = 60, .key = text("k"),
                       .value = text("value"), .context = text("")};
    emit_request(dir, "put", 64, 4096, &put, NULL, 0);
    kvi_request put_ttl = {.opcode = KVI_OP_PUT, .consistency = 4, .quorum = 2,
                           .ttl_s = 3153600001ull, .key = text("k"), .value = text("v")};
    emit_request(dir, "put-ttl-over", 64, 4096, &put_ttl, NULL, 0);
    kvi_request put_big = {.opcode = KVI_OP_PUT, .key = text("12345678"),
                           .value = text("0123456789abcdefg")};
    emit_request(dir, "put-value-over", 8, 16, &put_big, NULL, 0);
    /* A context as a read returns it: a version vector. */
    kvi_vv vv;
    kvi_vv_init(&vv);
    kvi_vv_raise(&vv, "n1", 3);
    kvi_vv_raise(&vv, "n2", 1);
    kvi_buf ctx = {0};
    kvi_vv_encode(&ctx, &vv);
    kvi_request del = {.opcode = KVI_OP_DELETE, .consistency = 3, .key = text("k"),
                       .context = {ctx.data, ctx.len}};
    emit_request(dir, "delete-context", 64, 4096, &del, NULL, 0);
    kvi_request cas = {.opcode = KVI_OP_CAS, .consistency = 5, .expected_version = 3,
                       .key = text("k"), .value = text("v")};
    emit_request(dir, "cas-level-5", 64, 4096, &cas, NULL, 0);
    kvi_request batch = {.opcode = KVI_OP_BATCH, .batch_count = 3};
    kvi_batch_item items[3] = {{KV_BATCH_PUT, 60, text("a"), text("1")},
                               {KV_BATCH_GET, 0, text("123456789"), text("")},
                               {KV_BATCH_DELETE, 0, text("c"), text("")}};
    emit_request(dir, "batch-key-over", 8, 16, &batch, items, 3);
    kvi_batch_item ttl_items[2] = {{KV_BATCH_PUT, 0, text("a"), text("1")},
                                   {KV_BATCH_PUT, 3153600001ull, text("b"), text("2")}};
    batch.batch_count = 2;
    emit_request(dir, "batch-ttl-over", 64, 4096, &batch, ttl_items, 2);
    kvi_request empty = {.opcode = KVI_OP_BATCH, .consistency = 4, .quorum = 0};
    emit_request(dir, "batch-empty", 64, 4096, &empty, NULL, 0);
    /* A replicated state under its key's token. */
    static kvi_state st;
    kvi_state_init(&st);
    kvi_sibling sib = {.value = (const unsigned char *)"hello", .value_len = 5, .write_ms = 7};
    kvi_state_write(&st, NULL, "n1", &sib);
    kvi_buf state = {0};
    kvi_state_encode(&state, &st, kvi_key_token("k", 1));
    kvi_request rep = {.opcode = KVI_OP_REPLICATE, .key = text("k"),
                       .value = {state.data, state.len}};
    emit_request(dir, "replicate", 64, 4096, &rep, NULL, 0);
    emit_request(dir, "replicate-value-over", 64, 4, &rep, NULL, 0);
    kvi_request hint = {.opcode = KVI_OP_HINT, .key = text("k"), .value = {state.data, state.len},
                        .context = text("n2")};
    emit_request(dir, "hint", 64, 4096, &hint, NULL, 0);
    kvi_request read_state = {.opcode = KVI_OP_READ_STATE, .key = text("k")};
    emit_request(dir, "read-state", 64, 4096, &read_state, NULL, 0);
    kvi_request backup = {.opcode = KVI_OP_BACKUP, .value = text("/var/backups/kv/2024-01-01")};
    emit_request(dir, "backup", 64, 4096, &backup, NULL, 0);
    kvi_request backup_rel = {.opcode = KVI_OP_BACKUP, .value = text("relative/dir")};
    emit_request(dir, "backup-relative", 64, 4096, &backup_rel, NULL, 0);
    kvi_request repair = {.opcode = KVI_OP_REPAIR_START};
    emit_request(dir, "repair-start", 64, 4096, &repair, NULL, 0);
    kvi_request scan = {.opcode = KVI_OP_SCAN, .consistency = 2, .limit = 100,
                        .key = text("\x01\x02\x03\x04\x05\x06\x07\x08key")};
    emit_request(dir, "scan", 64, 4096, &scan, NULL, 0);
    kvi_request scan_serial = {.opcode = KVI_OP_SCAN, .consistency = 5, .limit = 10001,
                               .scan_flags = 1};
    emit_request(dir, "scan-serial-over", 64, 4096, &scan_serial, NULL, 0);
    kvi_request range = {.opcode = KVI_OP_SCAN_RANGE, .scan_flags = 1, .limit = 5,
                         .last_token = 0x8000000000000000ull,
                         .key = text("\x10\x20\x30\x40\x50\x60\x70\x10")};
    emit_request(dir, "scan-range", 64, 4096, &range, NULL, 0);
    kvi_buf ae = {0};
    kvi_ae_range all = {0, 1u << 18};
    kvi_ae_digest_request_encode(&ae, 18, 16, &all, 1);
    kvi_request ae_digest = {.opcode = KVI_OP_AE_DIGEST, .value = {ae.data, ae.len}};
    emit_request(dir, "ae-digest", 64, 4096, &ae_digest, NULL, 0);
    kvi_buf_reset(&ae);
    kvi_ae_keys_request keys = {18, 0, 1u << 18, {NULL, 0}, 1000, 0};
    kvi_ae_keys_request_encode(&ae, &keys);
    kvi_request ae_keys = {.opcode = KVI_OP_AE_KEYS, .value = {ae.data, ae.len}};
    emit_request(dir, "ae-keys", 64, 4096, &ae_keys, NULL, 0);
    kvi_buf_free(&ae);
    kvi_buf_free(&state);
    kvi_buf_free(&ctx);
}

/* One frame of fuzz_node's input: [u8 opcode][u16 flags][u16 length][body]. */
static void node_frame(kvi_buf *out, const kvi_request *req, uint16_t flags)
{
    kvi_buf body = {0};
    if (req->opcode == KVI_OP_AUTH)
        kvi_auth_token_body(&body, "fuzz-token");
    else
        kvi_request_encode(&body, req);
    kvi_buf_u8(out, req->opcode);
    kvi_buf_u16(out, flags);
    kvi_buf_u16(out, (uint16_t)body.len);
    kvi_buf_raw(out, body.data, body.len);
    kvi_buf_free(&body);
}


/* Seeds for fuzz_node: a client that shows fuzz_node's token and then
 * writes, reads, swaps and deletes; one that does not; a peer opcode. */
static void node_corpus(const char *dir)
{
    kvi_request auth = {.opcode = KVI_OP_AUTH};
    kvi_request put = {.opcode = KVI_OP_PUT, .consistency = 2, .ttl_s = 60, .key = text("k"),
                       .value = text("v")};
    kvi_request get = {.opcode = KVI_OP_GET, .consistency = 1, .key = text("k")};
    kvi_request cas = {.opcode = KVI_OP_CAS, .consistency = 3, .expected_version = 1,
                       .key = text("k"), .value = text("w")};
    kvi_request del = {.opcode = KVI_OP_DELETE, .key = text("k")};
    kvi_request read_state = {.opcode = KVI_OP_READ_STATE, .key = text("k")};
    kvi_request cluster = {.opcode = KVI_OP_CLUSTER};
    kvi_request repair = {.opcode = KVI_OP_REPAIR_START};
    kvi_request gossip = {.opcode = KVI_OP_GOSSIP, .value = text("x")};
    /* A SERIAL CAS and GET (the node runs a Paxos round among its homes). */
    kvi_request serial_cas = {.opcode = KVI_OP_CAS, .consistency = 5, .key = text("s"),
                              .value = text("x")};
    kvi_request serial_get = {.opcode = KVI_OP_GET, .consistency = 5, .key = text("s")};
    kvi_buf ballot = {0};
    kvi_ballot_encode(&ballot, &(kvi_ballot){.time_us = 5, .node = "n1", .counter = 0});
    kvi_request prepare = {.opcode = KVI_OP_PAXOS_PREPARE, .key = text("s"),
                           .context = {ballot.data, ballot.len}};
    kvi_buf b = {0};
    node_frame(&b, &auth, 0);
    node_frame(&b, &put, 0);
    node_frame(&b, &get, 0);
    node_frame(&b, &cas, 0);
    node_frame(&b, &read_state, 0);
    node_frame(&b, &del, 0);
    node_frame(&b, &cluster, 0);
    node_frame(&b, &repair, 0);
    node_frame(&b, &serial_cas, 0);
    node_frame(&b, &serial_get, 0);
    write_file(dir, "client", &b);
    kvi_buf_reset(&b);
    node_frame(&b, &put, 0);
    node_frame(&b, &get, KVI_FRAME_FLAG_SIBLINGS);
    write_file(dir, "no-token", &b);
    kvi_buf_reset(&b);
    node_frame(&b, &auth, 0);
    node_frame(&b, &gossip, 0);
    node_frame(&b, &put, KVI_FRAME_FLAG_FORWARDED);
    node_frame(&b, &prepare, 0);
    write_file(dir, "peer-opcodes", &b);
    kvi_buf_free(&b);
    kvi_buf_free(&ballot);
}

/* Seeds for fuzz_paxos: the token, then an acceptor record: empty, and
 * one with a promise, an unfinished proposal and a commit; an acceptor's
 * answers (granted with data, refused); a proposal. */
static void paxos_corpus(const char *dir)
{
    const uint64_t token = 0x0102030405060708ull;
    kvi_acceptor a;
    kvi_acceptor_init(&a);
    kvi_buf b = {0};
    kvi_buf_u64(&b, token);
    kvi_acceptor_encode(&b, &a, token);
    write_file(dir, "empty", &b);
    kvi_ballot promised = {.time_us = 1700000000000000ull, .node = "n2", .counter = 3};
    kvi_ballot committed = {.time_us = 1690000000000000ull, .node = "n1", .counter = 0};
    a.promised = promised;
    kvi_acceptor_propose(&a, &promised, "state", 5);
    kvi_acceptor_commit(&a, &committed, 4);
    kvi_buf_reset(&b);
    kvi_buf_u64(&b, token);
    kvi_acceptor_encode(&b, &a, token);
    write_file(dir, "unfinished", &b);
    /* An answer to a prepare: granted, the unfinished proposal, recent
     * commits and the key's state. */
    kvi_acceptor_remember(&a, 3, 0x1111);
    kvi_acceptor_remember(&a, 4, 0x2222);
    kvi_bytes data = {(const unsigned char *)"a state", 7};
    kvi_buf_reset(&b);
    kvi_paxos_answer_encode(&b, 1, &a, &data);
    write_file(dir, "answer-prepare", &b);
    kvi_buf_reset(&b);
    kvi_paxos_answer_encode(&b, 0, &a, NULL);
    write_file(dir, "answer-refused", &b);
    kvi_buf_reset(&b);
    kvi_proposal_encode(&b, 0x1234, "state", 5);
    write_file(dir, "proposal", &b);
    kvi_buf_free(&b);
}

/* Seeds for fuzz_scan: a SCAN answer with two keys (one with two
 * siblings, one keys-only) and a cursor, and a SCAN_RANGE answer. Input
 * byte 0 chooses the decoder (fuzz_scan.c). */
static void scan_corpus(const char *dir)
{
    kv_scan_page *page = kvi_scan_page_new();
    const void *data[2] = {"a", "bb"};
    size_t len[2] = {1, 2};
    kvi_scan_page_add(page, "k1", 2, 3, kvi_value_new_siblings(data, len, 2, 3, 0, "ctx", 3));
    kvi_scan_page_add(page, "k2", 2, 1, NULL);
    kvi_scan_page_set_next(page, "\x01\x02\x03\x04\x05\x06\x07\x08k2", 10);
    kvi_buf b = {0};
    kvi_buf_u8(&b, 0);
    kvi_scan_page_encode(&b, page);
    write_file(dir, "page", &b);
    kvi_scan_page_free(page);
    static kvi_state st;
    kvi_state_init(&st);
    kvi_sibling sib = {.value = (const unsigned char *)"hello", .value_len = 5, .write_ms = 7};
    kvi_state_write(&st, NULL, "n1", &sib);
    kvi_buf state = {0};
    kvi_state_encode(&state, &st, kvi_key_token("k", 1));
    kvi_buf_reset(&b);
    kvi_buf_u8(&b, 1);
    kvi_buf_u32(&b, 1);
    kvi_scan_range_item(&b, "k", 1, state.data, state.len);
    kvi_buf_u8(&b, 1);
    write_file(dir, "range", &b);
    kvi_buf_reset(&b);
    kvi_buf_u8(&b, 2);
    kvi_buf_raw(&b, "0102030405060708ff", 18);
    write_file(dir, "cursor", &b);
    kvi_buf_free(&b);
    kvi_buf_free(&state);
}

/* Seeds for fuzz_ae: one of each body; byte 0 chooses the decoder
 * (fuzz_ae.c). */
static void ae_corpus(const char *dir)
{
    kvi_buf b = {0};
    kvi_ae_range ranges[2] = {{0, 16}, {16, 1u << 18}};
    kvi_buf_u8(&b, 0);
    kvi_ae_digest_request_encode(&b, 18, 16, ranges, 2);
    write_file(dir, "digest-request", &b);
    kvi_buf_reset(&b);
    uint64_t hashes[2] = {0x0123456789abcdefull, 0};
    uint32_t keys[2] = {3, 0};
    kvi_buf_u8(&b, 1);
    kvi_buf_u8(&b, 2);
    kvi_ae_digest_answer_encode(&b, hashes, keys, 2);
    write_file(dir, "digest-answer", &b);
    kvi_buf_reset(&b);
    kvi_ae_keys_request req = {18, 5, 6, {(const unsigned char *)"\x00\x00\x14\x00\x00\x00\x00\x01" "k", 9}, 100,
                               KVI_AE_KEYS_RECORDS};
    kvi_buf_u8(&b, 2);
    kvi_ae_keys_request_encode(&b, &req);
    write_file(dir, "keys-request", &b);
    kvi_buf_reset(&b);
    kvi_buf_u8(&b, 3);
    size_t start = kvi_ae_keys_answer_start(&b);
    kvi_ae_keys_answer_add(&b, "\x00\x00\x14\x00\x00\x00\x00\x01" "a", 9, 42, NULL, 0);
    kvi_ae_keys_answer_add(&b, "\x00\x00\x14\x00\x00\x00\x00\x01" "b", 9, 43, NULL, 0);
    kvi_ae_keys_answer_finish(&b, start, 2, 1);
    write_file(dir, "keys-answer", &b);
    kvi_buf_reset(&b);
    kvi_buf_u8(&b, 4);
    start = kvi_ae_keys_answer_start(&b);
    kvi_ae_keys_answer_add(&b, "\x00\x00\x14\x00\x00\x00\x00\x01" "a", 9, 42, "record-a", 8);
    kvi_ae_keys_answer_add(&b, "\x00\x00\x14\x00\x00\x00\x00\x01" "b", 9, 43, "", 0);
    kvi_ae_keys_answer_finish(&b, start, 2, 0);
    write_file(dir, "records-answer", &b);
    kvi_buf_free(&b);
}

/* Topology records: a cluster of three at epoch 1, a join in progress,
 * and one with its gainer done. */
static void topology_corpus(const char *dir)
{
    const char *ids[] = {"n1", "n2", "n3"};
    const char *addrs[] = {"127.0.0.1:7401", "127.0.0.1:7402", "127.0.0.1:7403"};
    kvi_topology t, j, d;
    kvi_topology_init(&t);
    kvi_topology_init(&j);
    kvi_topology_init(&d);
    kvi_buf b = {0};
    char err[128];
    int changed;
    if (kvi_topology_first(&t, 3, 8, ids, addrs, NULL, 3) != KV_OK ||
        kvi_topology_begin(&j, &t, KVI_TOPO_OP_JOIN, "n4", "127.0.0.1:7404", "127.0.0.1:8404",
                           err, sizeof err) != KV_OK ||
        kvi_topology_mark_done(&d, &changed, &j, "n4", err, sizeof err) != KV_OK)
        return;
    kvi_topology_encode(&b, &t);
    write_file(dir, "three", &b);
    kvi_buf_reset(&b);
    kvi_topology_encode(&b, &j);
    write_file(dir, "joining", &b);
    kvi_buf_reset(&b);
    kvi_topology_encode(&b, &d);
    write_file(dir, "join-done", &b);
    kvi_buf_free(&b);
    kvi_topology_free(&t);
    kvi_topology_free(&j);
    kvi_topology_free(&d);
}

/* The topology Paxos: a prepare, a proposal, a commit, a fetch, answers
 * (granted with an accepted record, stale) and an acceptor's state. */
static void topology_paxos_corpus(const char *dir)
{
    const char *ids[] = {"n1", "n2", "n3"};
    const char *addrs[] = {"127.0.0.1:7401", "127.0.0.1:7402", "127.0.0.1:7403"};
    kvi_topology t, j;
    kvi_topology_init(&t);
    kvi_topology_init(&j);
    char err[128];
    if (kvi_topology_first(&t, 3, 8, ids, addrs, NULL, 3) != KV_OK ||
        kvi_topology_begin(&j, &t, KVI_TOPO_OP_JOIN, "n4", "127.0.0.1:7404", NULL, err,
                           sizeof err) != KV_OK)
        return;
    kvi_ballot ballot = {.time_us = 1700000000000000ull, .node = "n1", .counter = 2};
    kvi_buf b = {0};
    kvi_tpx_msg m;
    kvi_tpx_msg_init(&m);
    m.kind = KVI_TPX_PREPARE;
    m.ballot = ballot;
    kvi_topology_copy(&m.base, &t);
    kvi_tpx_msg_encode(&b, &m);
    write_file(dir, "prepare", &b);
    m.kind = KVI_TPX_PROPOSE;
    kvi_topology_copy(&m.value, &j);
    kvi_buf_reset(&b);
    kvi_tpx_msg_encode(&b, &m);
    write_file(dir, "propose", &b);
    kvi_tpx_msg_free(&m);
    m.kind = KVI_TPX_COMMIT;
    kvi_topology_copy(&m.base, &j);
    kvi_buf_reset(&b);
    kvi_tpx_msg_encode(&b, &m);
    write_file(dir, "commit", &b);
    kvi_tpx_msg_free(&m);
    m.kind = KVI_TPX_FETCH;
    kvi_buf_reset(&b);
    kvi_tpx_msg_encode(&b, &m);
    write_file(dir, "fetch", &b);
    kvi_tpx_answer a;
    kvi_tpx_answer_init(&a);
    a.verdict = KVI_TPX_GRANTED;
    a.promised = ballot;
    a.has_accepted = 1;
    a.accepted = ballot;
    kvi_topology_copy(&a.accepted_value, &j);
    kvi_buf_reset(&b);
    kvi_tpx_answer_encode(&b, &a);
    write_file(dir, "answer-accepted", &b);
    kvi_tpx_answer_free(&a);
    a.verdict = KVI_TPX_STALE;
    kvi_topology_copy(&a.current, &j);
    kvi_buf_reset(&b);
    kvi_tpx_answer_encode(&b, &a);
    write_file(dir, "answer-stale", &b);
    kvi_tpx_answer_free(&a);
    kvi_tpx_acceptor s;
    kvi_tpx_acceptor_init(&s);
    s.slot = 2;
    s.promised = ballot;
    s.has_accepted = 1;
    s.accepted = ballot;
    kvi_topology_copy(&s.value, &j);
    kvi_buf_reset(&b);
    kvi_tpx_acceptor_encode(&b, &s);
    write_file(dir, "acceptor", &b);
    kvi_tpx_acceptor_free(&s);
    kvi_buf_free(&b);
    kvi_topology_free(&t);
    kvi_topology_free(&j);
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "topology_paxos") == 0) {
        topology_paxos_corpus(argv[2]);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "topology") == 0) {
        topology_corpus(argv[2]);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "ae") == 0) {
        ae_corpus(argv[2]);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "scan") == 0) {
        scan_corpus(argv[2]);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "paxos") == 0) {
        paxos_corpus(argv[2]);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "node") == 0) {
        node_corpus(argv[2]);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "auth") == 0) {
        auth_corpus(argv[2]);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "request") == 0) {
        request_corpus(argv[2]);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "state") == 0) {
        state_corpus(argv[2]);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "frame") == 0) {
        frame_corpus(argv[2]);
        return 0;
    }
    const char *dir = argc > 1 ? argv[1] : ".";
    kvi_record value = {.version = 3, .write_ms = 5, .value = (const unsigned char *)"hello", .value_len = 5};
    emit(dir, "value", &value, kvi_key_token("k", 1));
    kvi_record tomb = {.version = 4, .write_ms = 900, .tombstone = 1};
    emit(dir, "tombstone", &tomb, kvi_key_token("k", 1));
    kvi_record expiring = {.version = 1, .expiry_ms = 999, .write_ms = 1, .value = (const unsigned char *)"", .value_len = 0};
    emit(dir, "expiring", &expiring, 42);
    return 0;
}
