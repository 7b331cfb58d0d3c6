/*
 * net/tls.h - TLS on the binary protocol's connections (GnuTLS), for both
 * ends: the node's epoll server (non-blocking sockets, the handshake driven
 * by the loop) and the client (blocking sockets: a reader thread receiving
 * while callers send, which GnuTLS allows on one session as long as there
 * is a single sender at a time and no renegotiation).
 *
 * Versions: TLS 1.2 and 1.3 (1.0 and 1.1 refused, RFC 8996). Verification:
 *   - a client checks the node's certificate against its CA (or the
 *     system's trust store when none is given) and the address it dialled
 *     (an IP address must be in the certificate's subjectAltName);
 *   - a node with a CA asks every client for a certificate; one that is
 *     shown must verify against the CA, or the connection is closed. A
 *     connection with a verified certificate is recorded as such (a peer
 *     must have one; see net/auth.h).
 *
 * Thread safety: a kvi_tls (credentials) is immutable once made and shared
 * by every session; a session belongs to one connection.
 */
#ifndef KVI_TLS_H
#define KVI_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct kvi_tls kvi_tls;
typedef struct kvi_tls_session kvi_tls_session;

/* Credentials from PEM text (each may be NULL): this side's certificate
 * chain and key (both or neither; a server needs them), and the CA that
 * signed the other side's. is_server picks the role. KV_EINVAL with
 * GnuTLS's reason when a PEM does not parse or the key does not match. */
int kvi_tls_new(kvi_tls **out, int is_server, const char *cert_pem, const char *key_pem,
                const char *ca_pem);
void kvi_tls_free(kvi_tls *t);

/* Client side: a TLS session over the connected, blocking fd, handshake
 * done (within timeout_ms) and the node's certificate verified for host
 * (the host part of the address dialled). KV_OK, KV_EPERM (the node's
 * certificate does not verify: the message says why), KV_EUNAVAILABLE or
 * KV_ETIMEDOUT (the handshake did not complete). */
int kvi_tls_connect(kvi_tls_session **out, const kvi_tls *t, int fd, const char *host,
                    uint32_t timeout_ms);

/* Server side: a session over an accepted, non-blocking fd; drive the
 * handshake with kvi_tls_handshake. */
int kvi_tls_accept(kvi_tls_session **out, const kvi_tls *t, int fd);

/* Outcomes of a step that may need the socket again. */
#define KVI_TLS_WANT_READ (-1000)
#define KVI_TLS_WANT_WRITE (-1001)

/* One step of the server's handshake: KV_OK when complete (the client's
 * certificate, if any, verified), KVI_TLS_WANT_READ/WRITE, or KV_EPERM /
 * KV_EIO (close the connection; the message says why). */
int kvi_tls_handshake(kvi_tls_session *s);
/* 1 when the client showed a certificate that verified against the CA. */
int kvi_tls_peer_verified(const kvi_tls_session *s);

/* As recv and send: bytes moved (> 0), 0 for a clean end of stream (recv),
 * KVI_TLS_WANT_READ/WRITE on a non-blocking socket, or -1 for an error. A
 * send that wanted the socket must be repeated with the same bytes. */
ssize_t kvi_tls_recv(kvi_tls_session *s, void *buf, size_t len);
ssize_t kvi_tls_send(kvi_tls_session *s, const void *buf, size_t len);
/* Bytes already decrypted and waiting: epoll will not say so. */
size_t kvi_tls_pending(kvi_tls_session *s);
/* Frees the session (the fd is the caller's to close). */
void kvi_tls_close(kvi_tls_session *s);

#endif
