/* kill -9 of a writing process loses no acknowledged write, under every
 * sync policy (a process crash leaves the OS page cache intact; only
 * KV_SYNC_ALWAYS also survives a power loss, which a test cannot cause). */
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "api/fixture.h"

#define ACKS_BEFORE_KILL 300
#define MAX_WRITES 1000000

static void make_entry(unsigned i, char *key, size_t *key_len, char *value, size_t *value_len)
{
    *key_len = (size_t)snprintf(key, 32, "key-%08u", i);
    *value_len = (size_t)snprintf(value, 64, "value-%08u-payload", i);
}

/* The child: write until killed, acknowledging each successful write (its
 * index) on the pipe only after kv_put or kv_batch_execute returned KV_OK. */
static void child_writer(const char *dir, kv_sync_policy sync, int ack_fd)
{
    kv_open_options o = KV_OPEN_OPTIONS_INIT;
    o.sync = sync;
    kv *db;
    if (kv_open(&db, dir, &o) != KV_OK)
        _exit(3);
    for (unsigned i = 0; i < MAX_WRITES; i += 2) {
        char key[32], value[64], key2[32], value2[64];
        size_t kl, vl, kl2, vl2;
        make_entry(i, key, &kl, value, &vl);
        make_entry(i + 1, key2, &kl2, value2, &vl2);
        /* Alternate single puts and two-put batches. */
        if (i % 4 == 0) {
            if (kv_put(NULL, db, key, kl, value, vl, NULL) != KV_OK ||
                kv_put(NULL, db, key2, kl2, value2, vl2, NULL) != KV_OK)
                _exit(4);
        } else {
            kv_batch *b;
            if (kv_batch_new(&b) != KV_OK)
                _exit(5);
            kv_batch_put(b, key, kl, value, vl, 0);
            kv_batch_put(b, key2, kl2, value2, vl2, 0);
            if (kv_batch_execute(db, b, NULL, NULL) != KV_OK)
                _exit(6);
            kv_batch_free(b);
        }
        unsigned acked = i + 2; /* entries 0..acked-1 are acknowledged */
        if (write(ack_fd, &acked, sizeof acked) != sizeof acked)
            _exit(7);
    }
    _exit(0);
}

static void crash_and_check(kv_sync_policy sync)
{
    char *dir = test_tempdir();
    assert_non_null(dir);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        child_writer(dir, sync, fds[1]);
    }
    close(fds[1]);

    unsigned acked = 0, msg;
    struct pollfd pfd = {fds[0], POLLIN, 0};
    /* Bounded wait: a stuck child fails the test instead of hanging it. */
    while (acked < ACKS_BEFORE_KILL && poll(&pfd, 1, 30000) > 0 &&
           read(fds[0], &msg, sizeof msg) == sizeof msg)
        acked = msg;
    assert_true(acked >= ACKS_BEFORE_KILL);
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* Acknowledgements still in the pipe were acknowledged too. */
    while (read(fds[0], &msg, sizeof msg) == sizeof msg)
        acked = msg;
    close(fds[0]);

    kv *db;
    assert_int_equal(kv_open(&db, dir, NULL), KV_OK);
    unsigned lost = 0;
    for (unsigned i = 0; i < acked; i++) {
        char key[32], value[64];
        size_t kl, vl;
        make_entry(i, key, &kl, value, &vl);
        kv_value *val;
        if (kv_get(&val, db, key, kl, NULL) != KV_OK) {
            lost++;
            continue;
        }
        size_t len;
        const void *data = kv_value_data(val, &len);
        if (len != vl || memcmp(data, value, vl) != 0)
            lost++;
        kv_value_free(val);
    }
    print_message("sync policy %d: %u acknowledged writes, %u lost\n", (int)sync, acked, lost);
    assert_int_equal(lost, 0);
    kv_close(db);
    test_rmtree(dir);
}

static void kill9_with_sync_always(void **state) { (void)state; crash_and_check(KV_SYNC_ALWAYS); }
static void kill9_with_sync_periodic(void **state) { (void)state; crash_and_check(KV_SYNC_PERIODIC); }
static void kill9_with_sync_none(void **state) { (void)state; crash_and_check(KV_SYNC_NONE); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kill9_with_sync_always),
        cmocka_unit_test(kill9_with_sync_periodic),
        cmocka_unit_test(kill9_with_sync_none),
    };
    return cmocka_run_group_tests_name("api.crash", tests, NULL, NULL);
}
