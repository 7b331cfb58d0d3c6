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
 * negative KV_* code (KV_EUNAVAILABLE refused/unreachable, KV_ETIMEDOUT). */
int kvi_connect(const kvi_addr *addr, int timeout_ms);

#endif
