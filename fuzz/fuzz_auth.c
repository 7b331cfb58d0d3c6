/* libFuzzer target for the handshake and the gate (net/auth.h).
 *
 * Input: byte 0 picks the node's credentials (0: a cluster secret and two
 * client tokens; 1: the secret alone; 2: the tokens alone; 3: neither);
 * byte 1 is a length L; the next 32 bytes are a client nonce and the next
 * L bytes a HELLO answer body, both given to kvi_auth_answer; the rest is a
 * connection: records of one control byte and one frame (24-byte header
 * parsed with kvi_frame_parse_header, then its body), all through
 * kvi_auth_gate with one gate state, as a server does.
 *
 * The control byte lets the input play a client that knows the secrets
 * (which no fuzzer can guess), so that the states after a good AUTH are
 * reached too: bit 0 makes an AUTH carry the proof kvi_auth_answer builds
 * from the last HELLO answer of this connection; bit 1 makes it carry
 * client token (bit 2); bit 3 makes a HELLO well formed.
 *
 * Invariants: the gate returns 0, 1 or 2; with 0 it appends nothing, and
 * it lets a frame through only when the opcode is open, or the connection
 * authenticated as the opcode needs (a client token or the secret for a
 * data opcode, the secret for a peer opcode or flag) or the node has no
 * such credential; HELLO and AUTH are never let through; with 1 or 2 it
 * appends exactly one well-formed response frame to the request (its
 * opcode and id, a valid checksum, a public status, a body that decodes),
 * and 2 only for a failed AUTH, after which the connection is closed (the
 * state starts afresh, as a new connection's). A peer AUTH succeeds only
 * after a HELLO on the same connection, once per HELLO; a token AUTH only
 * with a token the node has; a node's HELLO answer passes kvi_auth_answer
 * with its secret and fails with another. kvi_auth_answer on any body
 * returns KV_OK, KV_EPERM or KV_EIO, and writes nothing unless KV_OK. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kv/common.h>
#include "net/auth.h"
#include "format/frame.h"
#include "format/message.h"
#include "net/server.h"

static const unsigned char SECRET[] = "fuzzing cluster secret, 32 bytes";
static const unsigned char OTHER[] = "another cluster's secret, 32 byte";
static const char *const TOKENS[] = {"alpha-token-1", "beta.token~2=="};

#define CTRL_PEER_PROOF 0x01u
#define CTRL_TOKEN 0x02u
#define CTRL_TOKEN_SECOND 0x04u
#define CTRL_GOOD_HELLO 0x08u

/* What the connection has proved so far, as the gate should see it. */
typedef struct model {
    int client;   /* showed a token (or proved the secret) */
    int peer;     /* proved the secret */
    int hello;    /* a HELLO answered OK, and no peer AUTH tried since */
    unsigned char nonce_c[KVI_AUTH_NONCE];
    unsigned char answer[2 * (4 + KVI_AUTH_NONCE)];
    size_t answer_len;
} model;

typedef struct node {
    kvi_auth *auth;
    int has_secret, has_tokens;
} node;

static int is_public(int status)
{
    return status <= KV_OK && status >= KV_EPERM;
}

/* The one frame the gate appended at out[from..]; returns its status and
 * points *body at its body (inside out). */
static int check_answer(const kvi_buf *out, size_t from, const kvi_frame_header *req,
                        const unsigned char **body, uint32_t *body_len)
{
    if (out->failed || out->len < from + KVI_FRAME_HEADER)
        abort();
    const unsigned char *p = out->data + from;
    kvi_frame_header h;
    kvi_frame_error e = kvi_frame_parse_header(&h, p, out->len - from, KVI_FRAME_MAX_BODY_LIMIT);
    /* An unknown opcode is answered under that opcode, naming the request. */
    int unknown = req->opcode == 0 || req->opcode > KVI_OP_MAX;
    if (e != KVI_FRAME_OK && !(e == KVI_FRAME_BAD_OPCODE && unknown))
        abort();
    if (from + KVI_FRAME_HEADER + h.body_len != out->len) /* exactly one frame */
        abort();
    if (kvi_frame_verify(&h, p, p + KVI_FRAME_HEADER) != KVI_FRAME_OK)
        abort();
    if (h.flags != KVI_FRAME_FLAG_RESPONSE || h.opcode != req->opcode ||
        h.request_id != req->request_id || !is_public(h.status))
        abort();
    kvi_response resp;
    if (h.status != KV_OK &&
        kvi_response_decode(&resp, h.opcode, h.status, p + KVI_FRAME_HEADER, h.body_len) != 0)
        abort();
    *body = p + KVI_FRAME_HEADER;
    *body_len = h.body_len;
    return h.status;
}

/* A HELLO answered OK: bytes nonce_s (32), bytes proof (32 with a secret,
 * else empty). The client's side must accept it with the secret only. */
static void check_hello_answer(const node *n, model *m, const unsigned char *body,
                               uint32_t len)
{
    kvi_reader r = kvi_reader_init(body, len);
    kvi_bytes nonce_s = kvi_read_bytes(&r);
    kvi_bytes proof = kvi_read_bytes(&r);
    if (kvi_reader_done(&r) != 0 || nonce_s.len != KVI_AUTH_NONCE ||
        proof.len != (n->has_secret ? KVI_AUTH_MAC : 0u) || len > sizeof m->answer)
        abort();
    memcpy(m->answer, body, len);
    m->answer_len = len;
    kvi_buf a = {0};
    int rc = kvi_auth_answer(&a, SECRET, sizeof SECRET - 1, m->nonce_c, body, len);
    if (n->has_secret ? rc != KV_OK || a.len != 1u + 4u + KVI_AUTH_MAC
                      : rc != KV_EPERM || a.len != 0)
        abort();
    kvi_buf_reset(&a);
    if (kvi_auth_answer(&a, OTHER, sizeof OTHER - 1, m->nonce_c, body, len) != KV_EPERM ||
        a.len != 0)
        abort();
    kvi_buf_free(&a);
}

/* Runs one frame through the gate and checks it against the model. */
static void gate_one(const node *n, unsigned char *state, model *m, kvi_frame_header *h,
                     const unsigned char *body, kvi_buf *out)
{
    size_t before = out->len;
    int gated = kvi_auth_gate(n->auth, state, 0 /* plain TCP */, h, body, out);
    if (gated == 0) {
        if (out->len != before || h->opcode == KVI_OP_HELLO || h->opcode == KVI_OP_AUTH)
            abort();
        kvi_access need = kvi_auth_access(h);
        if (need == KVI_ACCESS_CLIENT && n->has_tokens && !m->client)
            abort();
        if (need == KVI_ACCESS_PEER && !m->peer && (n->has_secret || n->has_tokens))
            abort();
        return;
    }
    if (gated != 1 && gated != 2)
        abort();
    const unsigned char *answer;
    uint32_t answer_len;
    int status = check_answer(out, before, h, &answer, &answer_len);
    if (gated == 2 && (h->opcode != KVI_OP_AUTH || status == KV_OK))
        abort();
    if (h->opcode == KVI_OP_HELLO) {
        if (status == KV_OK) {
            kvi_reader r = kvi_reader_init(body, h->body_len);
            kvi_bytes nonce_c = kvi_read_bytes(&r);
            if (kvi_reader_done(&r) != 0 || nonce_c.len != KVI_AUTH_NONCE)
                abort(); /* a malformed HELLO answered OK */
            memcpy(m->nonce_c, nonce_c.data, KVI_AUTH_NONCE);
            check_hello_answer(n, m, answer, answer_len);
            m->hello = 1;
        }
    } else if (h->opcode == KVI_OP_AUTH) {
        kvi_reader r = kvi_reader_init(body, h->body_len);
        uint8_t method = kvi_read_u8(&r);
        kvi_bytes data = kvi_read_bytes(&r);
        int well_formed = kvi_reader_done(&r) == 0;
        if (status == KV_OK) {
            if (answer_len != 0 || !well_formed)
                abort();
            if (method == KVI_AUTH_METHOD_TOKEN) {
                /* A node without tokens accepts any: its data is open. */
                int known = !n->has_tokens;
                for (size_t i = 0; n->has_tokens && i < 2; i++)
                    known |= data.len == strlen(TOKENS[i]) &&
                             memcmp(data.data, TOKENS[i], data.len) == 0;
                if (!known)
                    abort();
                m->client = 1;
            } else if (method == KVI_AUTH_METHOD_PEER) {
                if (!m->hello || !n->has_secret)
                    abort();
                m->client = m->peer = 1;
            } else {
                abort();
            }
        }
        if (well_formed && method == KVI_AUTH_METHOD_PEER)
            m->hello = 0; /* a nonce is good for one try */
    } else if (status == KV_OK) {
        abort(); /* the gate only answers other opcodes to refuse them */
    }
    if (gated == 2) {
        /* The server closes the connection: the next frame is a new one's. */
        memset(state, 0, KVI_AUTH_STATE);
        memset(m, 0, sizeof *m);
    }
}

/* The answer side on arbitrary bytes. */
static void fuzz_answer(const unsigned char nonce_c[KVI_AUTH_NONCE], const uint8_t *body,
                        size_t len)
{
    kvi_buf a = {0};
    int rc = kvi_auth_answer(&a, SECRET, sizeof SECRET - 1, nonce_c, body, len);
    if (rc != KV_OK && rc != KV_EPERM && rc != KV_EIO)
        abort();
    if (rc != KV_OK ? a.len != 0
                    : a.len != 1u + 4u + KVI_AUTH_MAC || a.data[0] != KVI_AUTH_METHOD_PEER)
        abort();
    kvi_buf_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned config = data[0] & 3u;
    size_t answer_len = data[1];
    data += 2;
    size -= 2;
    unsigned char nonce[KVI_AUTH_NONCE] = {0};
    size_t take = size < KVI_AUTH_NONCE ? size : KVI_AUTH_NONCE;
    memcpy(nonce, data, take);
    data += take;
    size -= take;
    if (answer_len > size)
        answer_len = size;
    fuzz_answer(nonce, data, answer_len);
    data += answer_len;
    size -= answer_len;

    node n = {.has_secret = config == 0 || config == 1, .has_tokens = config == 0 || config == 2};
    kvi_credentials creds = {
        .secret = n.has_secret ? SECRET : NULL, .secret_len = n.has_secret ? sizeof SECRET - 1 : 0,
        .tokens = n.has_tokens ? TOKENS : NULL, .n_tokens = n.has_tokens ? 2 : 0,
    };
    if (kvi_auth_new(&n.auth, &creds) != KV_OK)
        abort();
    unsigned char state[KVI_SERVER_GATE_STATE] = {0};
    model m;
    memset(&m, 0, sizeof m);
    kvi_buf out = {0}, body = {0};
    while (size >= 1 + KVI_FRAME_HEADER) {
        uint8_t ctrl = data[0];
        kvi_frame_header h;
        kvi_frame_error e = kvi_frame_parse_header(&h, data + 1, size - 1,
                                                   (uint32_t)(size - 1 - KVI_FRAME_HEADER));
        /* As a server: these close the connection before the gate sees the
         * frame; an unknown opcode still goes through the gate. */
        if (e != KVI_FRAME_OK && e != KVI_FRAME_BAD_OPCODE)
            break;
        const unsigned char *given = data + 1 + KVI_FRAME_HEADER;
        kvi_buf_reset(&body);
        kvi_buf_raw(&body, given, h.body_len);
        if (h.opcode == KVI_OP_AUTH && (ctrl & CTRL_PEER_PROOF) && m.answer_len && n.has_secret) {
            kvi_buf_reset(&body);
            if (kvi_auth_answer(&body, SECRET, sizeof SECRET - 1, m.nonce_c, m.answer,
                                m.answer_len) != KV_OK)
                abort(); /* check_hello_answer saw it pass */
        } else if (h.opcode == KVI_OP_AUTH && (ctrl & CTRL_TOKEN)) {
            kvi_buf_reset(&body);
            kvi_auth_token_body(&body, TOKENS[(ctrl & CTRL_TOKEN_SECOND) ? 1 : 0]);
        } else if (h.opcode == KVI_OP_HELLO && (ctrl & CTRL_GOOD_HELLO)) {
            unsigned char nc[KVI_AUTH_NONCE] = {0};
            memcpy(nc, given, h.body_len < KVI_AUTH_NONCE ? h.body_len : KVI_AUTH_NONCE);
            kvi_buf_reset(&body);
            kvi_buf_bytes(&body, nc, sizeof nc);
        }
        if (body.failed)
            abort();
        size_t consumed = 1 + KVI_FRAME_HEADER + h.body_len;
        h.body_len = (uint32_t)body.len;
        kvi_buf_reset(&out);
        gate_one(&n, state, &m, &h, body.data ? body.data : (const unsigned char *)"", &out);
        data += consumed;
        size -= consumed;
    }
    kvi_buf_free(&out);
    kvi_buf_free(&body);
    kvi_auth_free(n.auth);
    return 0;
}
