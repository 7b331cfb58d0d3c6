/* The binary protocol's server (net/server.c) against raw sockets:
 * connections reset at every point of a frame while workers' answers come
 * back through the wake fd (the server must stay clean under ASan and keep
 * answering); the byte budget under clients that send large frames and do
 * not read; stop answering what it has read; the gate. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <kv/kv.h>
#include "format/frame.h"
#include "format/message.h"
#include "net/addr.h"
#include "net/client.h"
#include "net/loop.h"
#include "net/server.h"

/* ---------------------------------------------------------- the server */

/* What the test handler counts and how slow its pooled requests are. */
typedef struct handler_ctx {
    atomic_uint dispatched;    /* requests the server has read and cut */
    atomic_uint marked;        /* of those, with an id from MARKED_ID on */
    atomic_uint handled;       /* requests that reached the handler */
    atomic_uint slow_done;     /* "slow" requests answered */
    atomic_uint slow_us;       /* a pooled request for key "slow" sleeps this long, */
    atomic_uint pooled;        /* bit 1 << opcode: the opcode runs on pool 1 */
    atomic_uint odd_ids_pooled; /* and so do requests with odd ids */
    atomic_uint pooled_max_us; /* a pooled request sleeps up to this */
    atomic_uint seed;
} handler_ctx;

#define POOLED(op) (1u << (op))

static void sleep_us(unsigned us)
{
    struct timespec ts = {us / 1000000u, (long)(us % 1000000u) * 1000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* PING answers empty, GET echoes its key as the value, PUT answers the
 * value's length as the version: answers a test can check. */
static void handle(void *ctx, const kvi_frame_header *h, const unsigned char *body, kvi_buf *out)
{
    handler_ctx *hc = ctx;
    atomic_fetch_add(&hc->handled, 1);
    kvi_request req;
    if (kvi_request_decode(&req, h->opcode, body, h->body_len) != 0) {
        kvi_error_frame(out, h->opcode, h->request_id, KV_EINVAL, 0, "malformed");
        return;
    }
    kvi_response r = {.opcode = h->opcode};
    if (h->opcode == KVI_OP_GET) {
        r.value = req.key;
    } else if (h->opcode == KVI_OP_PUT) {
        r.version = req.value.len;
    } else if (h->opcode != KVI_OP_PING) {
        kvi_error_frame(out, h->opcode, h->request_id, KV_ENOTSUP, 0, "not here");
        return;
    }
    size_t start = out->len;
    kvi_frame_begin(out);
    kvi_response_encode(out, &r);
    kvi_frame_finish(out, start, h->opcode, KVI_FRAME_FLAG_RESPONSE, 0, h->request_id);
}

/* The same, after a short random sleep: a worker's answer comes back
 * through the wake fd at a moment of its own. */
static void handle_pooled(void *ctx, const kvi_frame_header *h, const unsigned char *body,
                          kvi_buf *out)
{
    handler_ctx *hc = ctx;
    unsigned max = atomic_load(&hc->pooled_max_us);
    if (max) {
        unsigned seed = atomic_fetch_add(&hc->seed, 7919u);
        sleep_us((unsigned)rand_r(&seed) % max);
    }
    kvi_request req;
    if (kvi_request_decode(&req, h->opcode, body, h->body_len) == 0 && req.key.len == 4 &&
        memcmp(req.key.data, "slow", 4) == 0) {
        sleep_us(atomic_load(&hc->slow_us));
        atomic_fetch_add(&hc->slow_done, 1);
    }
    handle(ctx, h, body, out);
}

/* Also the test's count of the requests the server has read: it asks
 * here once for each, as it cuts the frame. Requests with an id from
 * MARKED_ID on are counted apart, so that a test can wait for its own
 * while another client is sending. */
#define MARKED_ID UINT64_C(1000000)
static int offload_some(void *ctx, const kvi_frame_header *h)
{
    handler_ctx *hc = ctx;
    atomic_fetch_add(&hc->dispatched, 1);
    if (h->request_id >= MARKED_ID)
        atomic_fetch_add(&hc->marked, 1);
    if (atomic_load(&hc->odd_ids_pooled) && (h->request_id & 1u))
        return 1;
    return (atomic_load(&hc->pooled) >> h->opcode) & 1u;
}

static void handle_any(void *ctx, const kvi_frame_header *h, const unsigned char *body,
                       kvi_buf *out)
{
    handler_ctx *hc = ctx;
    if ((atomic_load(&hc->odd_ids_pooled) && (h->request_id & 1u)) ||
        ((atomic_load(&hc->pooled) >> h->opcode) & 1u))
        handle_pooled(ctx, h, body, out);
    else
        handle(ctx, h, body, out);
}

/* Two I/O threads; GET and PUT on a pool of two workers unless the test
 * says otherwise. */
static kvi_server_config base_config(handler_ctx *hc)
{
    atomic_store(&hc->pooled, POOLED(KVI_OP_GET) | POOLED(KVI_OP_PUT));
    kvi_server_config cfg = {
        .listen_addr = "127.0.0.1:0",
        .io_threads = 2,
        .max_body = KVI_FRAME_DEFAULT_MAX_BODY,
        .idle_timeout_ms = 30000,
        .max_connections = 4096,
        .handler = handle_any,
        .handler_ctx = hc,
        .offload = offload_some,
        .workers = {2, 0},
    };
    return cfg;
}

/* ---------------------------------------------------------- the client */

static int connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* No read in these tests waits forever. */
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

/* Closes with a reset (SO_LINGER 0): the server sees ECONNRESET, not EOF. */
static void reset_close(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

static int send_all(int fd, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n) {
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

static int recv_all(int fd, void *p, size_t n)
{
    unsigned char *b = p;
    while (n) {
        ssize_t k = recv(fd, b, n, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Appends one request frame to b. */
static void add_request(kvi_buf *b, uint8_t opcode, uint64_t id, const void *key, size_t key_len,
                        const void *value, size_t value_len)
{
    size_t start = b->len;
    kvi_frame_begin(b);
    kvi_request req = {.opcode = opcode, .key = {key, key_len}, .value = {value, value_len}};
    kvi_request_encode(b, &req);
    assert_int_equal(kvi_frame_finish(b, start, opcode, 0, 0, id), 0);
}

/* Reads one response frame: its header into h, its body into body (reset
 * first). 0, or -1 when the connection ended or the frame is bad. */
static int read_frame(int fd, kvi_frame_header *h, kvi_buf *body)
{
    unsigned char head[KVI_FRAME_HEADER];
    if (recv_all(fd, head, sizeof head) != 0)
        return -1;
    /* An unknown opcode's answer carries that opcode. */
    kvi_frame_error e = kvi_frame_parse_header(h, head, sizeof head, KVI_FRAME_MAX_BODY_LIMIT);
    if (e != KVI_FRAME_OK && e != KVI_FRAME_BAD_OPCODE)
        return -1;
    kvi_buf_reset(body);
    if (h->body_len) {
        unsigned char *p = malloc(h->body_len);
        assert_non_null(p);
        int rc = recv_all(fd, p, h->body_len);
        if (rc == 0)
            kvi_buf_raw(body, p, h->body_len);
        free(p);
        if (rc != 0)
            return -1;
    }
    return kvi_frame_verify(h, head, body->data) == KVI_FRAME_OK ? 0 : -1;
}

/* One normal round trip on a fresh connection: PING, GET and PUT, each
 * answered correctly. */
static void check_serves(int port)
{
    int fd = connect_port(port);
    assert_true(fd >= 0);
    kvi_buf b = {0}, body = {0};
    add_request(&b, KVI_OP_PING, 1, NULL, 0, NULL, 0);
    add_request(&b, KVI_OP_GET, 2, "hello", 5, NULL, 0);
    add_request(&b, KVI_OP_PUT, 3, "k", 1, "value", 5);
    assert_int_equal(send_all(fd, b.data, b.len), 0);
    unsigned seen = 0;
    for (int i = 0; i < 3; i++) {
        kvi_frame_header h;
        assert_int_equal(read_frame(fd, &h, &body), 0);
        assert_int_equal(h.status, KV_OK);
        kvi_response r;
        assert_int_equal(kvi_response_decode(&r, h.opcode, h.status, body.data, body.len), 0);
        seen |= 1u << h.request_id;
        if (h.request_id == 2) {
            assert_int_equal(h.opcode, KVI_OP_GET);
            assert_int_equal(r.value.len, 5);
            assert_memory_equal(r.value.data, "hello", 5);
        } else if (h.request_id == 3) {
            assert_int_equal(h.opcode, KVI_OP_PUT);
            assert_int_equal(r.version, 5);
        } else {
            assert_int_equal(h.opcode, KVI_OP_PING);
        }
    }
    assert_int_equal(seen, 0xe);
    close(fd);
    kvi_buf_free(&b);
    kvi_buf_free(&body);
}

/* Waits (bounded) for the server's byte count to come down to at most
 * limit; returns the last count seen. */
static size_t wait_buffered(const kvi_server *s, size_t limit, unsigned timeout_ms)
{
    uint64_t deadline = now_ms() + timeout_ms;
    size_t n = kvi_server_buffered_bytes(s);
    while (n > limit && now_ms() < deadline) {
        sleep_us(1000);
        n = kvi_server_buffered_bytes(s);
    }
    return n;
}

/* ------------------------------------------------- resets at any moment */

#define STRESS_THREADS 6
#define STRESS_CONNS 300
#define STRESS_MAX_FRAMES 40
/* Each stress thread gives up after this long, whatever its count. */
#define STRESS_TIME_MS 90000u

typedef struct stress_arg {
    int port;
    unsigned seed;
    unsigned conns;     /* connections made */
    unsigned answered;  /* answers read and checked */
    unsigned bad;       /* answers that did not match their request */
} stress_arg;

static void *stress_thread(void *p)
{
    stress_arg *a = p;
    kvi_buf b = {0}, body = {0};
    size_t starts[STRESS_MAX_FRAMES + 1];
    static unsigned char value[48 * 1024];
    uint64_t deadline = now_ms() + STRESS_TIME_MS;
    for (unsigned i = 0; i < STRESS_CONNS && now_ms() < deadline; i++) {
        int fd = connect_port(a->port);
        if (fd < 0)
            continue;
        a->conns++;
        unsigned n = 1 + (unsigned)rand_r(&a->seed) % STRESS_MAX_FRAMES;
        kvi_buf_reset(&b);
        for (unsigned f = 0; f < n; f++) {
            starts[f] = b.len;
            char key[64];
            int key_len = snprintf(key, sizeof key, "key-%u-%u", i, f);
            switch (rand_r(&a->seed) % 4) {
            case 0:
                add_request(&b, KVI_OP_PING, f, NULL, 0, NULL, 0);
                break;
            case 1:
                add_request(&b, KVI_OP_PUT, f, key, (size_t)key_len, value,
                            (size_t)rand_r(&a->seed) % sizeof value);
                break;
            default:
                add_request(&b, KVI_OP_GET, f, key, (size_t)key_len, NULL, 0);
                break;
            }
        }
        starts[n] = b.len;
        unsigned mode = (unsigned)rand_r(&a->seed) % 5;
        unsigned k = (unsigned)rand_r(&a->seed) % n;
        size_t frame_len = starts[k + 1] - starts[k];
        size_t cut = b.len;
        if (mode == 0) /* within a header */
            cut = starts[k] + 1 + (size_t)rand_r(&a->seed) % (KVI_FRAME_HEADER - 1);
        else if (mode == 1 && frame_len > KVI_FRAME_HEADER) /* within a body */
            cut = starts[k] + KVI_FRAME_HEADER +
                  (size_t)rand_r(&a->seed) % (frame_len - KVI_FRAME_HEADER);
        int sent = send_all(fd, b.data, cut) == 0;
        /* Reset at a random moment: before the workers answer, while their
         * answers wait for the wake fd, or while they are being written. */
        unsigned pause = (unsigned)rand_r(&a->seed) % 400;
        if (pause < 300)
            sleep_us(pause);
        if (sent && mode == 3) {
            /* Read some of the answers, then reset with the rest coming. */
            unsigned want = (unsigned)rand_r(&a->seed) % n;
            for (unsigned r = 0; r < want; r++) {
                kvi_frame_header h;
                if (read_frame(fd, &h, &body) != 0)
                    break;
                a->answered++;
            }
        }
        if (sent && mode == 4 && cut == b.len) {
            /* A well-behaved client now and then: every answer, checked. */
            for (unsigned r = 0; r < n; r++) {
                kvi_frame_header h;
                if (read_frame(fd, &h, &body) != 0) {
                    a->bad++;
                    break;
                }
                a->answered++;
                if (h.status != KV_OK || h.request_id >= n)
                    a->bad++;
            }
            close(fd);
            continue;
        }
        reset_close(fd);
    }
    kvi_buf_free(&b);
    kvi_buf_free(&body);
    return NULL;
}

static void resets_at_any_moment_leave_the_server_serving(void **state)
{
    (void)state;
    handler_ctx hc = {.pooled_max_us = 300};
    kvi_server_config cfg = base_config(&hc);
    kvi_server *s;
    assert_int_equal(kvi_server_start(&s, &cfg), KV_OK);
    int port = kvi_server_port(s);

    pthread_t threads[STRESS_THREADS];
    stress_arg args[STRESS_THREADS];
    for (unsigned i = 0; i < STRESS_THREADS; i++) {
        args[i] = (stress_arg){.port = port, .seed = 0x9e3779b9u * (i + 1)};
        assert_int_equal(pthread_create(&threads[i], NULL, stress_thread, &args[i]), 0);
    }
    unsigned conns = 0, answered = 0, bad = 0;
    for (unsigned i = 0; i < STRESS_THREADS; i++) {
        pthread_join(threads[i], NULL);
        conns += args[i].conns;
        answered += args[i].answered;
        bad += args[i].bad;
    }
    printf("stress: %u connections, %u answers read, %u requests handled\n", conns, answered,
           atomic_load(&hc.handled));
    assert_int_equal(bad, 0);
    assert_true(conns > STRESS_THREADS * STRESS_CONNS / 2);
    check_serves(port);
    /* Every connection is gone: so is every byte charged for them. */
    assert_int_equal(wait_buffered(s, 0, 5000), 0);
    kvi_server_stop(s);
}

/* A socket bound beforehand (a node binds both its ports before serving
 * either): a client that connected while nobody served it is answered once
 * the server starts, and the server closes the socket when it stops, or
 * when it cannot start. */
static void a_socket_bound_beforehand_is_served_then_closed(void **state)
{
    (void)state;
    kvi_addr addr;
    assert_int_equal(kvi_addr_parse(&addr, "127.0.0.1:0"), KV_OK);
    int lfd = kvi_listen(&addr, 16);
    assert_true(lfd >= 0);
    int port = kvi_local_port(lfd);
    int early = connect_port(port); /* waits in the backlog */
    assert_true(early >= 0);
    kvi_buf b = {0}, body = {0};
    add_request(&b, KVI_OP_PING, 7, NULL, 0, NULL, 0);
    assert_int_equal(send_all(early, b.data, b.len), 0);

    handler_ctx hc = {0};
    kvi_server_config cfg = base_config(&hc);
    cfg.has_listen_fd = 1;
    cfg.listen_fd = lfd;
    kvi_server *s;
    assert_int_equal(kvi_server_start(&s, &cfg), KV_OK);
    assert_int_equal(kvi_server_port(s), port);
    kvi_frame_header h;
    assert_int_equal(read_frame(early, &h, &body), 0);
    assert_int_equal(h.request_id, 7);
    assert_int_equal(h.status, KV_OK);
    close(early);
    check_serves(port);
    kvi_server_stop(s);
    assert_int_equal(fcntl(lfd, F_GETFD), -1);
    assert_int_equal(errno, EBADF);

    /* A start that fails still takes the socket. */
    lfd = kvi_listen(&addr, 16);
    assert_true(lfd >= 0);
    cfg.listen_addr = "not an address";
    cfg.listen_fd = lfd;
    assert_int_not_equal(kvi_server_start(&s, &cfg), KV_OK);
    assert_int_equal(fcntl(lfd, F_GETFD), -1);
    assert_int_equal(errno, EBADF);
    kvi_buf_free(&b);
    kvi_buf_free(&body);
}

/* ------------------------------------------------------ the byte budget */

#define READ_CHUNK_BYTES (64u * 1024u)

/* One PUT of a 4 MiB value, then small requests on the same connection:
 * once they are answered, the connection holds no more than a read chunk;
 * once it closes, nothing. Inline, and on a worker (where the large body
 * is handed over rather than copied). */
static void a_large_frame_does_not_pin_its_memory(void **state)
{
    (void)state;
    handler_ctx hc = {0};
    kvi_server_config cfg = base_config(&hc);
    cfg.max_body = 8u * 1024u * 1024u;
    kvi_server *s;
    assert_int_equal(kvi_server_start(&s, &cfg), KV_OK);
    size_t big = 4u * 1024u * 1024u;
    unsigned char *value = calloc(1, big);
    assert_non_null(value);
    kvi_buf b = {0}, body = {0};
    for (int pooled = 0; pooled < 2; pooled++) {
        atomic_store(&hc.pooled, pooled ? POOLED(KVI_OP_PUT) : 0u);
        int fd = connect_port(kvi_server_port(s));
        assert_true(fd >= 0);
        kvi_buf_reset(&b);
        add_request(&b, KVI_OP_PUT, 100, "big", 3, value, big);
        for (uint64_t id = 0; id < 5; id++)
            add_request(&b, KVI_OP_GET, id, "small", 5, NULL, 0);
        assert_int_equal(send_all(fd, b.data, b.len), 0);
        for (int i = 0; i < 6; i++) {
            kvi_frame_header h;
            assert_int_equal(read_frame(fd, &h, &body), 0);
            assert_int_equal(h.status, KV_OK);
            if (h.request_id == 100) {
                kvi_response r;
                assert_int_equal(kvi_response_decode(&r, h.opcode, h.status, body.data,
                                                     body.len), 0);
                assert_int_equal(r.version, big);
            }
        }
        /* While the 4 MiB frame was in, the count was over 4 MiB. */
        size_t held = wait_buffered(s, READ_CHUNK_BYTES, 2000);
        printf("%s: %zu bytes held after the large frame\n", pooled ? "pooled" : "inline", held);
        assert_true(held <= READ_CHUNK_BYTES);
        close(fd);
        assert_int_equal(wait_buffered(s, 0, 2000), 0);
    }
    free(value);
    kvi_buf_free(&b);
    kvi_buf_free(&body);
    kvi_server_stop(s);
}

/* A frame larger than the whole budget cannot be admitted: it is answered
 * "server busy" (its body skipped as it arrives), and the connection goes
 * on serving. */
static void a_frame_larger_than_the_budget_is_refused(void **state)
{
    (void)state;
    handler_ctx hc = {0};
    kvi_server_config cfg = base_config(&hc);
    cfg.max_body = 4u * 1024u * 1024u;
    cfg.max_buffered_bytes = 1024u * 1024u;
    kvi_server *s;
    assert_int_equal(kvi_server_start(&s, &cfg), KV_OK);
    int fd = connect_port(kvi_server_port(s));
    assert_true(fd >= 0);
    size_t big = 2u * 1024u * 1024u;
    unsigned char *value = calloc(1, big);
    assert_non_null(value);
    kvi_buf b = {0}, body = {0};
    add_request(&b, KVI_OP_PUT, 1, "big", 3, value, big);
    add_request(&b, KVI_OP_GET, 2, "after", 5, NULL, 0);
    assert_int_equal(send_all(fd, b.data, b.len), 0);
    int refused = 0, answered = 0;
    for (int i = 0; i < 2; i++) {
        kvi_frame_header h;
        assert_int_equal(read_frame(fd, &h, &body), 0);
        kvi_response r;
        assert_int_equal(kvi_response_decode(&r, h.opcode, h.status, body.data, body.len), 0);
        if (h.request_id == 1) {
            assert_int_equal(h.status, KV_ENOMEM);
            assert_true(r.message.len > 12);
            assert_memory_equal(r.message.data, "server busy:", 12);
            refused = 1;
        } else {
            assert_int_equal(h.request_id, 2);
            assert_int_equal(h.status, KV_OK);
            assert_int_equal(r.value.len, 5);
            answered = 1;
        }
    }
    assert_true(refused && answered);
    close(fd);
    assert_int_equal(wait_buffered(s, 0, 2000), 0);
    free(value);
    kvi_buf_free(&b);
    kvi_buf_free(&body);
    kvi_server_stop(s);
}

/* A client holds most of the budget with a half-sent frame: another
 * client's large frame waits for room (the server stops reading it), and
 * once it has waited long enough is refused "server busy"; that client's
 * small requests are still served, and the first client's frame, once
 * complete, is answered. */
static void a_frame_that_waits_too_long_is_refused(void **state)
{
    (void)state;
    handler_ctx hc = {0};
    kvi_server_config cfg = base_config(&hc);
    cfg.max_body = 4u * 1024u * 1024u;
    cfg.max_buffered_bytes = 2u * 1024u * 1024u;
    kvi_server *s;
    assert_int_equal(kvi_server_start(&s, &cfg), KV_OK);
    int port = kvi_server_port(s);
    unsigned char *value = calloc(1, 1536u * 1024u);
    assert_non_null(value);
    kvi_buf held = {0}, waits = {0}, body = {0};
    add_request(&held, KVI_OP_PUT, 1, "held", 4, value, 1536u * 1024u);
    add_request(&waits, KVI_OP_PUT, 2, "waits", 5, value, 1024u * 1024u);
    add_request(&waits, KVI_OP_GET, 3, "small", 5, NULL, 0);

    int a = connect_port(port);
    assert_true(a >= 0);
    size_t half = held.len / 2;
    assert_int_equal(send_all(a, held.data, half), 0);
    /* Once the server holds more than a read chunk of it, it has taken
     * the whole frame's buffer. */
    uint64_t deadline = now_ms() + 5000;
    while (kvi_server_buffered_bytes(s) < 1536u * 1024u && now_ms() < deadline)
        sleep_us(1000);
    assert_true(kvi_server_buffered_bytes(s) >= 1536u * 1024u);

    int b = connect_port(port);
    assert_true(b >= 0);
    assert_int_equal(send_all(b, waits.data, waits.len), 0);
    int refused = 0, served = 0;
    for (int i = 0; i < 2; i++) {
        kvi_frame_header h;
        assert_int_equal(read_frame(b, &h, &body), 0);
        if (h.request_id == 2) {
            assert_int_equal(h.status, KV_ENOMEM);
            refused = 1;
        } else {
            assert_int_equal(h.request_id, 3);
            assert_int_equal(h.status, KV_OK);
            served = 1;
        }
    }
    assert_true(refused && served);

    assert_int_equal(send_all(a, held.data + half, held.len - half), 0);
    kvi_frame_header h;
    assert_int_equal(read_frame(a, &h, &body), 0);
    assert_int_equal(h.request_id, 1);
    assert_int_equal(h.status, KV_OK);
    close(a);
    close(b);
    assert_int_equal(wait_buffered(s, 0, 2000), 0);
    free(value);
    kvi_buf_free(&held);
    kvi_buf_free(&waits);
    kvi_buf_free(&body);
    kvi_server_stop(s);
}

/* ------------------------------------------------------------------ stop */

/* A client that sends GETs of 32 KiB keys (answered with 32 KiB values)
 * and never reads, until the server stops reading it or closes it. */
static void *deaf_client(void *p)
{
    int fd = *(int *)p;
    static unsigned char key[32 * 1024];
    memset(key, 'k', sizeof key);
    kvi_buf b = {0};
    for (uint64_t id = 0; id < 1024; id++) {
        kvi_buf_reset(&b);
        add_request(&b, KVI_OP_GET, id, key, sizeof key, NULL, 0);
        if (send_all(fd, b.data, b.len) != 0)
            break; /* closed by the stop, or blocked past SO_SNDTIMEO */
    }
    kvi_buf_free(&b);
    return NULL;
}

/* Requests read before the stop are answered: 20 pipelined requests of
 * 100 ms each on two workers are in flight when kvi_server_stop is
 * called, and all 20 answers reach the client before the connection
 * closes. Meanwhile a client with megabytes of answers that it never reads
 * does not hold the stop up past its flush bound. */
static void stop_answers_the_requests_already_read(void **state)
{
    (void)state;
    handler_ctx hc = {.slow_us = 100000};
    kvi_server_config cfg = base_config(&hc);
    atomic_store(&hc.pooled, POOLED(KVI_OP_GET));
    kvi_server *s;
    assert_int_equal(kvi_server_start(&s, &cfg), KV_OK);
    int port = kvi_server_port(s);

    int deaf = connect_port(port);
    assert_true(deaf >= 0);
    pthread_t deaf_thread;
    assert_int_equal(pthread_create(&deaf_thread, NULL, deaf_client, &deaf), 0);
    /* Its answers pile up past what the sockets hold. */
    uint64_t deadline = now_ms() + 20000;
    while (kvi_server_buffered_bytes(s) < 4u * 1024u * 1024u && now_ms() < deadline)
        sleep_us(1000);
    assert_true(kvi_server_buffered_bytes(s) >= 4u * 1024u * 1024u);

    int fd = connect_port(port);
    assert_true(fd >= 0);
    kvi_buf b = {0}, body = {0};
    /* Marked ids: the deaf client may still be sending, and its frames
     * must not count as these (they once did, and the stop then came with
     * some of the 20 still unread). */
    for (uint64_t id = 0; id < 20; id++)
        add_request(&b, KVI_OP_GET, MARKED_ID + id, "slow", 4, NULL, 0);
    assert_int_equal(send_all(fd, b.data, b.len), 0);
    deadline = now_ms() + 10000;
    while (atomic_load(&hc.marked) < 20 && now_ms() < deadline)
        sleep_us(1000);
    assert_int_equal(atomic_load(&hc.marked), 20);
    unsigned done_before = atomic_load(&hc.slow_done);
    uint64_t stop_start = now_ms();
    kvi_server_stop(s);
    printf("stop: called with %u of the 20 done, took %llu ms\n", done_before,
           (unsigned long long)(now_ms() - stop_start));
    pthread_join(deaf_thread, NULL);

    /* Everything came before the close: the answers are in the socket. */
    unsigned seen = 0;
    for (int i = 0; i < 20; i++) {
        kvi_frame_header h;
        assert_int_equal(read_frame(fd, &h, &body), 0);
        assert_int_equal(h.status, KV_OK);
        assert_true(h.request_id >= MARKED_ID && h.request_id < MARKED_ID + 20);
        seen |= 1u << (h.request_id - MARKED_ID);
    }
    assert_int_equal(seen, (1u << 20) - 1);
    unsigned char byte;
    assert_int_equal(recv(fd, &byte, 1, 0), 0); /* then an orderly close */
    close(fd);
    close(deaf);
    kvi_buf_free(&b);
    kvi_buf_free(&body);
}

#define FLOOD_CLIENTS 12
#define FLOOD_FRAMES 8
#define FLOOD_BOUND (8u * 1024u * 1024u)

typedef struct flood_arg {
    int port;
    unsigned seed;
    unsigned ok, busy, other; /* answers by kind */
    int failed;               /* a send or read that did not go through */
} flood_arg;

/* Sends all its large frames before reading any answer. */
static void *flood_client(void *p)
{
    flood_arg *a = p;
    int fd = connect_port(a->port);
    if (fd < 0) {
        a->failed = 1;
        return NULL;
    }
    size_t max = 1536u * 1024u;
    unsigned char *value = calloc(1, max);
    kvi_buf b = {0}, body = {0};
    for (uint64_t id = 0; id < FLOOD_FRAMES && value; id++) {
        kvi_buf_reset(&b);
        size_t len = 100u * 1024u + (size_t)rand_r(&a->seed) % (max - 100u * 1024u);
        add_request(&b, KVI_OP_PUT, id, "k", 1, value, len);
        if (send_all(fd, b.data, b.len) != 0) {
            a->failed = 1;
            break;
        }
    }
    for (unsigned i = 0; i < FLOOD_FRAMES && !a->failed; i++) {
        kvi_frame_header h;
        if (read_frame(fd, &h, &body) != 0) {
            a->failed = 1;
            break;
        }
        if (h.status == KV_OK)
            a->ok++;
        else if (h.status == KV_ENOMEM)
            a->busy++;
        else
            a->other++;
    }
    close(fd);
    free(value);
    kvi_buf_free(&b);
    kvi_buf_free(&body);
    return NULL;
}

typedef struct sampler_arg {
    const kvi_server *s;
    atomic_int done;
    size_t max_seen;
    unsigned samples;
} sampler_arg;

static void *sampler(void *p)
{
    sampler_arg *a = p;
    uint64_t deadline = now_ms() + 120000u;
    while (!atomic_load(&a->done) && now_ms() < deadline) {
        size_t n = kvi_server_buffered_bytes(a->s);
        if (n > a->max_seen)
            a->max_seen = n;
        a->samples++;
        sleep_us(50);
    }
    return NULL;
}

/* Many clients send large frames without reading their answers: the
 * server's count never goes past the bound, every frame is answered (done
 * or "server busy"), and at the end nothing is held. */
static void the_bound_holds_against_clients_that_do_not_read(void **state)
{
    (void)state;
    handler_ctx hc = {.pooled_max_us = 2000};
    kvi_server_config cfg = base_config(&hc);
    cfg.max_body = 2u * 1024u * 1024u;
    cfg.max_buffered_bytes = FLOOD_BOUND;
    /* Half inline, half on the pool: both paths hold bytes. */
    atomic_store(&hc.pooled, 0u);
    atomic_store(&hc.odd_ids_pooled, 1u);
    kvi_server *s;
    assert_int_equal(kvi_server_start(&s, &cfg), KV_OK);
    sampler_arg sa = {.s = s};
    pthread_t sampler_thread;
    assert_int_equal(pthread_create(&sampler_thread, NULL, sampler, &sa), 0);
    pthread_t threads[FLOOD_CLIENTS];
    flood_arg args[FLOOD_CLIENTS];
    for (unsigned i = 0; i < FLOOD_CLIENTS; i++) {
        args[i] = (flood_arg){.port = kvi_server_port(s), .seed = 7u * i + 1u};
        assert_int_equal(pthread_create(&threads[i], NULL, flood_client, &args[i]), 0);
    }
    unsigned ok = 0, busy = 0, other = 0, failed = 0;
    for (unsigned i = 0; i < FLOOD_CLIENTS; i++) {
        pthread_join(threads[i], NULL);
        ok += args[i].ok;
        busy += args[i].busy;
        other += args[i].other;
        failed += (unsigned)args[i].failed;
    }
    atomic_store(&sa.done, 1);
    pthread_join(sampler_thread, NULL);
    printf("flood: %u done, %u busy, %u samples, at most %zu bytes held (bound %u)\n", ok,
           busy, sa.samples, sa.max_seen, FLOOD_BOUND);
    assert_int_equal(failed, 0);
    assert_int_equal(other, 0);
    assert_int_equal(ok + busy, FLOOD_CLIENTS * FLOOD_FRAMES);
    assert_true(ok > 0);
    assert_true(sa.max_seen <= FLOOD_BOUND);
    /* The count did climb: the test pressed against the bound. */
    assert_true(sa.max_seen > FLOOD_BOUND / 2);
    assert_int_equal(wait_buffered(s, 0, 5000), 0);
    kvi_server_stop(s);
}

/* ------------------------------------------------------------------ gate */

/* The test's gate state: whether the connection has said PING, and how
 * many frames the gate has seen on it. */
typedef struct gate_state {
    int pinged;
    uint32_t frames;
} gate_state;

typedef struct gate_ctx {
    atomic_uint calls;
} gate_ctx;

/* Refuses GET, and opcodes it does not know, until the connection has sent
 * a PING; each refusal says which frame of its connection it was. */
static int ping_first_gate(void *ctx, unsigned char *state, unsigned conn,
                           const kvi_frame_header *h,
                           const unsigned char *body, kvi_buf *out)
{
    (void)conn; /* plain TCP here */
    (void)body;
    gate_ctx *g = ctx;
    atomic_fetch_add(&g->calls, 1);
    gate_state *st = (gate_state *)state;
    st->frames++;
    if (h->opcode == KVI_OP_PING)
        st->pinged = 1;
    if (st->pinged || (h->opcode != KVI_OP_GET && h->opcode <= KVI_OP_MAX))
        return 0;
    char msg[64];
    snprintf(msg, sizeof msg, "ping first (frame %u)", st->frames);
    kvi_error_frame(out, h->opcode, h->request_id, KV_EINVAL, 0, msg);
    return 1;
}

/* Sends one request and reads its answer: the status, and into msg the
 * error message (empty for KV_OK). */
static int ask(int fd, uint8_t opcode, uint64_t id, const char *key, char *msg, size_t msg_size)
{
    kvi_buf b = {0}, body = {0};
    size_t start = b.len;
    kvi_frame_begin(&b);
    if (opcode <= KVI_OP_MAX) {
        kvi_request req = {.opcode = opcode,
                           .key = {(const unsigned char *)key, key ? strlen(key) : 0}};
        kvi_request_encode(&b, &req);
    }
    assert_int_equal(kvi_frame_finish(&b, start, opcode, 0, 0, id), 0);
    assert_int_equal(send_all(fd, b.data, b.len), 0);
    kvi_frame_header h;
    assert_int_equal(read_frame(fd, &h, &body), 0);
    assert_int_equal(h.request_id, id);
    msg[0] = 0;
    if (h.status != KV_OK) {
        kvi_response r;
        assert_int_equal(kvi_response_decode(&r, h.opcode, h.status, body.data, body.len), 0);
        snprintf(msg, msg_size, "%.*s", (int)r.message.len, (const char *)r.message.data);
    }
    kvi_buf_free(&b);
    kvi_buf_free(&body);
    return h.status;
}

/* The gate answers GET (and unknown opcodes) itself until PING has come on
 * that connection, then lets everything through; each connection has its
 * own state. */
static void the_gate_sees_every_frame_with_its_connections_state(void **state)
{
    (void)state;
    handler_ctx hc = {0};
    gate_ctx g = {0};
    kvi_server_config cfg = base_config(&hc);
    cfg.io_threads = 1; /* both connections on one thread: states side by side */
    cfg.gate = ping_first_gate;
    cfg.gate_ctx = &g;
    kvi_server *s;
    assert_int_equal(kvi_server_start(&s, &cfg), KV_OK);
    int a = connect_port(kvi_server_port(s));
    int b = connect_port(kvi_server_port(s));
    assert_true(a >= 0 && b >= 0);
    char msg[128];

    assert_int_equal(ask(a, KVI_OP_GET, 1, "x", msg, sizeof msg), KV_EINVAL);
    assert_string_equal(msg, "ping first (frame 1)");
    assert_int_equal(ask(a, 42, 2, NULL, msg, sizeof msg), KV_EINVAL);
    assert_string_equal(msg, "ping first (frame 2)");
    unsigned handled = atomic_load(&hc.handled);
    assert_int_equal(ask(b, KVI_OP_GET, 1, "x", msg, sizeof msg), KV_EINVAL);
    assert_string_equal(msg, "ping first (frame 1)"); /* b counts for itself */
    assert_int_equal(atomic_load(&hc.handled), handled); /* refused: never handled */

    assert_int_equal(ask(a, KVI_OP_PING, 3, NULL, msg, sizeof msg), KV_OK);
    assert_int_equal(ask(a, KVI_OP_GET, 4, "open", msg, sizeof msg), KV_OK);
    /* Past the gate, an unknown opcode is the server's to refuse. */
    assert_int_equal(ask(a, 42, 5, NULL, msg, sizeof msg), KV_ENOTSUP);
    /* a's PING opened nothing for b. */
    assert_int_equal(ask(b, KVI_OP_GET, 2, "x", msg, sizeof msg), KV_EINVAL);
    assert_string_equal(msg, "ping first (frame 2)");
    assert_int_equal(ask(b, KVI_OP_PING, 3, NULL, msg, sizeof msg), KV_OK);
    assert_int_equal(ask(b, KVI_OP_GET, 4, "open", msg, sizeof msg), KV_OK);
    assert_int_equal(atomic_load(&g.calls), 9);

    /* A new connection starts with a zeroed state. */
    close(a);
    a = connect_port(kvi_server_port(s));
    assert_true(a >= 0);
    assert_int_equal(ask(a, KVI_OP_GET, 1, "x", msg, sizeof msg), KV_EINVAL);
    assert_string_equal(msg, "ping first (frame 1)");
    close(a);
    close(b);
    kvi_server_stop(s);
}


/* ------------------------------------------------- asynchronous answers */

/* What async_take stashed: requests answered later by another thread. */
typedef struct async_stash {
    handler_ctx hc;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct {
        kvi_server_pending *p;
        kvi_frame_header h;
        unsigned char body[64];
        kvi_buf *out;
    } held[32];
    unsigned n;
} async_stash;

static int async_offload(void *ctx, const kvi_frame_header *h)
{
    (void)ctx;
    return h->opcode == KVI_OP_PING ? 0 : KVI_SERVER_ASYNC;
}

/* GET is stashed for later; PUT goes to the pool; a GET for "now" is
 * answered at once, from inside. */
static int async_take(void *ctx, kvi_server_pending *p, const kvi_frame_header *h,
                      const unsigned char *body, kvi_buf *out)
{
    async_stash *st = ctx;
    if (h->opcode == KVI_OP_PUT)
        return 1;
    kvi_request req;
    assert_int_equal(kvi_request_decode(&req, h->opcode, body, h->body_len), 0);
    if (req.key.len == 3 && memcmp(req.key.data, "now", 3) == 0) {
        handle(&st->hc, h, body, out);
        kvi_server_answer(p);
        return 0;
    }
    pthread_mutex_lock(&st->lock);
    assert_true(st->n < 32 && h->body_len <= sizeof st->held[0].body);
    st->held[st->n].p = p;
    st->held[st->n].h = *h;
    memcpy(st->held[st->n].body, body, h->body_len);
    st->held[st->n].out = out;
    st->n++;
    pthread_cond_signal(&st->cond);
    pthread_mutex_unlock(&st->lock);
    return 0;
}

/* Answers every stashed request, last first, from its own thread. */
static void *async_answerer(void *arg)
{
    async_stash *st = arg;
    pthread_mutex_lock(&st->lock);
    for (unsigned i = st->n; i-- > 0;) {
        handle(&st->hc, &st->held[i].h, st->held[i].body, st->held[i].out);
        kvi_server_answer(st->held[i].p);
    }
    st->n = 0;
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

static void pending_requests_are_answered_later_from_any_thread(void **state)
{
    (void)state;
    async_stash st;
    memset(&st, 0, sizeof st);
    pthread_mutex_init(&st.lock, NULL);
    pthread_cond_init(&st.cond, NULL);
    kvi_server_config cfg = base_config(&st.hc);
    cfg.handler_ctx = &st;
    cfg.handler = handle;
    cfg.offload = async_offload;
    cfg.async_start = async_take;
    cfg.workers[0] = 1;
    /* handle() reads a handler_ctx: the stash starts with one. */
    kvi_server *s = NULL;
    assert_int_equal(kvi_server_start(&s, &cfg), KV_OK);
    int fd = connect_port(kvi_server_port(s));
    assert_true(fd >= 0);

    enum { HELD = 10 };
    kvi_buf b = {0}, body = {0};
    char key[HELD][8];
    for (int i = 0; i < HELD; i++) {
        snprintf(key[i], sizeof key[i], "k%d", i);
        add_request(&b, KVI_OP_GET, 10 + (uint64_t)i, key[i], strlen(key[i]), NULL, 0);
    }
    add_request(&b, KVI_OP_GET, 30, "now", 3, NULL, 0);
    add_request(&b, KVI_OP_PUT, 31, "k", 1, "four", 4);
    add_request(&b, KVI_OP_PING, 32, NULL, 0, NULL, 0);
    assert_int_equal(send_all(fd, b.data, b.len), 0);

    /* The three that are not held come back first, whatever the order. */
    unsigned seen = 0;
    for (int i = 0; i < 3; i++) {
        kvi_frame_header h;
        assert_int_equal(read_frame(fd, &h, &body), 0);
        assert_int_equal(h.status, KV_OK);
        assert_true(h.request_id >= 30 && h.request_id <= 32);
        kvi_response r;
        assert_int_equal(kvi_response_decode(&r, h.opcode, h.status, body.data, body.len), 0);
        if (h.request_id == 30)
            assert_memory_equal(r.value.data, "now", 3);
        if (h.request_id == 31)
            assert_int_equal(r.version, 4); /* from the pool's handler */
        seen |= 1u << (h.request_id - 30);
    }
    assert_int_equal(seen, 7u);

    /* All ten were taken; none was answered yet. */
    pthread_mutex_lock(&st.lock);
    for (int waits = 0; st.n < HELD && waits < 300; waits++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&st.cond, &st.lock, &ts);
    }
    assert_int_equal(st.n, HELD);
    pthread_mutex_unlock(&st.lock);

    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, async_answerer, &st), 0);
    unsigned got = 0;
    for (int i = 0; i < HELD; i++) {
        kvi_frame_header h;
        assert_int_equal(read_frame(fd, &h, &body), 0);
        assert_int_equal(h.status, KV_OK);
        assert_true(h.request_id >= 10 && h.request_id < 10 + HELD);
        kvi_response r;
        assert_int_equal(kvi_response_decode(&r, h.opcode, h.status, body.data, body.len), 0);
        const char *want = key[h.request_id - 10];
        assert_int_equal(r.value.len, strlen(want));
        assert_memory_equal(r.value.data, want, r.value.len);
        got |= 1u << (h.request_id - 10);
    }
    pthread_join(t, NULL);
    assert_int_equal(got, (1u << HELD) - 1);
    close(fd);
    /* Every byte held for them was given back. */
    assert_int_equal(wait_buffered(s, 0, 10000), 0);
    kvi_server_stop(s);
    kvi_buf_free(&b);
    kvi_buf_free(&body);
    pthread_mutex_destroy(&st.lock);
    pthread_cond_destroy(&st.cond);
}

/* ------------------------------------------- gathered batches, lent loop */

typedef struct gather_ctx {
    handler_ctx hc;
    kvi_loop *lent;          /* the loop lent to the server, or NULL */
    atomic_uint calls, frames, largest, off_loop;
    /* Every third batch is answered from another thread, after the call. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    kvi_server_pending *later[64];
    unsigned n_later;
    int done;
} gather_ctx;

static int gather_offload(void *ctx, const kvi_frame_header *h)
{
    (void)ctx;
    return h->opcode == KVI_OP_PUT ? KVI_SERVER_LOOP_BATCH : 0;
}

static void gather_batch(void *ctx, kvi_server_pending **ps, kvi_server_request *reqs, size_t n)
{
    gather_ctx *g = ctx;
    unsigned call = atomic_fetch_add(&g->calls, 1);
    atomic_fetch_add(&g->frames, (unsigned)n);
    if (n > atomic_load(&g->largest))
        atomic_store(&g->largest, (unsigned)n);
    if (g->lent && !kvi_loop_on_thread(g->lent))
        atomic_fetch_add(&g->off_loop, 1);
    for (size_t i = 0; i < n; i++) {
        handle(&g->hc, reqs[i].h, reqs[i].body, reqs[i].out);
        pthread_mutex_lock(&g->lock);
        if (call % 3 == 2 && g->n_later < 64) {
            g->later[g->n_later++] = ps[i];
            pthread_cond_signal(&g->cond);
            pthread_mutex_unlock(&g->lock);
            continue;
        }
        pthread_mutex_unlock(&g->lock);
        kvi_server_answer(ps[i]);
    }
}

/* Answers what gather_batch holds back, from this thread, until done. */
static void *answer_later(void *arg)
{
    gather_ctx *g = arg;
    pthread_mutex_lock(&g->lock);
    while (!g->done || g->n_later) {
        for (unsigned i = 0; i < g->n_later; i++)
            kvi_server_answer(g->later[i]);
        g->n_later = 0;
        if (!g->done)
            pthread_cond_wait(&g->cond, &g->lock);
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

static void *run_lent_loop(void *arg)
{
    kvi_loop_run(arg);
    return NULL;
}

/* PUTs marked KVI_SERVER_LOOP_BATCH reach loop_batch together, those of one
 * read in one call, on the I/O loop (here a loop the test runs and lends);
 * each is answered once, now or later from another thread; the server
 * stops while the lent loop runs on. */
static void gathered_frames_are_batched_on_the_lent_loop(void **state)
{
    (void)state;
    gather_ctx g;
    memset(&g, 0, sizeof g);
    pthread_mutex_init(&g.lock, NULL);
    pthread_cond_init(&g.cond, NULL);
    pthread_t answerer;
    assert_int_equal(pthread_create(&answerer, NULL, answer_later, &g), 0);
    assert_int_equal(kvi_loop_new(&g.lent), KV_OK);
    pthread_t loop_thread;
    assert_int_equal(pthread_create(&loop_thread, NULL, run_lent_loop, g.lent), 0);
    kvi_server_config cfg = base_config(&g.hc);
    cfg.handler_ctx = &g;
    cfg.handler = handle;
    cfg.offload = gather_offload;
    cfg.loop_batch = gather_batch;
    cfg.io_threads = 1;
    cfg.loop = g.lent;
    kvi_server *s = NULL;
    assert_int_equal(kvi_server_start(&s, &cfg), KV_OK);
    int fd = connect_port(kvi_server_port(s));
    assert_true(fd >= 0);

    enum { ROUNDS = 6, PER = 20 };
    kvi_buf b = {0}, body = {0};
    unsigned got = 0;
    for (int round = 0; round < ROUNDS; round++) {
        kvi_buf_reset(&b);
        for (int i = 0; i < PER; i++) {
            char value[ROUNDS * PER + 8];
            int len = snprintf(value, sizeof value, "%0*d", 1 + round * PER + i, 0);
            add_request(&b, KVI_OP_PUT, (uint64_t)(round * PER + i), "k", 1, value,
                        (size_t)len);
        }
        add_request(&b, KVI_OP_PING, 1000 + (uint64_t)round, NULL, 0, NULL, 0);
        /* One send: the server reads the round with one recv. */
        assert_int_equal(send_all(fd, b.data, b.len), 0);
        for (int i = 0; i < PER + 1; i++) {
            kvi_frame_header h;
            assert_int_equal(read_frame(fd, &h, &body), 0);
            assert_int_equal(h.status, KV_OK);
            if (h.opcode == KVI_OP_PING)
                continue;
            kvi_response r;
            assert_int_equal(kvi_response_decode(&r, h.opcode, h.status, body.data, body.len),
                             0);
            assert_int_equal(r.version, h.request_id + 1); /* the value's length */
            got++;
        }
    }
    pthread_mutex_lock(&g.lock);
    g.done = 1;
    pthread_cond_signal(&g.cond);
    pthread_mutex_unlock(&g.lock);
    pthread_join(answerer, NULL);
    assert_int_equal(got, ROUNDS * PER);
    assert_int_equal(atomic_load(&g.frames), ROUNDS * PER);
    /* Batched: fewer calls than frames, and all on the lent loop. */
    assert_true(atomic_load(&g.largest) > 1);
    assert_true(atomic_load(&g.calls) < ROUNDS * PER);
    assert_int_equal(atomic_load(&g.off_loop), 0);
    close(fd);
    assert_int_equal(wait_buffered(s, 0, 10000), 0);
    kvi_server_stop(s);
    /* The loop is the test's still: it runs on, then stops and is freed. */
    kvi_loop_stop(g.lent);
    pthread_join(loop_thread, NULL);
    kvi_loop_free(g.lent);
    kvi_buf_free(&b);
    kvi_buf_free(&body);
    pthread_mutex_destroy(&g.lock);
    pthread_cond_destroy(&g.cond);
}

/* Which thread answered each connection's GET (its key names the
 * connection). */
#define SPREAD_CONNS 20
typedef struct where_ctx {
    pthread_mutex_t lock;
    pthread_t thread[SPREAD_CONNS];
    int seen[SPREAD_CONNS];
} where_ctx;

static void handle_where(void *ctx, const kvi_frame_header *h, const unsigned char *body,
                         kvi_buf *out)
{
    where_ctx *w = ctx;
    kvi_request req;
    if (kvi_request_decode(&req, h->opcode, body, h->body_len) == 0 && req.key.len == 1 &&
        req.key.data[0] < SPREAD_CONNS) {
        pthread_mutex_lock(&w->lock);
        w->thread[req.key.data[0]] = pthread_self();
        w->seen[req.key.data[0]] = 1;
        pthread_mutex_unlock(&w->lock);
    }
    kvi_response r = {.opcode = h->opcode};
    size_t start = out->len;
    kvi_frame_begin(out);
    kvi_response_encode(out, &r);
    kvi_frame_finish(out, start, h->opcode, KVI_FRAME_FLAG_RESPONSE, 0, h->request_id);
}

/* Connections that arrive together are shared out among the I/O threads
 * (whichever thread epoll wakes accepts all that are waiting, and would
 * keep them all): with two threads, each serves half of them. */
static void connections_arriving_together_are_spread_over_the_threads(void **state)
{
    (void)state;
    where_ctx w;
    memset(&w, 0, sizeof w);
    pthread_mutex_init(&w.lock, NULL);
    handler_ctx hc; /* base_config's; its handler is replaced */
    memset(&hc, 0, sizeof hc);
    kvi_server_config cfg = base_config(&hc);
    cfg.handler = handle_where; /* every frame inline, on its connection's thread */
    cfg.handler_ctx = &w;
    cfg.offload = NULL;
    kvi_server *s;
    assert_int_equal(kvi_server_start(&s, &cfg), KV_OK);
    int port = kvi_server_port(s);
    int fds[SPREAD_CONNS];
    for (int i = 0; i < SPREAD_CONNS; i++) { /* all connected before any request */
        fds[i] = connect_port(port);
        assert_true(fds[i] >= 0);
    }
    kvi_buf b = {0}, body = {0};
    for (int i = 0; i < SPREAD_CONNS; i++) {
        kvi_buf_reset(&b);
        unsigned char key = (unsigned char)i;
        add_request(&b, KVI_OP_GET, (uint64_t)i + 1, &key, 1, NULL, 0);
        assert_int_equal(send_all(fds[i], b.data, b.len), 0);
    }
    for (int i = 0; i < SPREAD_CONNS; i++) {
        kvi_frame_header h;
        assert_int_equal(read_frame(fds[i], &h, &body), 0);
        assert_int_equal(h.status, KV_OK);
        assert_int_equal(h.request_id, (uint64_t)i + 1);
    }
    /* Each connection's request ran on its thread: count them per thread. */
    pthread_t first = w.thread[0];
    int on_first = 0;
    for (int i = 0; i < SPREAD_CONNS; i++) {
        assert_true(w.seen[i]);
        on_first += pthread_equal(w.thread[i], first) != 0;
    }
    assert_in_range(on_first, SPREAD_CONNS / 2 - 1, SPREAD_CONNS / 2 + 1);
    for (int i = 0; i < SPREAD_CONNS; i++)
        close(fds[i]);
    kvi_server_stop(s);
    kvi_buf_free(&b);
    kvi_buf_free(&body);
    pthread_mutex_destroy(&w.lock);
}

/* Which of the client's connections each "burst" request came on: the
 * gate numbers a connection at its first frame. */
typedef struct conn_ids {
    pthread_mutex_t lock;
    unsigned next_id;
    unsigned burst_ids[64];
    unsigned n_burst;
} conn_ids;

static int number_connections(void *ctx, unsigned char *state, unsigned conn,
                              const kvi_frame_header *h, const unsigned char *body, kvi_buf *out)
{
    (void)conn;
    (void)out;
    conn_ids *ids = ctx;
    unsigned *id = (unsigned *)state;
    kvi_request req;
    pthread_mutex_lock(&ids->lock);
    if (*id == 0)
        *id = ++ids->next_id;
    if (kvi_request_decode(&req, h->opcode, body, h->body_len) == 0 && req.key.len == 5 &&
        memcmp(req.key.data, "burst", 5) == 0 && ids->n_burst < 64)
        ids->burst_ids[ids->n_burst++] = *id;
    pthread_mutex_unlock(&ids->lock);
    return 0;
}

static void count_reply(void *ctx, const kvi_reply *reply)
{
    int *done = ctx;
    *done += reply->rc == KV_OK && reply->h->status == KV_OK ? 1 : 1000;
}

/* Submits a GET of key; the reply counts into *done. */
static void submit_get(kvi_client *cl, const char *key, int *done)
{
    kvi_buf f = {0};
    kvi_frame_begin(&f);
    kvi_request req = {.opcode = KVI_OP_GET, .key = {(const unsigned char *)key, strlen(key)}};
    kvi_request_encode(&f, &req);
    assert_int_equal(kvi_client_submit(cl, &f, KVI_OP_GET, 0, 0, count_reply, done), KV_OK);
}

/* Runs the manual loop until *done reaches want (bounded). */
static void run_until(kvi_client *cl, int *done, int want)
{
    for (int i = 0; i < 2000 && *done < want; i++)
        assert_true(kvi_client_run(cl, 10) >= 0);
    assert_int_equal(*done, want);
}

/* A client with several connections to a node sends the requests handed
 * over in one iteration of its loop on one connection, so they leave in
 * one send instead of one send each. */
static void a_clients_requests_of_one_iteration_share_a_connection(void **state)
{
    (void)state;
    handler_ctx hc;
    memset(&hc, 0, sizeof hc);
    conn_ids ids;
    memset(&ids, 0, sizeof ids);
    pthread_mutex_init(&ids.lock, NULL);
    kvi_server_config cfg = base_config(&hc);
    atomic_store(&hc.pooled, 0);
    cfg.gate = number_connections;
    cfg.gate_ctx = &ids;
    kvi_server *s;
    assert_int_equal(kvi_server_start(&s, &cfg), KV_OK);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "127.0.0.1:%d", kvi_server_port(s));
    const char *eps[] = {endpoint};
    kv_client_options o = KV_CLIENT_OPTIONS_INIT;
    o.connections_per_node = 4;
    o.manual_loop = 1;
    kvi_client *cl;
    assert_int_equal(kvi_client_open(&cl, eps, 1, &o, NULL), KV_OK);
    /* One request at a time, each in an iteration of its own: every
     * connection gets one, so all four are up. */
    int done = 0;
    for (int i = 0; i < 4; i++) {
        submit_get(cl, "warm", &done);
        run_until(cl, &done, i + 1);
    }
    pthread_mutex_lock(&ids.lock);
    assert_int_equal(ids.next_id, 4);
    pthread_mutex_unlock(&ids.lock);
    /* 32 handed over together (posted from outside the loop, taken in
     * its next iteration). */
    done = 0;
    for (int i = 0; i < 32; i++)
        submit_get(cl, "burst", &done);
    run_until(cl, &done, 32);
    pthread_mutex_lock(&ids.lock);
    assert_int_equal(ids.n_burst, 32);
    for (unsigned i = 1; i < ids.n_burst; i++)
        assert_int_equal(ids.burst_ids[i], ids.burst_ids[0]);
    pthread_mutex_unlock(&ids.lock);
    kvi_client_close(cl);
    kvi_server_stop(s);
    pthread_mutex_destroy(&ids.lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(resets_at_any_moment_leave_the_server_serving),
        cmocka_unit_test(a_socket_bound_beforehand_is_served_then_closed),
        cmocka_unit_test(a_large_frame_does_not_pin_its_memory),
        cmocka_unit_test(a_frame_larger_than_the_budget_is_refused),
        cmocka_unit_test(a_frame_that_waits_too_long_is_refused),
        cmocka_unit_test(the_bound_holds_against_clients_that_do_not_read),
        cmocka_unit_test(stop_answers_the_requests_already_read),
        cmocka_unit_test(the_gate_sees_every_frame_with_its_connections_state),
        cmocka_unit_test(pending_requests_are_answered_later_from_any_thread),
        cmocka_unit_test(gathered_frames_are_batched_on_the_lent_loop),
        cmocka_unit_test(connections_arriving_together_are_spread_over_the_threads),
        cmocka_unit_test(a_clients_requests_of_one_iteration_share_a_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
