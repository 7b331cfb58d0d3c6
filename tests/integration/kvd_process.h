/* kvd_process.h - starting and stopping the kvd processes the integration
 * tests drive: only the pids they started, each stop bounded in time. */
#ifndef KV_TEST_KVD_PROCESS_H
#define KV_TEST_KVD_PROCESS_H

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "integration/loopback.h"
#include <kv/kv.h>

/* The kvd to run: $KVD (set by ctest), else "kvd". */
static inline const char *kvd_path(void)
{
    const char *kvd = getenv("KVD");
    return kvd && *kvd ? kvd : "kvd";
}

/* Starts argv (argv[0] the program) with its stderr appended to log_path;
 * returns the pid, or -1. */
static inline pid_t kvd_spawn(const char *const *argv, const char *log_path)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Sends sig to pid and reaps it. Returns 1 when it exited within 15 s;
 * otherwise kills it with SIGKILL, reaps it and returns 0 (a hang in
 * shutdown, for the caller to report). */
static inline int kvd_stop(pid_t pid, int sig)
{
    kill(pid, sig);
    int exited = 0;
    for (int t = 0; t < 1500 && !exited; t++) {
        exited = waitpid(pid, NULL, WNOHANG) == pid;
        if (!exited)
            sleep_ms(10);
    }
    if (!exited) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    return exited;
}

/* Waits (bounded: about 30 s) until the node at endpoint describes a
 * complete cluster, asking through a client with options co (a token, a
 * CA). Returns 1 when it did, 0 when it never did. */
static inline int kvd_wait_complete(const char *endpoint, const kv_client_options *co)
{
    const char *eps[] = {endpoint};
    kv *db = NULL;
    if (kv_client_open(&db, eps, 1, co) != KV_OK)
        return 0;
    int complete = 0;
    for (int t = 0; t < 300 && !complete; t++) {
        char *json = NULL;
        if (kv_cluster_describe(&json, db) == KV_OK)
            complete = strstr(json, "\"complete\":true") != NULL;
        kv_string_free(json);
        if (!complete)
            sleep_ms(100);
    }
    kv_close(db);
    return complete;
}

#endif
