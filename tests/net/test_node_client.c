/* A node hosted in-process and the client handle talking to it over real
 * loopback sockets: every call, the error codes, bad frames on the wire,
 * timeouts, and reconnection after the node restarts. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <time.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "helpers.h"
#include "silent_listener.h"
#include "net/client.h"
#include "format/state.h"
#include "client/handle.h"
#include "format/record.h"
#include "format/frame.h"
#include "format/message.h"
#include "node/node_internal.h"
#include "util/metrics.h"
#include <kv/kv.h>

typedef struct world {
    char *dir;
    kv *node;
    kv *client;
    int port;
    char endpoint[64];
} world;

static int start_node(world *w, int port)
{
    kv_open_options store = KV_OPEN_OPTIONS_INIT;
    store.sync = KV_SYNC_NONE;
    store.max_value_size = 4096;
    kv_node_options o = KV_NODE_OPTIONS_INIT;
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    o.data_dir = w->dir;
    o.node_id = "n1";
    o.listen_addr = listen;
    o.store = &store;
    o.idle_timeout_ms = 1000;
    o.max_request_bytes = 64 * 1024;
    int rc = kv_node_start(&w->node, &o);
    if (rc != KV_OK) {
        fprintf(stderr, "kv_node_start: %s\n", kv_error_last());
        return rc;
    }
    kv_node_ports(&w->port, NULL, w->node);
    snprintf(w->endpoint, sizeof w->endpoint, "127.0.0.1:%d", w->port);
    return KV_OK;
}

static int setup(void **state)
{
    world *w = calloc(1, sizeof *w);
    w->dir = test_tempdir();
    if (start_node(w, 0) != KV_OK)
        return -1;
    const char *eps[] = {w->endpoint};
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.connections_per_node = 2;
    co.request_timeout_ms = 3000;
    if (kv_client_open(&w->client, eps, 1, &co) != KV_OK)
        return -1;
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    world *w = *state;
    kv_close(w->client);
    kv_close(w->node);
    test_rmtree(w->dir);
    free(w);
    return 0;
}

static void every_call_over_the_wire(void **state)
{
    world *w = *state;
    kv *c = w->client;
    uint64_t v = 0;
    assert_int_equal(kv_ping(c), KV_OK);
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.ttl_s = 3600;
    assert_int_equal(kv_put(&v, c, "k\0ey", 4, "val\0ue", 6, &wo), KV_OK);
    assert_int_equal(v, 1);
    kv_value *val;
    assert_int_equal(kv_get(&val, c, "k\0ey", 4, NULL), KV_OK);
    size_t len;
    const void *data = kv_value_data(val, &len);
    assert_int_equal(len, 6);
    assert_memory_equal(data, "val\0ue", 6);
    assert_int_equal(kv_value_version(val), 1);
    assert_true(kv_value_expiry_ms(val) > 0);
    kv_value_free(val);
    /* The node's own handle sees the same store. */
    assert_int_equal(kv_get(&val, w->node, "k\0ey", 4, NULL), KV_OK);
    kv_value_free(val);

    assert_int_equal(kv_cas(&v, c, "k\0ey", 4, 7, "x", 1, NULL), KV_ECONFLICT);
    assert_int_equal(v, 1);
    assert_int_equal(kv_cas(&v, c, "k\0ey", 4, 1, "x", 1, NULL), KV_OK);
    assert_int_equal(v, 2);
    assert_int_equal(kv_delete(&v, c, "k\0ey", 4, NULL), KV_OK);
    assert_int_equal(v, 3);
    assert_int_equal(kv_get(&val, c, "k\0ey", 4, NULL), KV_ENOTFOUND);
    assert_null(val);
    assert_int_equal(kv_delete(&v, c, "k\0ey", 4, NULL), KV_ENOTFOUND);
    /* An empty value is not a missing one. */
    assert_int_equal(kv_put(&v, c, "empty", 5, NULL, 0, NULL), KV_OK);
    assert_int_equal(kv_get(&val, c, "empty", 5, NULL), KV_OK);
    kv_value_data(val, &len);
    assert_int_equal(len, 0);
    kv_value_free(val);
}

static void errors_come_back_with_their_detail(void **state)
{
    world *w = *state;
    kv *c = w->client;
    char big[5000];
    memset(big, 'x', sizeof big);
    /* The node's value limit is 4096: its refusal travels back. */
    assert_int_equal(kv_put(NULL, c, "k", 1, big, 4097, NULL), KV_ETOOBIG);
    assert_non_null(strstr(kv_error_last(), "4096"));
    assert_int_equal(kv_put(NULL, c, "k", 1, big, 4096, NULL), KV_OK);
    assert_int_equal(kv_put(NULL, c, "", 0, "v", 1, NULL), KV_EINVAL);
    char key[1025];
    memset(key, 'k', sizeof key);
    assert_int_equal(kv_get(NULL, c, key, sizeof key, NULL), KV_EINVAL); /* out is NULL */
    kv_value *val;
    assert_int_equal(kv_get(&val, c, key, sizeof key, NULL), KV_ETOOBIG);
    kv_compact(c);
    assert_int_equal(kv_compact(c), KV_ENOTSUP);
}

static void batches_over_the_wire(void **state)
{
    world *w = *state;
    kv *c = w->client;
    assert_int_equal(kv_put(NULL, c, "b2", 2, "old", 3, NULL), KV_OK);
    kv_batch *b;
    assert_int_equal(kv_batch_new(&b), KV_OK);
    kv_batch_put(b, "b1", 2, "one", 3, 0);
    kv_batch_get(b, "b2", 2);
    kv_batch_delete(b, "b2", 2);
    kv_batch_get(b, "b2", 2);
    kv_batch_get(b, "b1", 2);
    assert_int_equal(kv_batch_execute(c, b, NULL, NULL), KV_OK);
    const kv_value *v;
    uint64_t ver;
    assert_int_equal(kv_batch_result(&v, &ver, b, 0), KV_OK);
    assert_int_equal(ver, 1);
    assert_int_equal(kv_batch_result(&v, &ver, b, 1), KV_OK);
    assert_memory_equal(kv_value_data(v, NULL), "old", 3);
    assert_int_equal(kv_batch_result(&v, &ver, b, 2), KV_OK);
    assert_int_equal(ver, 2);
    assert_int_equal(kv_batch_result(&v, &ver, b, 3), KV_ENOTFOUND);
    assert_int_equal(kv_batch_result(&v, &ver, b, 4), KV_OK);
    assert_memory_equal(kv_value_data(v, NULL), "one", 3);
    /* One bad operation: nothing applied, and the node says why. */
    kv_batch_clear(b);
    char big[5000] = {0};
    kv_batch_put(b, "b3", 2, "x", 1, 0);
    kv_batch_put(b, "b4", 2, big, sizeof big, 0);
    assert_int_equal(kv_batch_execute(c, b, NULL, NULL), KV_ETOOBIG);
    assert_int_equal(kv_batch_result(NULL, NULL, b, 0), KV_ETOOBIG);
    kv_batch_free(b);
    kv_value *val;
    assert_int_equal(kv_get(&val, c, "b3", 2, NULL), KV_ENOTFOUND);
}

/* ------------------------------------------------------ raw wire abuse */

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* Reads one response frame (bounded wait); returns its status, or 1 when
 * the connection closed without one. */
static int read_response(int fd, kvi_frame_header *h)
{
    unsigned char buf[4096];
    size_t have = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 5000) <= 0)
            return 2;
        ssize_t n = recv(fd, buf + have, sizeof buf - have, 0);
        if (n <= 0)
            return 1;
        have += (size_t)n;
        /* An answer to an unknown opcode carries that opcode back. */
        kvi_frame_error e = kvi_frame_parse_header(h, buf, have, sizeof buf);
        if ((e == KVI_FRAME_OK || e == KVI_FRAME_BAD_OPCODE) &&
            have >= KVI_FRAME_HEADER + h->body_len) {
            assert_int_equal(kvi_frame_verify(h, buf, buf + KVI_FRAME_HEADER), KVI_FRAME_OK);
            assert_true(h->flags & KVI_FRAME_FLAG_RESPONSE);
            return 0;
        }
    }
}

static int closed_by_peer(int fd)
{
    char c;
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0)
        return 0;
    return recv(fd, &c, 1, 0) == 0;
}

static void frame(kvi_buf *b, uint8_t opcode, uint64_t id, const kvi_request *req)
{
    kvi_buf_reset(b);
    kvi_frame_begin(b);
    if (req)
        kvi_request_encode(b, req);
    kvi_frame_finish(b, 0, opcode, 0, 0, id);
}

static void bad_frames_get_error_frames(void **state)
{
    world *w = *state;
    kvi_buf b = {0};
    kvi_frame_header h;

    /* Unknown opcode: an error frame naming the request, connection kept. */
    int fd = raw_connect(w->port);
    frame(&b, KVI_OP_PING, 41, NULL);
    b.data[3] = 99;
    kvi_frame_finish(&b, 0, 99, 0, 0, 41);
    assert_int_equal(send(fd, b.data, b.len, 0), (ssize_t)b.len);
    assert_int_equal(read_response(fd, &h), 0);
    assert_int_equal(h.request_id, 41);
    assert_int_equal(h.status, KV_ENOTSUP);
    /* Malformed body (a GET with a truncated key): KV_EINVAL, still open. */
    kvi_request get = {.opcode = KVI_OP_GET, .key = {(const unsigned char *)"abc", 3}};
    frame(&b, KVI_OP_GET, 42, &get);
    b.len -= 1;
    kvi_frame_finish(&b, 0, KVI_OP_GET, 0, 0, 42);
    assert_int_equal(send(fd, b.data, b.len, 0), (ssize_t)b.len);
    assert_int_equal(read_response(fd, &h), 0);
    assert_int_equal(h.request_id, 42);
    assert_int_equal(h.status, KV_EINVAL);
    frame(&b, KVI_OP_PING, 43, NULL);
    assert_int_equal(send(fd, b.data, b.len, 0), (ssize_t)b.len);
    assert_int_equal(read_response(fd, &h), 0);
    assert_int_equal(h.status, KV_OK);
    close(fd);

    /* A frame that claims 4 GiB: refused from its header, connection closed. */
    fd = raw_connect(w->port);
    frame(&b, KVI_OP_PING, 44, NULL);
    b.data[16] = b.data[17] = b.data[18] = b.data[19] = 0xff;
    assert_int_equal(send(fd, b.data, b.len, 0), (ssize_t)b.len);
    assert_int_equal(read_response(fd, &h), 0);
    assert_int_equal(h.status, KV_ETOOBIG);
    assert_true(closed_by_peer(fd));
    close(fd);

    /* Garbage (an HTTP request on the binary port), and a bad checksum. */
    fd = raw_connect(w->port);
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(send(fd, http, strlen(http), 0), (ssize_t)strlen(http));
    assert_int_equal(read_response(fd, &h), 0);
    assert_int_equal(h.status, KV_EINVAL);
    assert_true(closed_by_peer(fd));
    close(fd);
    fd = raw_connect(w->port);
    frame(&b, KVI_OP_PING, 45, NULL);
    b.data[23] ^= 1;
    assert_int_equal(send(fd, b.data, b.len, 0), (ssize_t)b.len);
    assert_int_equal(read_response(fd, &h), 0);
    assert_int_equal(h.status, KV_EINVAL);
    assert_true(closed_by_peer(fd));
    close(fd);

    /* Half a frame, then silence: closed after the idle timeout (1 s),
     * while other clients are served meanwhile. */
    fd = raw_connect(w->port);
    kvi_request put = {.opcode = KVI_OP_PUT, .key = {(const unsigned char *)"half", 4},
                       .value = {(const unsigned char *)"never", 5}};
    frame(&b, KVI_OP_PUT, 46, &put);
    assert_int_equal(send(fd, b.data, b.len / 2, 0), (ssize_t)(b.len / 2));
    assert_int_equal(kv_put(NULL, w->client, "other", 5, "fine", 4, NULL), KV_OK);
    assert_true(closed_by_peer(fd));
    close(fd);
    kv_value *val;
    assert_int_equal(kv_get(&val, w->client, "half", 4, NULL), KV_ENOTFOUND);
    /* A client that disconnects mid-request changes nothing either. */
    fd = raw_connect(w->port);
    assert_int_equal(send(fd, b.data, b.len - 3, 0), (ssize_t)(b.len - 3));
    close(fd);
    assert_int_equal(kv_get(&val, w->client, "half", 4, NULL), KV_ENOTFOUND);
    assert_int_equal(kv_get(&val, w->client, "other", 5, NULL), KV_OK);
    kv_value_free(val);
    kvi_buf_free(&b);
}

/* Reads `want` answer frames from fd (bounded waits), handing each to fn. */
static void read_answers(int fd, size_t want,
                         void (*fn)(void *ctx, const kvi_frame_header *h,
                                    const unsigned char *body),
                         void *ctx)
{
    unsigned char buf[65536];
    size_t have = 0, answers = 0;
    while (answers < want) {
        struct pollfd p = {fd, POLLIN, 0};
        assert_true(poll(&p, 1, 5000) > 0);
        ssize_t n = recv(fd, buf + have, sizeof buf - have, 0);
        assert_true(n > 0);
        have += (size_t)n;
        kvi_frame_header h;
        while (kvi_frame_parse_header(&h, buf, have, sizeof buf) == KVI_FRAME_OK &&
               have >= KVI_FRAME_HEADER + h.body_len) {
            fn(ctx, &h, buf + KVI_FRAME_HEADER);
            answers++;
            size_t used = KVI_FRAME_HEADER + h.body_len;
            memmove(buf, buf + used, have - used);
            have -= used;
        }
    }
}

static void count_put_answer(void *ctx, const kvi_frame_header *h, const unsigned char *body)
{
    (void)body;
    int *seen = ctx;
    assert_int_equal(h->status, KV_OK);
    assert_true(h->request_id >= 1000 && h->request_id < 1050);
    seen[h->request_id - 1000]++;
}

static void pipelined_requests_answer_by_id(void **state)
{
    world *w = *state;
    kvi_buf b = {0}, all = {0};
    int fd = raw_connect(w->port);
    /* 50 puts sent back to back on one connection, then 50 answers. */
    for (uint64_t id = 1000; id < 1050; id++) {
        char key[32];
        snprintf(key, sizeof key, "p%llu", (unsigned long long)id);
        kvi_request put = {.opcode = KVI_OP_PUT, .key = {(const unsigned char *)key, strlen(key)},
                           .value = {(const unsigned char *)"v", 1}};
        frame(&b, KVI_OP_PUT, id, &put);
        kvi_buf_raw(&all, b.data, b.len);
    }
    assert_int_equal(send(fd, all.data, all.len, 0), (ssize_t)all.len);
    int seen[50] = {0};
    read_answers(fd, 50, count_put_answer, seen);
    for (int i = 0; i < 50; i++)
        assert_int_equal(seen[i], 1);
    close(fd);
    kvi_buf_free(&b);
    kvi_buf_free(&all);
}

typedef struct together_step {
    uint8_t op;
    const char *key;
    const char *value;
    size_t value_len;
    uint64_t expected;
    int status;
    uint64_t version;
} together_step;

typedef struct together {
    const together_step *steps;
    size_t n;
    int seen[16];
} together;

static void check_together(void *ctx, const kvi_frame_header *h, const unsigned char *body)
{
    together *t = ctx;
    assert_true(h->request_id >= 500 && h->request_id < 500 + t->n);
    size_t i = (size_t)(h->request_id - 500);
    t->seen[i]++;
    if (h->status != t->steps[i].status)
        fail_msg("write %zu: status %d, expected %d", i, h->status, t->steps[i].status);
    kvi_response resp;
    assert_int_equal(kvi_response_decode(&resp, h->opcode, h->status, body, h->body_len), 0);
    if (t->steps[i].status == KV_OK || t->steps[i].status == KV_ECONFLICT)
        assert_int_equal(resp.version, t->steps[i].version);
}

/* A node alone makes the writes one read gathers together (node_writes.c):
 * sent in one go on one connection, each is still answered as it would be
 * alone, in order (a later write of a key sees an earlier one), its
 * failure its own. */
static void writes_sent_together_each_answer_alone_in_order(void **state)
{
    world *w = *state;
    static char big[4097];
    memset(big, 'x', sizeof big);
    const together_step steps[] = {
        {KVI_OP_PUT, "k1", "a", 1, 0, KV_OK, 1},
        {KVI_OP_PUT, "k1", "b", 1, 0, KV_OK, 2},
        {KVI_OP_CAS, "k1", "c", 1, 2, KV_OK, 3},
        {KVI_OP_CAS, "k1", "d", 1, 2, KV_ECONFLICT, 3},
        {KVI_OP_DELETE, "k1", NULL, 0, 0, KV_OK, 4},
        {KVI_OP_DELETE, "k1", NULL, 0, 0, KV_ENOTFOUND, 0},
        {KVI_OP_CAS, "k1", "e", 1, 0, KV_OK, 5}, /* 0: "no live value" */
        {KVI_OP_PUT, "", "v", 1, 0, KV_EINVAL, 0},
        {KVI_OP_PUT, "k2", big, sizeof big, 0, KV_ETOOBIG, 0},
        {KVI_OP_PUT, "k2", "f", 1, 0, KV_OK, 1},
        {KVI_OP_PUT, "k3", "malformed", 9, 0, KV_EINVAL, 0},
    };
    const size_t n = sizeof steps / sizeof steps[0];
    kvi_buf b = {0}, all = {0};
    for (size_t i = 0; i < n; i++) {
        kvi_request req = {.opcode = steps[i].op,
                           .key = {(const unsigned char *)steps[i].key, strlen(steps[i].key)},
                           .value = {(const unsigned char *)steps[i].value, steps[i].value_len},
                           .expected_version = steps[i].expected};
        frame(&b, steps[i].op, 500 + i, &req);
        if (i == n - 1) { /* the last one's body cut short: malformed */
            b.len -= 2;
            kvi_frame_finish(&b, 0, steps[i].op, 0, 0, 500 + i);
        }
        kvi_buf_raw(&all, b.data, b.len);
    }
    int fd = raw_connect(w->port);
    assert_int_equal(send(fd, all.data, all.len, 0), (ssize_t)all.len);
    together t = {steps, n, {0}};
    read_answers(fd, n, check_together, &t);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(t.seen[i], 1);
    close(fd);
    /* What the store holds agrees. */
    kv_value *val;
    assert_int_equal(kv_get(&val, w->client, "k1", 2, NULL), KV_OK);
    assert_memory_equal(kv_value_data(val, NULL), "e", 1);
    assert_int_equal(kv_value_version(val), 5);
    kv_value_free(val);
    assert_int_equal(kv_get(&val, w->client, "k2", 2, NULL), KV_OK);
    assert_memory_equal(kv_value_data(val, NULL), "f", 1);
    kv_value_free(val);
    assert_int_equal(kv_get(&val, w->client, "k3", 2, NULL), KV_ENOTFOUND);
    kvi_buf_free(&b);
    kvi_buf_free(&all);
}

static void a_client_that_never_reads_does_not_stall_others(void **state)
{
    /* One connection floods the node with GETs of a 4 KiB value and never
     * reads an answer: the node stops reading it once its output backs up
     * (rather than buffering without bound) and keeps serving the others. */
    world *w = *state;
    char value[4096];
    memset(value, 'v', sizeof value);
    assert_int_equal(kv_put(NULL, w->client, "big", 3, value, sizeof value, NULL), KV_OK);
    int fd = raw_connect(w->port);
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    kvi_buf b = {0};
    kvi_request get = {.opcode = KVI_OP_GET, .key = {(const unsigned char *)"big", 3}};
    size_t sent_frames = 0;
    for (uint64_t id = 1; id <= 20000; id++) {
        frame(&b, KVI_OP_GET, id, &get);
        if (send(fd, b.data, b.len, MSG_NOSIGNAL) != (ssize_t)b.len)
            break; /* our send buffer is full: the node stopped reading us */
        sent_frames++;
    }
    assert_true(sent_frames > 0);
    print_message("unread connection: %zu GETs sent (~%zu MiB of answers never read)\n",
                  sent_frames, sent_frames * 4 / 1024);
    /* Everyone else is still served. */
    for (int i = 0; i < 20; i++) {
        kv_value *v;
        assert_int_equal(kv_get(&v, w->client, "big", 3, NULL), KV_OK);
        kv_value_free(v);
    }
    close(fd);
    assert_int_equal(kv_ping(w->client), KV_OK);
    kvi_buf_free(&b);
}


/* ------------------------------------------------ between nodes */

static void replicated_state_travels_between_nodes(void **state)
{
    world *w = *state;
    kvi_client *c = w->client->client;
    static kvi_state s, got;
    kvi_state_init(&s);
    kvi_sibling base = {.value = (const unsigned char *)"base", .value_len = 4, .write_ms = 1};
    assert_int_equal(kvi_state_write(&s, NULL, "n1", &base), KV_OK);
    kvi_vv seen = s.clock;
    kvi_sibling a = {.value = (const unsigned char *)"from-n1", .value_len = 7, .write_ms = 2};
    kvi_sibling b = {.value = (const unsigned char *)"from-n2", .value_len = 7, .write_ms = 3};
    assert_int_equal(kvi_state_write(&s, &seen, "n1", &a), KV_OK);
    assert_int_equal(kvi_state_write(&s, &seen, "n2", &b), KV_OK);

    uint64_t version = 0;
    assert_int_equal(kvi_client_replicate(c, &version, "rep", 3, &s), KV_OK);
    assert_int_equal(version, 3);
    /* Idempotent: the same state again changes nothing. */
    assert_int_equal(kvi_client_replicate(c, &version, "rep", 3, &s), KV_OK);
    kvi_buf holder = {0};
    assert_int_equal(kvi_client_get_state(c, &got, &holder, "rep", 3), KV_OK);
    assert_true(kvi_state_equal(&got, &s));
    kvi_buf_free(&holder);
    /* The node's own reads see both siblings. */
    kv_value *v;
    assert_int_equal(kv_get(&v, w->client, "rep", 3, NULL), KV_OK);
    assert_int_equal(kv_value_sibling_count(v), 2);
    kv_value_free(v);

    /* Refusals: unknown key, a state sent under another key, an oversize
     * sibling, an empty key. */
    assert_int_equal(kvi_client_get_state(c, &got, &holder, "none", 4), KV_ENOTFOUND);
    kvi_buf encoded = {0};
    kvi_state_encode(&encoded, &s, kvi_key_token("rep", 3));
    kvi_request req = {.opcode = KVI_OP_REPLICATE, .key = {(const unsigned char *)"other", 5},
                       .value = {encoded.data, encoded.len}};
    kvi_buf frame_buf = {0};
    frame(&frame_buf, KVI_OP_REPLICATE, 77, &req);
    int fd = raw_connect(w->port);
    assert_int_equal(send(fd, frame_buf.data, frame_buf.len, 0), (ssize_t)frame_buf.len);
    kvi_frame_header h;
    assert_int_equal(read_response(fd, &h), 0);
    assert_int_equal(h.status, KV_EINVAL);
    close(fd);
    kvi_buf_free(&frame_buf);
    kvi_buf_free(&encoded);
    static char big[5000];
    kvi_state huge;
    kvi_state_init(&huge);
    kvi_sibling hv = {.value = (const unsigned char *)big, .value_len = sizeof big};
    assert_int_equal(kvi_state_write(&huge, NULL, "n1", &hv), KV_OK);
    assert_int_equal(kvi_client_replicate(c, NULL, "huge", 4, &huge), KV_ETOOBIG);
    assert_int_equal(kvi_client_get_state(c, &got, &holder, "huge", 4), KV_ENOTFOUND);
    assert_int_equal(kvi_client_replicate(c, NULL, "", 0, &s), KV_EINVAL);
    kvi_buf_free(&holder);
}

/* ------------------------------------------------- shared client, threads */

typedef struct racer {
    kv *client;
    int id;
    int errors;
} racer;

static void *hammer(void *arg)
{
    racer *r = arg;
    for (int i = 0; i < 300; i++) {
        char key[32];
        int n = snprintf(key, sizeof key, "t%d-%d", r->id, i);
        kv_value *v;
        if (kv_put(NULL, r->client, key, (size_t)n, key, (size_t)n, NULL) != KV_OK ||
            kv_get(&v, r->client, key, (size_t)n, NULL) != KV_OK) {
            r->errors++;
            continue;
        }
        size_t len;
        const void *data = kv_value_data(v, &len);
        if (len != (size_t)n || memcmp(data, key, len) != 0)
            r->errors++;
        kv_value_free(v);
    }
    return NULL;
}

static void one_client_many_threads(void **state)
{
    world *w = *state;
    racer r[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
        r[i] = (racer){w->client, i, 0};
        pthread_create(&t[i], NULL, hammer, &r[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(r[i].errors, 0);
    }
}

/* ------------------------------------------------ failures and restarts */

static void client_reconnects_after_node_restart(void **state)
{
    world *w = *state;
    assert_int_equal(kv_put(NULL, w->client, "durable", 7, "yes", 3, NULL), KV_OK);
    int port = w->port;
    kv_close(w->node);
    w->node = NULL;
    /* Node down: a clear code, not a hang. */
    kv_value *val;
    int rc = kv_get(&val, w->client, "durable", 7, NULL);
    assert_true(rc == KV_EUNAVAILABLE || rc == KV_ETIMEDOUT);
    rc = kv_put(NULL, w->client, "k", 1, "v", 1, NULL);
    assert_true(rc == KV_EUNAVAILABLE || rc == KV_EUNKNOWN_OUTCOME);
    /* Node back on the same port: the client finds it by itself. */
    assert_int_equal(start_node(w, port), KV_OK);
    assert_int_equal(kv_get(&val, w->client, "durable", 7, NULL), KV_OK);
    assert_memory_equal(kv_value_data(val, NULL), "yes", 3);
    kv_value_free(val);
}

typedef struct reader_thread {
    kv *client;
    atomic_int *stop;
    int ok, failed, unexpected;
} reader_thread;

static void *read_until_stopped(void *arg)
{
    reader_thread *r = arg;
    for (int i = 0; i < 100000 && !atomic_load(r->stop); i++) {
        kv_value *v;
        int rc = kv_get(&v, r->client, "durable", 7, NULL);
        if (rc == KV_OK) {
            r->ok++;
            kv_value_free(v);
        } else if (rc == KV_EUNAVAILABLE || rc == KV_ETIMEDOUT) {
            r->failed++;
        } else {
            r->unexpected++;
        }
    }
    return NULL;
}

static void many_threads_live_through_a_restart(void **state)
{
    /* Four threads share one client while the node goes away and comes
     * back: every call returns (none hangs on the broken connection), and
     * all of them work again afterwards. */
    world *w = *state;
    assert_int_equal(kv_put(NULL, w->client, "durable", 7, "yes", 3, NULL), KV_OK);
    atomic_int stop = 0;
    reader_thread r[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (reader_thread){w->client, &stop, 0, 0, 0};
        pthread_create(&t[i], NULL, read_until_stopped, &r[i]);
    }
    int port = w->port;
    kv_close(w->node);
    w->node = NULL;
    struct timespec pause = {0, 200 * 1000000L};
    nanosleep(&pause, NULL);
    assert_int_equal(start_node(w, port), KV_OK);
    nanosleep(&pause, NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(r[i].unexpected, 0);
    }
    for (int i = 0; i < 4; i++) {
        kv_value *v;
        assert_int_equal(kv_get(&v, w->client, "durable", 7, NULL), KV_OK);
        kv_value_free(v);
    }
}

/* A node that never answers (silent_listener.h): only timeouts tell. */
static void silent_server_times_out(void **state)
{
    (void)state;
    char ep[64];
    int lfd = silent_listener(ep, sizeof ep);
    assert_true(lfd >= 0);
    const char *eps[] = {ep};
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.request_timeout_ms = 300;
    kv *c;
    assert_int_equal(kv_client_open(&c, eps, 1, &co), KV_OK);
    kv_value *val;
    assert_int_equal(kv_get(&val, c, "k", 1, NULL), KV_ETIMEDOUT);
    /* A client handle's connection starts with a PING (whose answer shows a
     * libkv node): unanswered, the put is never sent. */
    assert_int_equal(kv_put(NULL, c, "k", 1, "v", 1, NULL), KV_ETIMEDOUT);
    assert_non_null(strstr(kv_error_last(), "no answer to the handshake"));
    kv_close(c);
    /* A node's connections to its members do not probe: the put is sent,
     * and its lost answer leaves the outcome unknown. */
    kvi_client *cl;
    assert_int_equal(kvi_client_open(&cl, eps, 1, &co, NULL), KV_OK);
    assert_int_equal(kvi_client_put(cl, NULL, "k", 1, "v", 1, NULL), KV_EUNKNOWN_OUTCOME);
    kvi_client_close(cl);
    close(lfd);
}

/* Fan-out calls: started at once, counted as they answer; one given up on
 * keeps its in-flight slot until the node answers, so a node that does not
 * answer gets at most max_inflight requests per connection. */
static void fanout_calls_and_backpressure(void **state)
{
    world *w = *state;
    kvi_client *cl;
    const char *eps[] = {w->endpoint};
    assert_int_equal(kvi_client_open(&cl, eps, 1, NULL, NULL), KV_OK);
    kvi_fanout fo;
    kvi_fanout_init(&fo);
    kvi_request put = {.opcode = KVI_OP_PUT, .key = {(const unsigned char *)"f", 1},
                       .value = {(const unsigned char *)"v", 1}};
    kvi_request get = {.opcode = KVI_OP_GET, .key = {(const unsigned char *)"f", 1}};
    kvi_call *a = kvi_call_start(cl, &fo, &put, 0, 1);
    struct timespec deadline = kvi_deadline_after(5000);
    assert_int_equal(kvi_fanout_wait(&fo, 1, 1, &deadline), 1);
    kvi_call *b = kvi_call_start(cl, &fo, &get, 0, 0);
    kvi_request missing = {.opcode = KVI_OP_GET, .key = {(const unsigned char *)"nope", 4}};
    kvi_call *c = kvi_call_start(cl, &fo, &missing, 0, 0);
    deadline = kvi_deadline_after(5000);
    /* A found key and a missing one both count as answers. */
    assert_int_equal(kvi_fanout_wait(&fo, 3, 3, &deadline), 3);
    kvi_frame_header h;
    unsigned char *body;
    kvi_response resp;
    assert_int_equal(kvi_call_finish(a, &h, &body), KV_OK);
    assert_int_equal(kvi_call_decode(&resp, KVI_OP_PUT, &h, body), KV_OK);
    free(body);
    assert_int_equal(kvi_call_finish(b, &h, &body), KV_OK);
    assert_int_equal(kvi_call_decode(&resp, KVI_OP_GET, &h, body), KV_OK);
    assert_int_equal(resp.sibling_count, 1);
    free(body);
    assert_int_equal(kvi_call_finish(c, &h, &body), KV_OK);
    assert_int_equal(kvi_call_decode(&resp, KVI_OP_GET, &h, body), KV_ENOTFOUND);
    free(body);
    kvi_fanout_destroy(&fo);
    kvi_client_close(cl);

    /* A node that never answers, and at most 2 requests in flight. */
    char ep[64];
    int lfd = silent_listener(ep, sizeof ep);
    assert_true(lfd >= 0);
    const char *silent[] = {ep};
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.request_timeout_ms = 200;
    assert_int_equal(kvi_client_open(&cl, silent, 1, &co, NULL), KV_OK);
    kvi_client_set_max_inflight(cl, 2);
    kvi_fanout_init(&fo);
    kvi_call *x = kvi_call_start(cl, &fo, &put, 0, 1);
    kvi_call *y = kvi_call_start(cl, &fo, &get, 0, 0);
    /* Given up on: no answer, and a write that was sent may have applied. */
    assert_int_equal(kvi_call_finish(x, &h, &body), KV_EUNKNOWN_OUTCOME);
    assert_int_equal(kvi_call_finish(y, &h, &body), KV_ETIMEDOUT);
    /* Both still hold their slots: a third waits for one in the client's
     * queue, and after the request timeout gives up, unsent. */
    kvi_call *z = kvi_call_start(cl, &fo, &get, 0, 0);
    deadline = kvi_deadline_after(10000);
    assert_int_equal(kvi_fanout_wait(&fo, 1, 1, &deadline), 0);
    assert_int_equal(kvi_call_done(z), 1);
    assert_int_equal(kvi_call_finish(z, &h, &body), KV_EUNAVAILABLE);
    assert_non_null(strstr(kv_error_last(), "in flight"));
    kvi_fanout_destroy(&fo);
    /* Closing frees the abandoned calls (ASan checks). */
    kvi_client_close(cl);
    close(lfd);
}

static void unreachable_and_bad_endpoints(void **state)
{
    (void)state;
    /* Bind a port, then close it: nothing listens there. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    bind(fd, (struct sockaddr *)&sa, sizeof sa);
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    char ep[64];
    snprintf(ep, sizeof ep, "127.0.0.1:%d", ntohs(sa.sin_port));
    const char *eps[] = {ep};
    kv *c;
    assert_int_equal(kv_client_open(&c, eps, 1, NULL), KV_OK);
    assert_int_equal(kv_ping(c), KV_EUNAVAILABLE);
    /* The detail names the endpoint and the reason, once. */
    assert_non_null(strstr(kv_error_last(), "refused"));
    assert_null(strstr(strstr(kv_error_last(), "no node reachable") + 1, "no node reachable"));
    assert_int_equal(kv_put(NULL, c, "k", 1, "v", 1, NULL), KV_EUNAVAILABLE);
    kv_close(c);

    const char *bad[] = {"no-port"};
    assert_int_equal(kv_client_open(&c, bad, 1, NULL), KV_EINVAL);
    const char *bad_port[] = {"127.0.0.1:99999"};
    assert_int_equal(kv_client_open(&c, bad_port, 1, NULL), KV_EINVAL);
    assert_int_equal(kv_client_open(&c, NULL, 0, NULL), KV_EINVAL);
}

static void node_options_are_checked(void **state)
{
    world *w = *state;
    kv *n = (kv *)w;
    kv_node_options o = KV_NODE_OPTIONS_INIT;
    assert_int_equal(kv_node_start(&n, NULL), KV_EINVAL);
    assert_null(n);
    assert_int_equal(kv_node_start(&n, &o), KV_EINVAL);
    char *dir = test_tempdir();
    o.data_dir = dir;
    o.node_id = "bad id!";
    o.listen_addr = "127.0.0.1:0";
    assert_int_equal(kv_node_start(&n, &o), KV_EINVAL);
    o.node_id = "n2";
    o.listen_addr = "nonsense";
    assert_int_equal(kv_node_start(&n, &o), KV_EINVAL);
    /* The port of the running node is taken. */
    char taken[64];
    snprintf(taken, sizeof taken, "127.0.0.1:%d", w->port);
    o.listen_addr = taken;
    assert_int_equal(kv_node_start(&n, &o), KV_EBUSY);
    assert_non_null(strstr(kv_error_last(), "in use"));
    /* The store of the running node is locked. */
    o.listen_addr = "127.0.0.1:0";
    o.data_dir = w->dir;
    assert_int_equal(kv_node_start(&n, &o), KV_EBUSY);
    o.data_dir = dir;
    /* Credentials: malformed ones are refused, never read as "none". */
    o.cluster_secret_len = 20; /* no pointer */
    assert_int_equal(kv_node_start(&n, &o), KV_EINVAL);
    o.cluster_secret = "short";
    o.cluster_secret_len = 5;
    assert_int_equal(kv_node_start(&n, &o), KV_EINVAL);
    assert_non_null(strstr(kv_error_last(), "16"));
    o.cluster_secret = NULL;
    o.cluster_secret_len = 0;
    o.client_token_count = 1; /* no array */
    assert_int_equal(kv_node_start(&n, &o), KV_EINVAL);
    const char *bad_tokens[] = {"has space"};
    o.client_tokens = bad_tokens;
    assert_int_equal(kv_node_start(&n, &o), KV_EINVAL);
    o.client_tokens = NULL;
    o.client_token_count = 0;
    o.tls_cert_pem = "-----BEGIN CERTIFICATE-----"; /* without its key */
    assert_int_equal(kv_node_start(&n, &o), KV_EINVAL);
    o.tls_key_pem = "not a key";
    assert_int_equal(kv_node_start(&n, &o), KV_EINVAL); /* GnuTLS refuses the pair */
    o.tls_cert_pem = o.tls_key_pem = NULL;
    /* Protected mode: beyond loopback with no credentials. */
    o.listen_addr = "0.0.0.0:0";
    assert_int_equal(kv_node_start(&n, &o), KV_EPERM);
    assert_non_null(strstr(kv_error_last(), "--insecure"));
    o.listen_addr = "127.0.0.1:0";
    o.http_addr = "0.0.0.0:0";
    assert_int_equal(kv_node_start(&n, &o), KV_EPERM);
    o.insecure = 1;
    assert_int_equal(kv_node_start(&n, &o), KV_OK);
    kv_close(n);
    test_rmtree(dir);
    int port = -1;
    assert_int_equal(kv_node_ports(&port, NULL, w->client), KV_EINVAL);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* Slow requests: counted in /metrics, and reported in one warn line (the
 * node's reporter runs kvi_node_report once a minute; called here). */
typedef struct captured {
    char last_warn[512];
    int warns;
} captured;

static void capture_warn(kv_log_level level, const char *message, void *ctx)
{
    captured *c = ctx;
    if (level == KV_LOG_WARN && strstr(message, "took")) {
        snprintf(c->last_warn, sizeof c->last_warn, "%s", message);
        c->warns++;
    }
}

static void slow_requests_are_reported(void **state)
{
    (void)state;
    char *dir = test_tempdir();
    captured cap = {0};
    kv_open_options store = KV_OPEN_OPTIONS_INIT;
    store.sync = KV_SYNC_NONE;
    store.log_fn = capture_warn;
    store.log_ctx = &cap;
    store.log_level = KV_LOG_DEBUG;
    kv_node_options o = KV_NODE_OPTIONS_INIT;
    o.data_dir = dir;
    o.node_id = "slow";
    o.listen_addr = "127.0.0.1:0";
    o.store = &store;
    o.slow_request_ms = 3600001;
    kv *db = NULL;
    assert_int_equal(kv_node_start(&db, &o), KV_EINVAL);
    assert_non_null(strstr(kv_error_last(), "slow_request_ms"));
    o.slow_request_ms = 20;
    /* Anti-entropy's options, out of their ranges. */
    o.ae_digest_bits = 3;
    assert_int_equal(kv_node_start(&db, &o), KV_EINVAL);
    assert_non_null(strstr(kv_error_last(), "ae_digest_bits"));
    o.ae_digest_bits = 25;
    assert_int_equal(kv_node_start(&db, &o), KV_EINVAL);
    o.ae_digest_bits = 0;
    o.ae_interval_s = 7u * 86400u + 1;
    assert_int_equal(kv_node_start(&db, &o), KV_EINVAL);
    assert_non_null(strstr(kv_error_last(), "ae_interval_s"));
    o.ae_interval_s = 0;
    assert_int_equal(kv_node_start(&db, &o), KV_OK);
    kvi_node *n = db->node;
    /* Nothing slow yet: no line. */
    kvi_node_report(n);
    assert_int_equal(cap.warns, 0);
    /* Two requests over 20 ms (their latencies as the server records
     * them), one under. */
    kvi_metrics_record(n->metrics, KVI_PROTO_BINARY, KVI_MOP_PUT, KVI_LEVEL_QUORUM, KV_OK, 25000000);
    kvi_metrics_record(n->metrics, KVI_PROTO_HTTP, KVI_MOP_GET, KVI_LEVEL_QUORUM, KV_OK, 90000000);
    kvi_metrics_record(n->metrics, KVI_PROTO_BINARY, KVI_MOP_GET, KVI_LEVEL_QUORUM, KV_OK, 19000000);
    kvi_node_report(n);
    assert_int_equal(cap.warns, 1);
    assert_non_null(strstr(cap.last_warn, "2 requests took 20 ms or longer"));
    assert_non_null(strstr(cap.last_warn, "http get, 90 ms"));
    /* Reported once: the next report has nothing to say. */
    kvi_node_report(n);
    assert_int_equal(cap.warns, 1);
    kv_close(db);
    test_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(every_call_over_the_wire),
        T(errors_come_back_with_their_detail),
        T(batches_over_the_wire),
        T(bad_frames_get_error_frames),
        T(pipelined_requests_answer_by_id),
        T(writes_sent_together_each_answer_alone_in_order),
        T(a_client_that_never_reads_does_not_stall_others),
        T(replicated_state_travels_between_nodes),
        T(one_client_many_threads),
        T(client_reconnects_after_node_restart),
        T(many_threads_live_through_a_restart),
        cmocka_unit_test(silent_server_times_out),
        T(fanout_calls_and_backpressure),
        cmocka_unit_test(unreachable_and_bad_endpoints),
        T(node_options_are_checked),
        cmocka_unit_test(slow_requests_are_reported),
    };
    return cmocka_run_group_tests_name("net.node_client", tests, NULL, NULL);
}
