/* net/addr.h - "HOST:PORT" addresses and the sockets behind them. */
#ifndef KVI_ADDR_H
#define KVI_ADDR_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

typedef struct kvi_addr {
    struct sockaddr_storage sa;
    socklen_t len;
    char text[128]; /* as given, for logs */
} kvi_addr;

/* Parses "HOST:PORT" or "[V6HOST]:PORT" (numeric hosts, or names that
 * resolve through getaddrinfo). Returns KV_OK or KV_EINVAL with a detail
 * message. */
int kvi_addr_parse(kvi_addr *out, const char *text);

/* A non-blocking listening socket bound to addr (SO_REUSEADDR). Returns the
 * fd, or a negative KV_* code (KV_EBUSY when the port is in use). */
int kvi_listen(const kvi_addr *addr, int backlog);

/* The port a listening socket got (for ":0" listens), or 0. */
int kvi_local_port(int fd);

/* Connects with a timeout; returns a blocking fd with TCP_NODELAY, or a
 * negative KV_* code (KV_EUNAVAILABLE refused/unreachable, or a connection
 * that met itself on a port nothing listens on; KV_ETIMEDOUT). */
int kvi_connect(const kvi_addr *addr, int timeout_ms);

/* kvi_connect from a given local address (port 0: any), so that the peer
 * and packet filters see which node is connecting. NULL: the kernel picks. */
int kvi_connect_from(const kvi_addr *addr, const kvi_addr *source, int timeout_ms);

/* The source address for a node listening on `listen` ("HOST:PORT"): its
 * host with port 0. Returns 1 when there is one to bind to, 0 when the node
 * listens on a wildcard address (or listen does not parse): then the
 * kernel picks the source. */
int kvi_addr_source(kvi_addr *out, const char *listen);

/* 1 when a is a loopback address (127.0.0.0/8, ::1, ::ffff:127.x): only
 * processes of this machine can reach it. */
int kvi_addr_is_loopback(const kvi_addr *a);

#endif
