/* The topology service over real sockets: three members, each a binary
 * server that answers TOPOLOGY from its service, agree on changes proposed
 * from any of them; of two changes proposed at once from two members one
 * goes in and the other is refused with a clear error; a change needs a
 * majority of the acceptors up; a node with no record fetches one; the
 * record and the acceptor's promises survive a restart of the store. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <kv/kv.h>
#include "cluster/topology.h"
#include "cluster/topology_service.h"
#include "format/frame.h"
#include "format/message.h"
#include "format/topology.h"
#include "net/client.h"
#include "net/server.h"
#include "storage/store.h"
#include "util/error.h"
#include "helpers.h"
#include "integration/loopback.h"

#define MEMBERS 3

typedef struct member {
    char id[8];
    char addr[64];
    kvi_server *server;
    kvi_topo_service *topo;
    kvi_store *store;
    char *dir;
} member;

typedef struct world {
    member m[MEMBERS + 1];
    kvi_client_loop *loop;
} world;

static void handle(void *ctx, const kvi_frame_header *h, const unsigned char *body, kvi_buf *out)
{
    member *m = ctx;
    kvi_request req;
    if (h->opcode != KVI_OP_TOPOLOGY ||
        kvi_request_decode(&req, h->opcode, body, h->body_len) != 0) {
        kvi_error_frame(out, h->opcode, h->request_id, KV_EINVAL, 0, "malformed");
        return;
    }
    kvi_buf answer = {0};
    int rc = kvi_topo_service_handle(m->topo, req.value.data, req.value.len, &answer);
    if (rc != KV_OK) {
        kvi_error_frame(out, h->opcode, h->request_id, rc, 0, kvi_error_last());
        kvi_buf_free(&answer);
        return;
    }
    kvi_response r = {.opcode = h->opcode};
    r.value.data = answer.data;
    r.value.len = answer.len;
    size_t start = out->len;
    kvi_frame_begin(out);
    kvi_response_encode(out, &r);
    kvi_frame_finish(out, start, h->opcode, KVI_FRAME_FLAG_RESPONSE, 0, h->request_id);
    kvi_buf_free(&answer);
}

static void member_up(world *w, int i)
{
    member *m = &w->m[i];
    if (m->store == NULL && m->dir) {
        kvi_store_config sc = {0};
        sc.path = m->dir;
        sc.create_if_missing = 1;
        assert_int_equal(kvi_store_open(&m->store, &sc), KV_OK);
    }
    kvi_topo_service_config tc = {.self_id = m->id, .store = m->store, .loop = w->loop,
                                  .request_timeout_ms = 1000};
    assert_int_equal(kvi_topo_service_open(&m->topo, &tc), KV_OK);
    kvi_server_config cfg = {
        .listen_addr = m->addr[0] ? m->addr : "127.0.0.1:0",
        .io_threads = 1,
        .max_body = KVI_FRAME_DEFAULT_MAX_BODY,
        .idle_timeout_ms = 30000,
        .max_connections = 64,
        .handler = handle,
        .handler_ctx = m,
    };
    assert_int_equal(kvi_server_start(&m->server, &cfg), KV_OK);
    snprintf(m->addr, sizeof m->addr, "127.0.0.1:%d", kvi_server_port(m->server));
}

static void member_down(world *w, int i)
{
    member *m = &w->m[i];
    kvi_server_stop(m->server);
    m->server = NULL;
    kvi_topo_service_close(m->topo);
    m->topo = NULL;
    (void)w;
}

/* Three members at epoch 1, and a fourth (index 3) with no record. */
static void world_up(world *w, int with_stores)
{
    memset(w, 0, sizeof *w);
    assert_int_equal(kvi_client_loop_new(&w->loop), KV_OK);
    for (int i = 0; i <= MEMBERS; i++) {
        snprintf(w->m[i].id, sizeof w->m[i].id, "n%d", i + 1);
        if (with_stores)
            w->m[i].dir = test_tempdir();
        member_up(w, i);
    }
    const char *ids[MEMBERS], *addrs[MEMBERS];
    for (int i = 0; i < MEMBERS; i++) {
        ids[i] = w->m[i].id;
        addrs[i] = w->m[i].addr;
    }
    kvi_topology first;
    kvi_topology_init(&first);
    assert_int_equal(kvi_topology_first(&first, 3, 16, ids, addrs, NULL, MEMBERS), KV_OK);
    for (int i = 0; i < MEMBERS; i++)
        assert_int_equal(kvi_topo_service_adopt(w->m[i].topo, &first), 1);
    kvi_topology_free(&first);
}

static void world_down(world *w)
{
    for (int i = 0; i <= MEMBERS; i++) {
        if (w->m[i].server)
            member_down(w, i);
        kvi_store_close(w->m[i].store);
        test_rmtree(w->m[i].dir); /* frees it */
    }
    kvi_client_loop_release(w->loop);
}

/* Waits (bounded, 10 s) until member i holds epoch e or later. */
static uint64_t wait_epoch(world *w, int i, uint64_t e)
{
    uint64_t have = 0;
    for (int t = 0; t < 1000 && (have = kvi_topo_service_epoch(w->m[i].topo)) < e; t++)
        sleep_ms(10);
    return have;
}

typedef struct join_args {
    const char *id, *addr;
} join_args;

static int build_join(void *ctx, const kvi_topology *cur, kvi_topology *next, char *err,
                      size_t err_size)
{
    const join_args *a = ctx;
    return kvi_topology_begin(next, cur, KVI_TOPO_OP_JOIN, a->id, a->addr, NULL, err, err_size);
}

static void a_change_from_any_member_reaches_them_all(void **state)
{
    (void)state;
    world w;
    world_up(&w, 0);
    join_args a = {"n9", "127.0.0.1:1"};
    char err[256] = "";
    kvi_topology chosen;
    kvi_topology_init(&chosen);
    int rc = kvi_topo_service_change(w.m[1].topo, build_join, &a, &chosen, err, sizeof err);
    if (rc != KV_OK)
        fprintf(stderr, "change: %s\n", err);
    assert_int_equal(rc, KV_OK);
    assert_int_equal(chosen.epoch, 2);
    assert_int_equal(kvi_topology_find(&chosen, "n9")->state, KVI_TOPO_JOINING);
    for (int i = 0; i < MEMBERS; i++)
        assert_int_equal(wait_epoch(&w, i, 2), 2);
    /* A node with no record asks one member for it. */
    assert_int_equal(kvi_topo_service_epoch(w.m[3].topo), 0);
    kvi_topo_service_fetch(w.m[3].topo, w.m[0].addr);
    assert_int_equal(wait_epoch(&w, 3, 2), 2);
    kvi_topology got;
    kvi_topology_init(&got);
    assert_int_equal(kvi_topo_service_record(w.m[3].topo, &got), KV_OK);
    assert_true(kvi_topology_equal(&got, &chosen));
    kvi_topology_free(&got);
    kvi_topology_free(&chosen);
    world_down(&w);
}

typedef struct racer {
    world *w;
    int from;
    join_args a;
    int rc;
    char err[256];
    pthread_barrier_t *go;
} racer;

static void *race(void *p)
{
    racer *r = p;
    pthread_barrier_wait(r->go);
    r->rc = kvi_topo_service_change(r->w->m[r->from].topo, build_join, &r->a, NULL, r->err,
                                    sizeof r->err);
    return NULL;
}

static void two_changes_at_once_one_wins_the_other_is_refused(void **state)
{
    (void)state;
    for (int round = 0; round < 10; round++) {
        world w;
        world_up(&w, 0);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        racer r[2] = {
            {.w = &w, .from = 0, .a = {"j1", "127.0.0.1:11"}, .go = &go},
            {.w = &w, .from = 2, .a = {"j2", "127.0.0.1:12"}, .go = &go},
        };
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&go);
        int ok = (r[0].rc == KV_OK) + (r[1].rc == KV_OK);
        if (ok != 1)
            fprintf(stderr, "round %d: %d (%s) and %d (%s)\n", round, r[0].rc, r[0].err,
                    r[1].rc, r[1].err);
        assert_int_equal(ok, 1);
        const racer *lost = r[0].rc == KV_OK ? &r[1] : &r[0];
        const racer *won = r[0].rc == KV_OK ? &r[0] : &r[1];
        assert_int_equal(lost->rc, KV_EBUSY);
        char want[64];
        snprintf(want, sizeof want, "join of %s is in progress", won->a.id);
        if (!strstr(lost->err, want))
            fprintf(stderr, "refusal: %s\n", lost->err);
        assert_non_null(strstr(lost->err, want));
        if (round == 0)
            printf("refused: %s\n", lost->err);
        for (int i = 0; i < MEMBERS; i++)
            assert_int_equal(wait_epoch(&w, i, 2), 2);
        world_down(&w);
    }
}

static int build_abort(void *ctx, const kvi_topology *cur, kvi_topology *next, char *err,
                       size_t err_size)
{
    (void)ctx;
    return kvi_topology_abort(next, cur, err, err_size);
}

static void a_change_needs_a_majority_of_the_acceptors(void **state)
{
    (void)state;
    world w;
    world_up(&w, 0);
    member_down(&w, 2);
    join_args a = {"n9", "127.0.0.1:1"};
    char err[256] = "";
    assert_int_equal(kvi_topo_service_change(w.m[0].topo, build_join, &a, NULL, err, sizeof err),
                     KV_OK);
    /* The join is in progress: the same change again is refused by the
     * record itself, before anything is sent. */
    assert_int_equal(kvi_topo_service_change(w.m[0].topo, build_join, &a, NULL, err, sizeof err),
                     KV_EBUSY);
    assert_non_null(strstr(err, "join of n9 is in progress"));
    /* One acceptor of three is not a majority. */
    member_down(&w, 1);
    err[0] = 0;
    assert_int_equal(kvi_topo_service_change(w.m[0].topo, build_abort, NULL, NULL, err,
                                             sizeof err), KV_EUNAVAILABLE);
    printf("with one of three: %s\n", err);
    assert_non_null(strstr(err, "needs 2"));
    assert_int_equal(kvi_topo_service_epoch(w.m[0].topo), 2);
    world_down(&w);
}

static void the_record_and_the_promises_survive_a_restart(void **state)
{
    (void)state;
    world w;
    world_up(&w, 1);
    join_args a = {"n9", "127.0.0.1:1"};
    char err[256] = "";
    assert_int_equal(kvi_topo_service_change(w.m[0].topo, build_join, &a, NULL, err, sizeof err),
                     KV_OK);
    for (int i = 0; i < MEMBERS; i++)
        assert_int_equal(wait_epoch(&w, i, 2), 2);
    /* A promise for epoch 3 to a ballot at time 5000 ... */
    kvi_topology two;
    kvi_topology_init(&two);
    assert_int_equal(kvi_topo_service_record(w.m[1].topo, &two), KV_OK);
    kvi_tpx_msg m;
    kvi_tpx_msg_init(&m);
    m.kind = KVI_TPX_PREPARE;
    m.ballot.time_us = 5000;
    snprintf(m.ballot.node, sizeof m.ballot.node, "test");
    assert_int_equal(kvi_topology_copy(&m.base, &two), KV_OK);
    kvi_buf body = {0}, answer = {0};
    kvi_tpx_msg_encode(&body, &m);
    assert_int_equal(kvi_topo_service_handle(w.m[1].topo, body.data, body.len, &answer), KV_OK);
    kvi_tpx_answer a1;
    assert_int_equal(kvi_tpx_answer_decode(&a1, answer.data, answer.len), KV_OK);
    assert_int_equal(a1.verdict, KVI_TPX_GRANTED);
    kvi_tpx_answer_free(&a1);
    /* ... restarted on the same store: epoch 2 at once, and the promise
     * kept: a prepare at time 4000 is refused. */
    member_down(&w, 1);
    kvi_store_close(w.m[1].store);
    w.m[1].store = NULL;
    member_up(&w, 1);
    assert_int_equal(kvi_topo_service_epoch(w.m[1].topo), 2);
    m.ballot.time_us = 4000;
    kvi_buf_reset(&body);
    kvi_buf_reset(&answer);
    kvi_tpx_msg_encode(&body, &m);
    assert_int_equal(kvi_topo_service_handle(w.m[1].topo, body.data, body.len, &answer), KV_OK);
    assert_int_equal(kvi_tpx_answer_decode(&a1, answer.data, answer.len), KV_OK);
    assert_int_equal(a1.verdict, KVI_TPX_REFUSED);
    assert_int_equal(a1.promised.time_us, 5000);
    kvi_tpx_answer_free(&a1);
    kvi_buf_free(&body);
    kvi_buf_free(&answer);
    kvi_tpx_msg_free(&m);
    kvi_topology_free(&two);
    /* The next change goes in over that promise. */
    assert_int_equal(kvi_topo_service_change(w.m[2].topo, build_abort, NULL, NULL, err,
                                             sizeof err), KV_OK);
    for (int i = 0; i < MEMBERS; i++)
        assert_int_equal(wait_epoch(&w, i, 3), 3);
    kvi_topology t;
    kvi_topology_init(&t);
    assert_int_equal(kvi_topo_service_record(w.m[1].topo, &t), KV_OK);
    assert_null(kvi_topology_find(&t, "n9")); /* the join was aborted */
    assert_int_equal(t.op, KVI_TOPO_OP_NONE);
    kvi_topology_free(&t);
    world_down(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_change_from_any_member_reaches_them_all),
        cmocka_unit_test(two_changes_at_once_one_wins_the_other_is_refused),
        cmocka_unit_test(a_change_needs_a_majority_of_the_acceptors),
        cmocka_unit_test(the_record_and_the_promises_survive_a_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
