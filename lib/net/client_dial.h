/*
 * net/client_dial.h - a client connection's setup, blocking with timeouts: TCP
 * connect (trying the endpoints in turn), TLS, and the first exchanges
 * (the cluster secret's proof, a client token, or, for a probing client, a
 * PING whose answer shows whether the endpoint is a libkv node).
 *
 * Threads: any; the parameters are read only.
 */
#ifndef KVI_CLIENT_DIAL_H
#define KVI_CLIENT_DIAL_H

#include <stddef.h>
#include <stdint.h>

#include "net/addr.h"
#include "net/tls.h"
#include "util/log.h"

typedef struct kvi_dial {
    const kvi_addr *endpoints;
    size_t n_endpoints;
    const kvi_addr *source; /* local address to connect from; NULL: any */
    uint32_t connect_timeout_ms;
    uint32_t request_timeout_ms; /* bounds each exchange of the handshake */
    const kvi_tls *tls;          /* NULL: plain TCP */
    const unsigned char *secret; /* the cluster secret, or NULL */
    size_t secret_len;
    const char *token;           /* a client token, or NULL */
    int probe;                   /* PING first when there is no handshake */
    const kvi_logger *log;
    /* Told the socket being set up (then -1 when done with it), so that
     * whoever closes the client can shut it down to cut a wait short. */
    void (*on_socket)(void *ctx, int fd);
    void *on_socket_ctx;
} kvi_dial;

typedef struct kvi_dial_result {
    int status;         /* KV_OK, or why no endpoint could be used */
    int fd;             /* connected, blocking, TCP_NODELAY; -1 on failure */
    kvi_tls_session *tls;
    size_t endpoint;    /* the one that answered */
    char why[320];      /* on failure: the message, naming the endpoints */
} kvi_dial_result;

/* Tries the endpoints from index `first` on, in turn, until one connects
 * and passes the handshake. Returns out->status. */
int kvi_dial_connect(kvi_dial_result *out, const kvi_dial *d, size_t first);

#endif
