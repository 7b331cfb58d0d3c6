/* Trust at the door (issue 10), against real kvd processes on loopback: a
 * cluster with a cluster secret and client tokens, attacked over raw
 * frames. Every internode opcode from a connection that has not proved the
 * secret is refused and changes nothing (ring, keys and hints compared
 * before and after); a client token is no peer's; a wrong secret, a
 * replayed proof, an AUTH without its HELLO, a missing or wrong token are
 * all refused; protected mode stops a node with no credentials from
 * listening beyond loopback. The path of kvd comes from $KVD. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <curl/curl.h>

#include "net/client.h"
#include "format/gossip_table.h"
#include "format/state.h"
#include "helpers.h"
#include "integration/kvd_process.h"
#include "integration/loopback.h"
#include "net/auth.h"
#include "format/frame.h"
#include "format/message.h"
#include "format/record.h"
#include <kv/kv.h>

#define NODES 3
static const char SECRET[] = "correct horse battery staple, 32b";
static const char *const TOKENS[] = {"alpha-token-1", "beta-token-2"};

typedef struct node {
    pid_t pid;
    char *dir;
    char id[16];
    char listen[64];
    char http[64];
    char log_path[600];
} node;

typedef struct secured {
    node nodes[NODES];
    char peers[256];
    char secret_path[600];
    char token_path[600];
    char *files;
} secured;

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static kv *client_with(const secured *s, const char *token)
{
    const char *eps[NODES];
    for (int i = 0; i < NODES; i++)
        eps[i] = s->nodes[i].listen;
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.request_timeout_ms = 3000;
    co.connect_timeout_ms = 500;
    co.auth_token = token;
    kv *db = NULL;
    assert_int_equal(kv_client_open(&db, eps, NODES, &co), KV_OK);
    return db;
}

/* Waits (bounded) until node i describes a complete cluster to a client
 * with a token. */
static void wait_complete(const secured *s, int i)
{
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.auth_token = TOKENS[0];
    co.request_timeout_ms = 2000;
    if (!kvd_wait_complete(s->nodes[i].listen, &co))
        fail_msg("node %d never completed its membership (log: %s)", i + 1,
                 s->nodes[i].log_path);
}

static int setup(void **state)
{
    secured *s = calloc(1, sizeof *s);
    s->files = test_tempdir();
    snprintf(s->secret_path, sizeof s->secret_path, "%s/secret", s->files);
    snprintf(s->token_path, sizeof s->token_path, "%s/tokens", s->files);
    char secret_text[128];
    snprintf(secret_text, sizeof secret_text, "%s\n", SECRET);
    write_file(s->secret_path, secret_text);
    char tokens[128];
    snprintf(tokens, sizeof tokens, "# clients\n%s\n\n%s\n", TOKENS[0], TOKENS[1]);
    write_file(s->token_path, tokens);
    for (int i = 0; i < NODES; i++) {
        node *d = &s->nodes[i];
        d->dir = test_tempdir();
        snprintf(d->id, sizeof d->id, "n%d", i + 1);
        snprintf(d->listen, sizeof d->listen, "127.0.0.1:%d", free_port());
        snprintf(d->http, sizeof d->http, "127.0.0.1:%d", free_port());
        snprintf(d->log_path, sizeof d->log_path, "%s.log", d->dir);
        if (i)
            strcat(s->peers, ",");
        strcat(s->peers, d->listen);
    }
    *state = s; /* teardown stops what started, even when setup fails below */
    for (int i = 0; i < NODES; i++) {
        node *d = &s->nodes[i];
        const char *argv[] = {kvd_path(), "--data", d->dir, "--listen", d->listen,
                              "--http", d->http, "--node-id", d->id, "--peers", s->peers,
                              "--cluster-secret-file", s->secret_path,
                              "--client-token-file", s->token_path, NULL};
        d->pid = kvd_spawn(argv, d->log_path);
        assert_true(d->pid > 0);
    }
    for (int i = 0; i < NODES; i++)
        wait_complete(s, i);
    return 0;
}

static int teardown(void **state)
{
    secured *s = *state;
    if (!s)
        return 0;
    for (int i = 0; i < NODES; i++) {
        if (s->nodes[i].pid > 0)
            kvd_stop(s->nodes[i].pid, SIGKILL);
        if (!getenv("KV_TEST_KEEP_LOGS"))
            unlink(s->nodes[i].log_path);
        test_rmtree(s->nodes[i].dir);
    }
    test_rmtree(s->files);
    free(s);
    return 0;
}

/* ------------------------------------------------------------ raw frames */

static int raw_connect(const char *host_port)
{
    int fd = loopback_connect(host_port, 5);
    assert_true(fd >= 0);
    return fd;
}

/* Sends one request frame; returns the answer's status (its body, if any,
 * in *body: free it), or 1 when the connection closed without an answer. */
static int raw_call(int fd, uint8_t opcode, uint16_t flags, const kvi_buf *body,
                    unsigned char **out, size_t *out_len)
{
    kvi_buf f = {0};
    kvi_frame_begin(&f);
    if (body)
        kvi_buf_raw(&f, body->data, body->len);
    static uint64_t id = 1;
    uint64_t rid = id++;
    assert_int_equal(kvi_frame_finish(&f, 0, opcode, flags, 0, rid), 0);
    ssize_t sent = send(fd, f.data, f.len, MSG_NOSIGNAL);
    kvi_buf_free(&f);
    if (sent < 0)
        return 1;
    unsigned char header[KVI_FRAME_HEADER];
    if (recv_exact(fd, header, sizeof header) != 0)
        return 1;
    kvi_frame_header h;
    assert_int_equal(kvi_frame_parse_header(&h, header, sizeof header, 1u << 20), KVI_FRAME_OK);
    assert_int_equal(h.request_id, rid);
    unsigned char *b = malloc(h.body_len + 1);
    assert_int_equal(recv_exact(fd, b, h.body_len), 0);
    if (out) {
        *out = b;
        *out_len = h.body_len;
    } else {
        free(b);
    }
    return h.status;
}

/* 1 when the node closed the connection (a read sees EOF or a reset). */
static int closed_by_peer(int fd)
{
    unsigned char c;
    return recv(fd, &c, 1, 0) <= 0;
}

/* -------------------------------------------------- what an attack could change */

typedef struct snapshot {
    char members[3][2048]; /* each node's description, minus volatile figures */
    unsigned long long hints;
} snapshot;

/* The member list of node i's description ("members":[...] only: status
 * and heartbeat-driven figures change by themselves). */
static void members_of(const secured *s, int i, char *out, size_t size, unsigned long long *hints)
{
    const char *eps[] = {s->nodes[i].listen};
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.auth_token = TOKENS[0];
    kv *db = NULL;
    assert_int_equal(kv_client_open(&db, eps, 1, &co), KV_OK);
    char *json = NULL;
    assert_int_equal(kv_cluster_describe(&json, db), KV_OK);
    /* Every member's id and address: the ring is built from these. */
    out[0] = 0;
    for (const char *p = json; (p = strstr(p, "\"nodeId\":\"")) != NULL; p++) {
        const char *end = strchr(p + 10, '"');
        strncat(out, p + 10, (size_t)(end - p - 10));
        strncat(out, "@", size - strlen(out) - 1);
        const char *addr = strstr(p, "\"address\":\"");
        if (addr) {
            const char *aend = strchr(addr + 11, '"');
            strncat(out, addr + 11, (size_t)(aend - addr - 11));
        }
        strncat(out, ";", size - strlen(out) - 1);
    }
    const char *h = strstr(json, "\"hintsPending\":");
    *hints += h ? strtoull(h + 15, NULL, 10) : 0;
    kv_string_free(json);
    kv_close(db);
}

static void take_snapshot(const secured *s, snapshot *snap)
{
    memset(snap, 0, sizeof *snap);
    for (int i = 0; i < NODES; i++)
        members_of(s, i, snap->members[i], sizeof snap->members[i], &snap->hints);
}

/* A replicated state for key holding value, written by "evil" far in the
 * future, so that last-write-wins would pick it over any real write. */
static void forged_state(kvi_buf *out, const char *key, const char *value)
{
    kvi_state st;
    kvi_state_init(&st);
    kvi_sibling sib = {.value = (const unsigned char *)value, .value_len = strlen(value),
                       .write_ms = 4000000000000ull};
    assert_int_equal(kvi_state_write(&st, NULL, "evil", &sib), KV_OK);
    kvi_state_encode(out, &st, kvi_key_token(key, strlen(key)));
}

/* Sends every internode opcode (and a data request with the internode
 * flags) on fd; asserts each is refused with KV_EPERM. */
static void send_every_internode_opcode(int fd, const char *key)
{
    kvi_buf body = {0}, st = {0};
    /* GOSSIP: a member at an address no one runs, which would take over
     * part of the ring. */
    kvi_gossip_table t;
    kvi_gossip_table_init(&t);
    kvi_gossip_entry e;
    memset(&e, 0, sizeof e);
    snprintf(e.id, sizeof e.id, "intruder");
    snprintf(e.addr, sizeof e.addr, "127.0.0.9:1");
    e.generation = 1;
    e.heartbeat = 1;
    e.status = KVI_MEMBER_UP;
    assert_int_equal(kvi_gossip_merge_entry(&t, &e), 1);
    kvi_buf table = {0};
    kvi_gossip_encode(&table, &t);
    kvi_request gossip = {.opcode = KVI_OP_GOSSIP, .value = {table.data, table.len}};
    kvi_request_encode(&body, &gossip);
    assert_int_equal(raw_call(fd, KVI_OP_GOSSIP, 0, &body, NULL, NULL), KV_EPERM);

    forged_state(&st, key, "forged");
    kvi_request rep = {.opcode = KVI_OP_REPLICATE, .key = {(const unsigned char *)key, strlen(key)},
                       .value = {st.data, st.len}};
    kvi_buf_reset(&body);
    kvi_request_encode(&body, &rep);
    assert_int_equal(raw_call(fd, KVI_OP_REPLICATE, 0, &body, NULL, NULL), KV_EPERM);
    assert_int_equal(raw_call(fd, KVI_OP_REPLICATE, KVI_FRAME_FLAG_HANDOFF, &body, NULL, NULL),
                     KV_EPERM);

    kvi_request hint = {.opcode = KVI_OP_HINT, .key = {(const unsigned char *)key, strlen(key)},
                        .value = {st.data, st.len}, .context = {(const unsigned char *)"n2", 2}};
    kvi_buf_reset(&body);
    kvi_request_encode(&body, &hint);
    assert_int_equal(raw_call(fd, KVI_OP_HINT, 0, &body, NULL, NULL), KV_EPERM);

    kvi_request get_state = {.opcode = KVI_OP_GET_STATE,
                             .key = {(const unsigned char *)key, strlen(key)}};
    kvi_buf_reset(&body);
    kvi_request_encode(&body, &get_state);
    assert_int_equal(raw_call(fd, KVI_OP_GET_STATE, 0, &body, NULL, NULL), KV_EPERM);

    /* A PUT passing itself off as forwarded by a coordinator. */
    kvi_request put = {.opcode = KVI_OP_PUT, .key = {(const unsigned char *)key, strlen(key)},
                       .value = {(const unsigned char *)"forwarded", 9}};
    kvi_buf_reset(&body);
    kvi_request_encode(&body, &put);
    assert_int_equal(raw_call(fd, KVI_OP_PUT, KVI_FRAME_FLAG_FORWARDED, &body, NULL, NULL),
                     KV_EPERM);
    kvi_buf_free(&table);
    kvi_gossip_table_free(&t);
    kvi_buf_free(&st);
    kvi_buf_free(&body);
}

static void assert_value(kv *db, const char *key, const char *want)
{
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    ro.consistency = KV_CONSISTENCY_ALL;
    kv_value *v = NULL;
    assert_int_equal(kv_get(&v, db, key, strlen(key), &ro), KV_OK);
    size_t len;
    const void *data = kv_value_data(v, &len);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(data, want, len);
    kv_value_free(v);
}

/* ------------------------------------------------------------------ tests */

static void authenticated_clients_are_served(void **state)
{
    secured *s = *state;
    for (int t = 0; t < 2; t++) {
        kv *db = client_with(s, TOKENS[t]);
        kv_write_options wo = KV_WRITE_OPTIONS_INIT;
        wo.consistency = KV_CONSISTENCY_ALL; /* every peer link authenticated */
        char key[32];
        snprintf(key, sizeof key, "served-%d", t);
        assert_int_equal(kv_put(NULL, db, key, strlen(key), "v", 1, &wo), KV_OK);
        assert_value(db, key, "v");
        kv_close(db);
    }
}

static void clients_without_a_good_token_are_refused(void **state)
{
    secured *s = *state;
    const char *bad[] = {NULL, "wrong-token", "alpha-token-", "alpha-token-11"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        kv *db = client_with(s, bad[i]);
        assert_int_equal(kv_put(NULL, db, "refused", 7, "x", 1, NULL), KV_EPERM);
        kv_value *v = NULL;
        assert_int_equal(kv_get(&v, db, "refused", 7, NULL), KV_EPERM);
        kv_close(db);
    }
    kv *good = client_with(s, TOKENS[1]);
    kv_value *v = NULL;
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    ro.consistency = KV_CONSISTENCY_ALL;
    assert_int_equal(kv_get(&v, good, "refused", 7, &ro), KV_ENOTFOUND);
    kv_close(good);
    /* Raw: a data opcode before AUTH, and a failed AUTH closes. */
    int fd = raw_connect(s->nodes[0].listen);
    kvi_buf body = {0};
    kvi_request get = {.opcode = KVI_OP_GET, .key = {(const unsigned char *)"refused", 7}};
    kvi_request_encode(&body, &get);
    assert_int_equal(raw_call(fd, KVI_OP_GET, 0, &body, NULL, NULL), KV_EPERM);
    assert_int_equal(raw_call(fd, KVI_OP_CLUSTER, 0, NULL, NULL, NULL), KV_EPERM);
    kvi_buf_reset(&body);
    kvi_request read_state = {.opcode = KVI_OP_READ_STATE,
                              .key = {(const unsigned char *)"refused", 7}};
    kvi_request_encode(&body, &read_state);
    assert_int_equal(raw_call(fd, KVI_OP_READ_STATE, 0, &body, NULL, NULL), KV_EPERM);
    assert_int_equal(raw_call(fd, KVI_OP_PING, 0, NULL, NULL, NULL), KV_OK); /* open */
    kvi_buf auth = {0};
    kvi_auth_token_body(&auth, "nope");
    assert_int_equal(raw_call(fd, KVI_OP_AUTH, 0, &auth, NULL, NULL), KV_EPERM);
    assert_true(closed_by_peer(fd));
    close(fd);
    kvi_buf_free(&auth);
    kvi_buf_free(&body);
}

static void internode_opcodes_need_the_secret(void **state)
{
    secured *s = *state;
    kv *db = client_with(s, TOKENS[0]);
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.consistency = KV_CONSISTENCY_ALL;
    assert_int_equal(kv_put(NULL, db, "target", 6, "genuine", 7, &wo), KV_OK);
    snapshot before, after;
    take_snapshot(s, &before);
    for (int i = 0; i < NODES; i++) {
        /* No authentication at all. */
        int fd = raw_connect(s->nodes[i].listen);
        send_every_internode_opcode(fd, "target");
        close(fd);
        /* A client token is not a peer's proof. */
        fd = raw_connect(s->nodes[i].listen);
        kvi_buf auth = {0};
        kvi_auth_token_body(&auth, TOKENS[0]);
        assert_int_equal(raw_call(fd, KVI_OP_AUTH, 0, &auth, NULL, NULL), KV_OK);
        send_every_internode_opcode(fd, "target");
        /* A client's read repair may carry a state, but not one written
         * far in the future (it would win last-write-wins for years). */
        kvi_buf st = {0}, body = {0};
        forged_state(&st, "target", "forged");
        kvi_request repair = {.opcode = KVI_OP_REPAIR,
                              .key = {(const unsigned char *)"target", 6},
                              .value = {st.data, st.len}};
        kvi_request_encode(&body, &repair);
        assert_int_equal(raw_call(fd, KVI_OP_REPAIR, 0, &body, NULL, NULL), KV_EINVAL);
        kvi_buf_free(&st);
        kvi_buf_free(&body);
        close(fd);
        kvi_buf_free(&auth);
    }
    /* Gossip would have spread within a few rounds: give it time to. */
    sleep_ms(3000);
    take_snapshot(s, &after);
    for (int i = 0; i < NODES; i++) {
        assert_string_equal(before.members[i], after.members[i]);
        assert_null(strstr(after.members[i], "intruder"));
    }
    assert_int_equal(before.hints, after.hints);
    assert_value(db, "target", "genuine");
    kv_close(db);
}

static void handshake_refuses_wrong_secret_replay_and_shortcuts(void **state)
{
    secured *s = *state;
    const char *addr = s->nodes[1].listen;
    /* A peer with the right secret: the whole exchange by hand. */
    int fd = raw_connect(addr);
    unsigned char nonce_c[KVI_AUTH_NONCE];
    kvi_buf hello = {0};
    assert_int_equal(kvi_auth_hello(&hello, nonce_c), KV_OK);
    unsigned char *answer = NULL;
    size_t answer_len = 0;
    assert_int_equal(raw_call(fd, KVI_OP_HELLO, 0, &hello, &answer, &answer_len), KV_OK);
    kvi_buf proof = {0};
    assert_int_equal(kvi_auth_answer(&proof, (const unsigned char *)SECRET, strlen(SECRET),
                                     nonce_c, answer, answer_len), KV_OK);
    free(answer);
    assert_int_equal(raw_call(fd, KVI_OP_AUTH, 0, &proof, NULL, NULL), KV_OK);
    kvi_buf body = {0};
    kvi_request get_state = {.opcode = KVI_OP_GET_STATE,
                             .key = {(const unsigned char *)"absent", 6}};
    kvi_request_encode(&body, &get_state);
    int st = raw_call(fd, KVI_OP_GET_STATE, 0, &body, NULL, NULL);
    assert_true(st == KV_ENOTFOUND || st == KV_OK || st < -99); /* served, not refused */
    close(fd);

    /* The same proof replayed on another connection, after a HELLO with the
     * same client nonce: the node's nonce differs, so the proof is wrong. */
    fd = raw_connect(addr);
    assert_int_equal(raw_call(fd, KVI_OP_HELLO, 0, &hello, &answer, &answer_len), KV_OK);
    free(answer);
    assert_int_equal(raw_call(fd, KVI_OP_AUTH, 0, &proof, NULL, NULL), KV_EPERM);
    assert_true(closed_by_peer(fd));
    close(fd);

    /* The proof without any HELLO on its connection. */
    fd = raw_connect(addr);
    assert_int_equal(raw_call(fd, KVI_OP_AUTH, 0, &proof, NULL, NULL), KV_EPERM);
    assert_true(closed_by_peer(fd));
    close(fd);

    /* A client that knows another secret: the node's proof does not check
     * out (so the client refuses to go on), and its own would not either. */
    fd = raw_connect(addr);
    kvi_buf_reset(&hello);
    assert_int_equal(kvi_auth_hello(&hello, nonce_c), KV_OK);
    assert_int_equal(raw_call(fd, KVI_OP_HELLO, 0, &hello, &answer, &answer_len), KV_OK);
    kvi_buf wrong = {0};
    const char other[] = "another cluster's secret, 32 bytes";
    assert_int_equal(kvi_auth_answer(&wrong, (const unsigned char *)other, strlen(other),
                                     nonce_c, answer, answer_len), KV_EPERM);
    /* Sent anyway, built from the wrong secret by hand: refused. */
    unsigned char mac[KVI_AUTH_MAC];
    kvi_reader r = kvi_reader_init(answer, answer_len);
    kvi_bytes nonce_s = kvi_read_bytes(&r);
    kvi_auth_proof(mac, (const unsigned char *)other, strlen(other), "libkv peer",
                   nonce_s.data, nonce_c);
    kvi_buf_reset(&wrong);
    kvi_buf_u8(&wrong, KVI_AUTH_METHOD_PEER);
    kvi_buf_bytes(&wrong, mac, sizeof mac);
    free(answer);
    assert_int_equal(raw_call(fd, KVI_OP_AUTH, 0, &wrong, NULL, NULL), KV_EPERM);
    assert_true(closed_by_peer(fd));
    close(fd);

    /* The library's own client with the wrong secret. */
    kvi_client *cl = NULL;
    const char *eps[] = {addr};
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    assert_int_equal(kvi_client_open(&cl, eps, 1, &co, NULL), KV_OK);
    assert_int_equal(kvi_client_set_credentials(cl, (const unsigned char *)other, strlen(other),
                                                NULL), KV_OK);
    kvi_buf holder = {0};
    kvi_state got;
    assert_int_equal(kvi_client_get_state(cl, &got, &holder, "absent", 6), KV_EPERM);
    kvi_buf_free(&holder);
    kvi_client_close(cl);

    kvi_buf_free(&wrong);
    kvi_buf_free(&body);
    kvi_buf_free(&proof);
    kvi_buf_free(&hello);
}

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
    (void)p;
    (void)ctx;
    return size * n;
}

/* METHOD on node i's HTTP API with an optional Authorization header;
 * returns the status (0: no answer). */
static long http_status(const secured *s, int i, const char *method, const char *path,
                        const char *body, const char *authorization)
{
    CURL *curl = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "http://%s%s", s->nodes[i].http, path);
    struct curl_slist *headers = authorization ? curl_slist_append(NULL, authorization) : NULL;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
    if (body)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return status;
}

/* The node's client tokens guard its HTTP API too: the same tokens. */
static void http_needs_a_client_token(void **state)
{
    secured *s = *state;
    char good[64], wrong[64];
    snprintf(good, sizeof good, "Authorization: Bearer %s", TOKENS[1]);
    snprintf(wrong, sizeof wrong, "Authorization: Bearer %s", "not-a-token");
    assert_int_equal(http_status(s, 0, "PUT", "/v1/kv/web", "{\"value\":\"x\"}", NULL), 401);
    assert_int_equal(http_status(s, 0, "PUT", "/v1/kv/web", "{\"value\":\"x\"}", wrong), 401);
    assert_int_equal(http_status(s, 0, "GET", "/v1/kv/web", NULL, good), 404); /* not stored */
    assert_int_equal(http_status(s, 0, "GET", "/v1/cluster", NULL, NULL), 401);
    assert_int_equal(http_status(s, 1, "PUT", "/v1/kv/web", "{\"value\":\"x\"}", good), 200);
    assert_int_equal(http_status(s, 2, "GET", "/v1/kv/web", NULL, good), 200);
    assert_int_equal(http_status(s, 2, "GET", "/v1/health", NULL, NULL), 200);
    assert_int_equal(http_status(s, 2, "GET", "/metrics", NULL, NULL), 200);
}

/* Protected mode: no secret and no token beyond loopback is refused, and
 * says how to fix it; --insecure or a secret lets it start. */
static void protected_mode(void **state)
{
    secured *s = *state;
    char *dir = test_tempdir();
    char log_path[600], listen[64];
    snprintf(log_path, sizeof log_path, "%s.log", dir);
    snprintf(listen, sizeof listen, "0.0.0.0:%d", free_port());
    const char *argv[] = {kvd_path(), "--data", dir, "--listen", listen, "--node-id", "p1",
                          NULL, NULL, NULL};
    pid_t pid = kvd_spawn(argv, log_path);
    int status = 0, exited = 0;
    for (int t = 0; t < 1500 && !exited; t++) {
        exited = waitpid(pid, &status, WNOHANG) == pid;
        if (!exited)
            sleep_ms(10);
    }
    if (!exited)
        kvd_stop(pid, SIGKILL);
    assert_true(exited);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    char text[8192] = "";
    FILE *f = fopen(log_path, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    assert_non_null(strstr(text, "--insecure"));
    assert_non_null(strstr(text, "--cluster-secret-file"));

    /* Each way out starts it: --insecure, or a secret. */
    const char *fixes[][2] = {{"--insecure", NULL}, {"--cluster-secret-file", s->secret_path}};
    for (int i = 0; i < 2; i++) {
        argv[7] = fixes[i][0];
        argv[8] = fixes[i][1];
        pid = kvd_spawn(argv, log_path);
        int port = atoi(strrchr(listen, ':') + 1);
        char local[64];
        snprintf(local, sizeof local, "127.0.0.1:%d", port);
        const char *eps[] = {local};
        kv *db = NULL;
        kv_client_options co = KV_CLIENT_OPTIONS_INIT;
        co.connect_timeout_ms = 200;
        /* A client set up with a token works against a node that needs
         * none (its data is open anyway). */
        co.auth_token = TOKENS[0];
        assert_int_equal(kv_client_open(&db, eps, 1, &co), KV_OK);
        int rc = KV_EUNAVAILABLE;
        for (int t = 0; t < 100 && rc != KV_OK; t++) {
            rc = kv_ping(db);
            if (rc != KV_OK)
                sleep_ms(100);
        }
        int put = kv_put(NULL, db, "open", 4, "v", 1, NULL);
        kv_close(db);
        assert_int_equal(kvd_stop(pid, SIGTERM), 1);
        assert_int_equal(rc, KV_OK);
        assert_int_equal(put, KV_OK);
    }
    unlink(log_path);
    test_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(authenticated_clients_are_served),
        cmocka_unit_test(clients_without_a_good_token_are_refused),
        cmocka_unit_test(internode_opcodes_need_the_secret),
        cmocka_unit_test(handshake_refuses_wrong_secret_replay_and_shortcuts),
        cmocka_unit_test(http_needs_a_client_token),
        cmocka_unit_test(protected_mode),
    };
    return cmocka_run_group_tests_name("integration.security", tests, setup, teardown);
}
