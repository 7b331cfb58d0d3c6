/*
 * net/auth.h - who may send what on the binary protocol.
 *
 * Three kinds of opcode:
 *   open       PING, HELLO, AUTH: anyone;
 *   client     GET, PUT, DELETE, CAS, BATCH, CLUSTER, BACKUP (admin), and
 *              READ_STATE and
 *              REPAIR (a client's own replica reads and read repairs, for
 *              client-side routing): anyone when the node
 *              has no client tokens, else a connection that showed a token
 *              or proved the cluster secret;
 *   peer       GET_STATE, REPLICATE, GOSSIP, HINT and every internode
 *              opcode added later (anything not listed above): only a
 *              connection that proved the cluster secret. A node with no
 *              secret has no way to tell peers apart, so it accepts them
 *              from anyone, unless it has client tokens (then nobody); the
 *              node refuses to listen beyond loopback that way unless told
 *              it is insecure (see node.c). Internode frame flags
 *              (forwarded, handoff) count as peer operations too.
 *
 * The handshake (docs/PROTOCOL.md), before any other request:
 *   client -> HELLO  bytes nonce_c (32 random bytes)
 *   node   <- OK     bytes nonce_s (32 fresh random bytes), bytes proof_s
 *                    proof_s = HMAC-SHA256(secret, "libkv server" 0x00
 *                                          nonce_c nonce_s), or empty when
 *                    the node has no secret
 *   client -> AUTH   u8 method 2 (peer), bytes proof_c
 *                    proof_c = HMAC-SHA256(secret, "libkv peer" 0x00
 *                                          nonce_s nonce_c)
 *   node   <- OK, or KV_EPERM and the connection closes.
 * Both sides prove the secret without sending it; the node's nonce is
 * fresh for each HELLO and used once, so a recorded proof cannot be
 * replayed on another connection. A client with a token sends
 *   client -> AUTH   u8 method 1 (token), bytes token
 * (tokens travel as they are: use TLS beyond a trusted network).
 *
 * Pure apart from the random nonces: no sockets here. Thread safety: a
 * kvi_auth is immutable once made and read from many threads at once.
 */
#ifndef KVI_AUTH_H
#define KVI_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "format/frame.h"
#include "format/message.h"

#define KVI_AUTH_NONCE 32u
#define KVI_AUTH_MAC 32u
/* Longest token or secret accepted. */
#define KVI_AUTH_MAX_CREDENTIAL 1024u
/* Shortest cluster secret: 16 bytes, 128 bits if random. */
#define KVI_AUTH_MIN_SECRET 16u

#define KVI_AUTH_METHOD_TOKEN 1u
#define KVI_AUTH_METHOD_PEER 2u

/* What one side knows: the cluster secret, and the client tokens it accepts
 * (a node) or the one it shows (a client). Borrowed; copied where kept. */
typedef struct kvi_credentials {
    const unsigned char *secret;
    size_t secret_len;     /* 0: none */
    const char *const *tokens;
    size_t n_tokens;       /* a client uses tokens[0] */
    /* A node on TLS with a CA: a peer must also have shown a certificate
     * the CA signed (KVI_CONN_CERT_VERIFIED) before its proof counts. */
    int peer_needs_cert;
    /* A node's TLS credentials for its own connections to peers (its
     * certificate, shown to them, and the CA it checks theirs against);
     * NULL: plain TCP. Borrowed. */
    const struct kvi_tls *tls;
} kvi_credentials;

typedef struct kvi_auth kvi_auth;

/* A node's gate from its credentials (copied). KV_EINVAL for a secret
 * shorter than KVI_AUTH_MIN_SECRET, or an empty or oversize token. */
int kvi_auth_new(kvi_auth **out, const kvi_credentials *creds);
void kvi_auth_free(kvi_auth *a);
/* 1 when t can be a client token: 1..KVI_AUTH_MAX_CREDENTIAL characters
 * of RFC 6750's b64token (it travels in HTTP's Authorization header too). */
int kvi_auth_token_valid(const char *t);
/* The node has a secret / client tokens. */
int kvi_auth_has_secret(const kvi_auth *a);
int kvi_auth_has_tokens(const kvi_auth *a);

/* What an opcode needs (see the top of this file). */
typedef enum kvi_access {
    KVI_ACCESS_OPEN = 0,
    KVI_ACCESS_CLIENT = 1,
    KVI_ACCESS_PEER = 2
} kvi_access;
kvi_access kvi_auth_access(const kvi_frame_header *h);

/* The server's gate (kvi_gate_fn, net/server.h): answers HELLO and AUTH,
 * refuses with KV_EPERM what the connection may not send, lets the rest
 * through (0). state is the connection's gate state (KVI_AUTH_STATE bytes,
 * zeroed at accept). Returns 0 (dispatch), 1 (answered), or 2 (answered;
 * close the connection once the answer is written: a failed AUTH). */
#define KVI_AUTH_STATE (2u + 2u * KVI_AUTH_NONCE)
int kvi_auth_gate(void *ctx, unsigned char *state, unsigned conn, const kvi_frame_header *h,
                  const unsigned char *body, kvi_buf *out);

/* ------------------------------------------------ the client's side */

/* Appends a HELLO request body with a fresh nonce_c (kept in nonce_c). */
int kvi_auth_hello(kvi_buf *body, unsigned char nonce_c[KVI_AUTH_NONCE]);
/* Checks a HELLO answer's body against the secret and appends the AUTH
 * request body that proves it. KV_EPERM when the node did not prove the
 * secret (an impostor, or another cluster's node); KV_EIO when malformed. */
int kvi_auth_answer(kvi_buf *auth_body, const unsigned char *secret, size_t secret_len,
                    const unsigned char nonce_c[KVI_AUTH_NONCE],
                    const unsigned char *hello_body, size_t hello_len);
/* Appends an AUTH request body showing token. */
void kvi_auth_token_body(kvi_buf *body, const char *token);

/* The proofs, exposed for tests: HMAC-SHA256(secret, label 0x00 a b). */
void kvi_auth_proof(unsigned char out[KVI_AUTH_MAC], const unsigned char *secret,
                    size_t secret_len, const char *label,
                    const unsigned char a[KVI_AUTH_NONCE], const unsigned char b[KVI_AUTH_NONCE]);

#endif
