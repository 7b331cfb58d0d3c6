/* etcd_process.h - a real etcd (Debian's etcd-server, /usr/bin/etcd) on
 * loopback ports for the integration tests of kvd --metadata: start it,
 * kill it, start it again on the same data and ports, and read keys with
 * its JSON gateway. Include after cmocka.h and http_client.h. */
#ifndef KV_TEST_ETCD_PROCESS_H
#define KV_TEST_ETCD_PROCESS_H

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "integration/loopback.h"

typedef struct etcd_proc {
    pid_t pid;
    char *dir;          /* its data directory */
    char client[64];    /* 127.0.0.1:port */
    char peer[64];
    char log_path[600];
    char url[160];      /* etcd://client/prefix, for kvd --metadata */
} etcd_proc;

static inline const char *etcd_binary(void)
{
    const char *p = getenv("ETCD");
    return p && *p ? p : "/usr/bin/etcd";
}

/* 1 once etcd answers /health, within ~20 s. */
static inline int etcd_healthy(const etcd_proc *e)
{
    for (int t = 0; t < 200; t++) {
        body b;
        if (http_request(e->client, "GET", "/health", NULL, &b, 1000) == 200 &&
            strstr(b.data, "true"))
            return 1;
        if (waitpid(e->pid, NULL, WNOHANG) == e->pid)
            return 0; /* it exited */
        sleep_ms(100);
    }
    return 0;
}

/* Starts etcd on its ports and data directory (again, after a kill). */
static inline void etcd_run(etcd_proc *e)
{
    if (access(etcd_binary(), X_OK) != 0)
        fail_msg("no etcd at %s: install etcd-server (scripts/install-deps.sh does)",
                 etcd_binary());
    char client_url[96], peer_url[96], cluster[128];
    snprintf(client_url, sizeof client_url, "http://%s", e->client);
    snprintf(peer_url, sizeof peer_url, "http://%s", e->peer);
    snprintf(cluster, sizeof cluster, "default=%s", peer_url);
    const char *argv[] = {etcd_binary(), "--name", "default", "--data-dir", e->dir,
                          "--listen-client-urls", client_url, "--advertise-client-urls",
                          client_url, "--listen-peer-urls", peer_url,
                          "--initial-advertise-peer-urls", peer_url, "--initial-cluster",
                          cluster, NULL};
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(e->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    assert_true(pid > 0);
    e->pid = pid;
    if (!etcd_healthy(e)) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "tail -n 20 '%s' >&2", e->log_path);
        if (system(cmd) != 0)
            fprintf(stderr, "(no etcd log)\n");
        fail_msg("etcd did not become healthy on %s", e->client);
    }
}

/* A fresh etcd on free loopback ports; prefix names the keys' prefix in
 * e->url. */
static inline void etcd_start(etcd_proc *e, const char *prefix)
{
    memset(e, 0, sizeof *e);
    e->dir = test_tempdir();
    snprintf(e->client, sizeof e->client, "127.0.0.1:%d", free_port());
    snprintf(e->peer, sizeof e->peer, "127.0.0.1:%d", free_port());
    snprintf(e->log_path, sizeof e->log_path, "%s.etcd.log", e->dir);
    snprintf(e->url, sizeof e->url, "etcd://%s/%s", e->client, prefix);
    etcd_run(e);
}

/* Stops etcd with sig and reaps it (SIGKILL: a crash; its data stays). */
static inline void etcd_kill(etcd_proc *e, int sig)
{
    if (e->pid <= 0)
        return;
    kill(e->pid, sig);
    waitpid(e->pid, NULL, 0);
    e->pid = 0;
}

static inline void etcd_destroy(etcd_proc *e)
{
    etcd_kill(e, SIGKILL);
    if (!getenv("KV_TEST_KEEP_LOGS"))
        unlink(e->log_path);
    test_rmtree(e->dir);
    e->dir = NULL;
}

/* How many keys start with prefix (a full etcd key, "/p/members/"), by the
 * v3 JSON gateway's range with count_only; -1 when etcd does not answer. */
static inline long etcd_count(const etcd_proc *e, const char *prefix)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char end[256], k64[400], e64[400];
    size_t n = strlen(prefix);
    if (n == 0 || n >= sizeof end)
        return -1;
    memcpy(end, prefix, n + 1);
    end[n - 1]++; /* the range's end: the prefix with its last byte raised */
    const char *in[2] = {prefix, end};
    char *out[2] = {k64, e64};
    for (int w = 0; w < 2; w++) {
        const unsigned char *s = (const unsigned char *)in[w];
        size_t len = strlen(in[w]), o = 0;
        for (size_t i = 0; i < len; i += 3) {
            unsigned v = (unsigned)s[i] << 16 | (i + 1 < len ? (unsigned)s[i + 1] << 8 : 0) |
                         (i + 2 < len ? s[i + 2] : 0);
            out[w][o++] = b64[v >> 18 & 63];
            out[w][o++] = b64[v >> 12 & 63];
            out[w][o++] = i + 1 < len ? b64[v >> 6 & 63] : '=';
            out[w][o++] = i + 2 < len ? b64[v & 63] : '=';
        }
        out[w][o] = 0;
    }
    char json[1000];
    snprintf(json, sizeof json, "{\"key\":\"%s\",\"range_end\":\"%s\",\"count_only\":true}",
             k64, e64);
    body b;
    if (http_request(e->client, "POST", "/v3/kv/range", json, &b, 3000) != 200)
        return -1;
    const char *count = strstr(b.data, "\"count\":\"");
    return count ? strtol(count + strlen("\"count\":\""), NULL, 10) : 0; /* absent: 0 */
}

#endif
