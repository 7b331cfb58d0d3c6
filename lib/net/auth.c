/* net/auth.c - the handshake and the gate (see auth.h). */
#include "net/auth.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <gnutls/crypto.h>

#include <kv/common.h>
#include "net/server.h"
#include "util/error.h"
#include "util/wipe.h"

/* The gate's state of one connection (KVI_AUTH_STATE bytes). */
#define ST_LEVEL 0          /* bits: LEVEL_CLIENT, LEVEL_PEER */
#define ST_HELLO 1          /* 1 while a HELLO's nonces wait for an AUTH */
#define ST_NONCE_C 2
#define ST_NONCE_S (2 + KVI_AUTH_NONCE)
#define LEVEL_CLIENT 1u
#define LEVEL_PEER 2u

_Static_assert(KVI_AUTH_STATE <= KVI_SERVER_GATE_STATE, "gate state too small");

static const char SERVER_LABEL[] = "libkv server";
static const char PEER_LABEL[] = "libkv peer";

struct kvi_auth {
    unsigned char *secret;
    size_t secret_len;
    char **tokens;
    size_t *token_lens;
    size_t n_tokens;
    int peer_needs_cert;
};

/* A token must travel in an HTTP Authorization header too: RFC 6750's
 * b64token, letters, digits and - . _ ~ + / with '=' only at the end. */
int kvi_auth_token_valid(const char *t)
{
    size_t len = t ? strlen(t) : 0;
    if (len == 0 || len > KVI_AUTH_MAX_CREDENTIAL)
        return 0;
    size_t i = 0;
    while (i < len && (isalnum((unsigned char)t[i]) || strchr("-._~+/", t[i])))
        i++;
    if (i == 0)
        return 0;
    while (i < len && t[i] == '=')
        i++;
    return i == len;
}

static int check_token(const char *t)
{
    if (!kvi_auth_token_valid(t))
        return kvi_error(KV_EINVAL, "a client token must be 1..%u characters of letters, "
                                    "digits and - . _ ~ + / (then any '=')",
                         KVI_AUTH_MAX_CREDENTIAL);
    return KV_OK;
}

int kvi_auth_new(kvi_auth **out, const kvi_credentials *creds)
{
    *out = NULL;
    if (creds->secret_len && (creds->secret_len < KVI_AUTH_MIN_SECRET ||
                              creds->secret_len > KVI_AUTH_MAX_CREDENTIAL || !creds->secret))
        return kvi_error(KV_EINVAL, "the cluster secret must be %u..%u bytes (it is %zu)",
                         KVI_AUTH_MIN_SECRET, KVI_AUTH_MAX_CREDENTIAL, creds->secret_len);
    size_t n_tokens = creds->n_tokens;
    if (n_tokens && !creds->tokens)
        return kvi_error(KV_EINVAL, "%zu client tokens given, but no array of them", n_tokens);
    for (size_t i = 0; i < n_tokens; i++)
        if (check_token(creds->tokens[i]) != KV_OK)
            return kvi_error(KV_EINVAL, "client token %zu: %s", i + 1, kvi_error_last());
    kvi_auth *a = calloc(1, sizeof *a);
    if (!a)
        return kvi_error(KV_ENOMEM, "out of memory keeping credentials");
    int ok = 1;
    if (creds->secret_len) {
        a->secret = malloc(creds->secret_len);
        ok = a->secret != NULL;
        if (ok) {
            memcpy(a->secret, creds->secret, creds->secret_len);
            a->secret_len = creds->secret_len;
        }
    }
    if (ok && n_tokens) {
        a->tokens = calloc(n_tokens, sizeof *a->tokens);
        a->token_lens = calloc(n_tokens, sizeof *a->token_lens);
        ok = a->tokens && a->token_lens;
        for (size_t i = 0; ok && i < n_tokens; i++) {
            a->tokens[i] = strdup(creds->tokens[i]);
            ok = a->tokens[i] != NULL;
            if (ok) {
                a->token_lens[i] = strlen(a->tokens[i]);
                a->n_tokens = i + 1;
            }
        }
    }
    if (!ok) {
        kvi_auth_free(a);
        return kvi_error(KV_ENOMEM, "out of memory keeping credentials");
    }
    a->peer_needs_cert = creds->peer_needs_cert;
    *out = a;
    return KV_OK;
}

void kvi_auth_free(kvi_auth *a)
{
    if (!a)
        return;
    kvi_wipe(a->secret, a->secret_len);
    free(a->secret);
    for (size_t i = 0; a->tokens && i < a->n_tokens; i++)
        free(a->tokens[i]);
    free(a->tokens);
    free(a->token_lens);
    free(a);
}

int kvi_auth_has_secret(const kvi_auth *a)
{
    return a && a->secret_len > 0;
}

int kvi_auth_has_tokens(const kvi_auth *a)
{
    return a && a->n_tokens > 0;
}

kvi_access kvi_auth_access(const kvi_frame_header *h)
{
    /* Flags only peers may set: a client must not pass itself off as a
     * forwarding coordinator or a hint's handoff. */
    if (h->flags & (KVI_FRAME_FLAG_FORWARDED | KVI_FRAME_FLAG_HANDOFF))
        return KVI_ACCESS_PEER;
    switch (h->opcode) {
    case KVI_OP_PING:
    case KVI_OP_HELLO:
    case KVI_OP_AUTH:
        return KVI_ACCESS_OPEN;
    case KVI_OP_GET:
    case KVI_OP_PUT:
    case KVI_OP_DELETE:
    case KVI_OP_CAS:
    case KVI_OP_BATCH:
    case KVI_OP_CLUSTER:
    case KVI_OP_READ_STATE:
    case KVI_OP_REPAIR:
    case KVI_OP_BACKUP: /* an admin request: the same token as the data */
    case KVI_OP_REPAIR_START:
    case KVI_OP_TOPOLOGY_CHANGE: /* an admin request, as BACKUP */
    case KVI_OP_SCAN:   /* SCAN_RANGE, its replicas' side, stays between peers */
        return KVI_ACCESS_CLIENT;
    default:
        /* Internode, and whatever is added later: closed by default. */
        return KVI_ACCESS_PEER;
    }
}

/* Equal in time that depends only on the lengths. */
static int same_bytes(const unsigned char *a, size_t a_len, const unsigned char *b, size_t b_len)
{
    if (a_len != b_len)
        return 0;
    unsigned char diff = 0;
    for (size_t i = 0; i < a_len; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

void kvi_auth_proof(unsigned char out[KVI_AUTH_MAC], const unsigned char *secret,
                    size_t secret_len, const char *label,
                    const unsigned char a[KVI_AUTH_NONCE], const unsigned char b[KVI_AUTH_NONCE])
{
    unsigned char msg[32 + 2 * KVI_AUTH_NONCE];
    size_t label_len = strlen(label) + 1; /* with its NUL, as a separator */
    memcpy(msg, label, label_len);
    memcpy(msg + label_len, a, KVI_AUTH_NONCE);
    memcpy(msg + label_len + KVI_AUTH_NONCE, b, KVI_AUTH_NONCE);
    if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, secret, secret_len, msg,
                         label_len + 2 * KVI_AUTH_NONCE, out) != 0)
        memset(out, 0, KVI_AUTH_MAC); /* never matches a real proof's check below */
}

static int random_nonce(unsigned char out[KVI_AUTH_NONCE])
{
    size_t got = 0;
    while (got < KVI_AUTH_NONCE) {
        ssize_t n = getrandom(out + got, KVI_AUTH_NONCE - got, 0);
        if (n <= 0)
            return kvi_error(KV_EIO, "no random bytes for a nonce");
        got += (size_t)n;
    }
    return KV_OK;
}

/* Appends an answer frame to out: OK with body (may be NULL), or an error. */
static void answer(kvi_buf *out, const kvi_frame_header *h, int status, const kvi_buf *body,
                   const char *message)
{
    if (status != KV_OK) {
        kvi_error_frame(out, h->opcode, h->request_id, status, 0, message);
        return;
    }
    size_t start = out->len;
    kvi_frame_begin(out);
    if (body)
        kvi_buf_raw(out, body->data, body->len);
    kvi_frame_finish(out, start, h->opcode, KVI_FRAME_FLAG_RESPONSE, KV_OK, h->request_id);
}

static int on_hello(const kvi_auth *a, unsigned char *state, const kvi_frame_header *h,
                    const unsigned char *body, kvi_buf *out)
{
    kvi_reader r = kvi_reader_init(body, h->body_len);
    kvi_bytes nonce_c = kvi_read_bytes(&r);
    if (kvi_reader_done(&r) != 0 || nonce_c.len != KVI_AUTH_NONCE) {
        answer(out, h, KV_EINVAL, NULL, "malformed HELLO: expected a 32-byte nonce");
        return 1;
    }
    unsigned char *nonce_s = state + ST_NONCE_S;
    if (random_nonce(nonce_s) != KV_OK) {
        answer(out, h, KV_EIO, NULL, kvi_error_last());
        return 1;
    }
    memcpy(state + ST_NONCE_C, nonce_c.data, KVI_AUTH_NONCE);
    state[ST_HELLO] = 1;
    unsigned char proof[KVI_AUTH_MAC];
    size_t proof_len = 0;
    if (a->secret_len) {
        kvi_auth_proof(proof, a->secret, a->secret_len, SERVER_LABEL, nonce_c.data, nonce_s);
        proof_len = KVI_AUTH_MAC;
    }
    kvi_buf b = {0};
    unsigned char body_mem[2 * (4 + KVI_AUTH_NONCE)];
    b.data = body_mem; /* fits: never grows, never freed */
    b.cap = sizeof body_mem;
    kvi_buf_bytes(&b, nonce_s, KVI_AUTH_NONCE);
    kvi_buf_bytes(&b, proof, proof_len);
    answer(out, h, KV_OK, &b, NULL);
    return 1;
}

static int on_auth(const kvi_auth *a, unsigned char *state, unsigned conn,
                   const kvi_frame_header *h, const unsigned char *body, kvi_buf *out)
{
    kvi_reader r = kvi_reader_init(body, h->body_len);
    uint8_t method = kvi_read_u8(&r);
    kvi_bytes data = kvi_read_bytes(&r);
    if (kvi_reader_done(&r) != 0) {
        answer(out, h, KV_EINVAL, NULL, "malformed AUTH body");
        return 2;
    }
    if (method == KVI_AUTH_METHOD_TOKEN) {
        for (size_t i = 0; i < a->n_tokens; i++) {
            if (same_bytes(data.data, data.len, (const unsigned char *)a->tokens[i],
                           a->token_lens[i])) {
                state[ST_LEVEL] |= LEVEL_CLIENT;
                answer(out, h, KV_OK, NULL, NULL);
                return 1;
            }
        }
        if (!a->n_tokens) {
            /* Nothing to check: the node's data is open to every client,
             * and a client set up with a token still works against it. */
            state[ST_LEVEL] |= LEVEL_CLIENT;
            answer(out, h, KV_OK, NULL, NULL);
            return 1;
        }
        answer(out, h, KV_EPERM, NULL, "authentication failed: unknown token");
        return 2;
    }
    if (method == KVI_AUTH_METHOD_PEER) {
        int had_hello = state[ST_HELLO];
        state[ST_HELLO] = 0; /* a nonce is good for one try */
        if (!a->secret_len) {
            answer(out, h, KV_EPERM, NULL,
                   "authentication failed: this node has no cluster secret");
            return 2;
        }
        if (!had_hello) {
            answer(out, h, KV_EPERM, NULL, "authentication failed: AUTH without a HELLO");
            return 2;
        }
        unsigned char want[KVI_AUTH_MAC];
        kvi_auth_proof(want, a->secret, a->secret_len, PEER_LABEL, state + ST_NONCE_S,
                       state + ST_NONCE_C);
        if (!same_bytes(data.data, data.len, want, sizeof want)) {
            answer(out, h, KV_EPERM, NULL,
                   "authentication failed: wrong proof of the cluster secret");
            return 2;
        }
        if (a->peer_needs_cert && !(conn & KVI_CONN_CERT_VERIFIED)) {
            answer(out, h, KV_EPERM, NULL,
                   "authentication failed: a peer must show a TLS certificate signed by the "
                   "cluster's CA");
            return 2;
        }
        state[ST_LEVEL] |= LEVEL_PEER | LEVEL_CLIENT;
        answer(out, h, KV_OK, NULL, NULL);
        return 1;
    }
    answer(out, h, KV_EINVAL, NULL, "AUTH: unknown method");
    return 2;
}

/* Whether a connection that has not proved the secret may act as a peer:
 * with a secret, never; without one, a certificate the cluster's CA signed
 * is the proof when the node is on TLS with a CA; otherwise anyone may,
 * unless the node guards its data with tokens (then nobody may: a client
 * with a token is no peer). */
static int peer_by_default(const kvi_auth *a, unsigned conn)
{
    if (a->secret_len)
        return 0;
    if (a->peer_needs_cert)
        return (conn & KVI_CONN_CERT_VERIFIED) != 0;
    return a->n_tokens == 0;
}

int kvi_auth_gate(void *ctx, unsigned char *state, unsigned conn, const kvi_frame_header *h,
                  const unsigned char *body, kvi_buf *out)
{
    const kvi_auth *a = ctx;
    if (h->opcode == KVI_OP_HELLO)
        return on_hello(a, state, h, body, out);
    if (h->opcode == KVI_OP_AUTH)
        return on_auth(a, state, conn, h, body, out);
    kvi_access need = kvi_auth_access(h);
    unsigned level = state[ST_LEVEL];
    if (need == KVI_ACCESS_CLIENT && a->n_tokens && !(level & LEVEL_CLIENT)) {
        answer(out, h, KV_EPERM, NULL,
               "not permitted: this node requires a client token (AUTH) first");
        return 1;
    }
    if (need == KVI_ACCESS_PEER && !(level & LEVEL_PEER) && !peer_by_default(a, conn)) {
        answer(out, h, KV_EPERM, NULL,
               a->secret_len ? "not permitted: a peer operation from a connection that has "
                               "not proved the cluster secret"
               : a->peer_needs_cert ? "not permitted: a peer operation from a connection "
                                      "without a certificate signed by the cluster's CA"
                                    : "not permitted: peer operations need a cluster secret");
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------ client side */

int kvi_auth_hello(kvi_buf *body, unsigned char nonce_c[KVI_AUTH_NONCE])
{
    int rc = random_nonce(nonce_c);
    if (rc == KV_OK)
        kvi_buf_bytes(body, nonce_c, KVI_AUTH_NONCE);
    return rc;
}

int kvi_auth_answer(kvi_buf *auth_body, const unsigned char *secret, size_t secret_len,
                    const unsigned char nonce_c[KVI_AUTH_NONCE],
                    const unsigned char *hello_body, size_t hello_len)
{
    kvi_reader r = kvi_reader_init(hello_body, hello_len);
    kvi_bytes nonce_s = kvi_read_bytes(&r);
    kvi_bytes proof_s = kvi_read_bytes(&r);
    if (kvi_reader_done(&r) != 0 || nonce_s.len != KVI_AUTH_NONCE)
        return kvi_error(KV_EIO, "malformed HELLO answer");
    unsigned char want[KVI_AUTH_MAC];
    kvi_auth_proof(want, secret, secret_len, SERVER_LABEL, nonce_c, nonce_s.data);
    if (!same_bytes(proof_s.data, proof_s.len, want, sizeof want))
        return kvi_error(KV_EPERM, proof_s.len ? "the node did not prove the cluster secret "
                                                 "(another cluster's secret?)"
                                               : "the node has no cluster secret");
    unsigned char proof_c[KVI_AUTH_MAC];
    kvi_auth_proof(proof_c, secret, secret_len, PEER_LABEL, nonce_s.data, nonce_c);
    kvi_buf_u8(auth_body, KVI_AUTH_METHOD_PEER);
    kvi_buf_bytes(auth_body, proof_c, sizeof proof_c);
    return KV_OK;
}

void kvi_auth_token_body(kvi_buf *body, const char *token)
{
    kvi_buf_u8(body, KVI_AUTH_METHOD_TOKEN);
    kvi_buf_bytes(body, token, strlen(token));
}
