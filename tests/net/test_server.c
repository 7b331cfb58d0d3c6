/* The binary protocol's server (net/server.c) against raw sockets:
 * connections reset at every point of a frame while workers' answers come
 * back through the wake fd; the server must stay clean (ASan) and keep
 * answering. */
#include <arpa/inet.h>
#include <errno.h>
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
#include "net/frame.h"
#include "net/message.h"
#include "net/server.h"

/* ---------------------------------------------------------- the server */

/* What the test handler counts and how slow its pooled requests are. */
typedef struct handler_ctx {
    atomic_uint handled;     /* requests that reached the handler */
    atomic_uint pooled_max_us; /* a pooled request sleeps up to this */
    atomic_uint seed;
} handler_ctx;

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
    handle(ctx, h, body, out);
}

static void handle_any(void *ctx, const kvi_frame_header *h, const unsigned char *body,
                       kvi_buf *out)
{
    /* Only GET and PUT are pooled (offload below). */
    if (h->opcode == KVI_OP_GET || h->opcode == KVI_OP_PUT)
        handle_pooled(ctx, h, body, out);
    else
        handle(ctx, h, body, out);
}

static int offload_get_put(void *ctx, const kvi_frame_header *h)
{
    (void)ctx;
    return h->opcode == KVI_OP_GET || h->opcode == KVI_OP_PUT ? 1 : 0;
}

static kvi_server_config base_config(handler_ctx *hc)
{
    kvi_server_config cfg = {
        .listen_addr = "127.0.0.1:0",
        .io_threads = 2,
        .max_body = KVI_FRAME_DEFAULT_MAX_BODY,
        .idle_timeout_ms = 30000,
        .max_connections = 4096,
        .handler = handle_any,
        .handler_ctx = hc,
        .offload = offload_get_put,
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
    if (kvi_frame_parse_header(h, head, sizeof head, KVI_FRAME_MAX_BODY_LIMIT) != KVI_FRAME_OK)
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
    kvi_server_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(resets_at_any_moment_leave_the_server_serving),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
