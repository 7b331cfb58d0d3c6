/* kvd_process.h - starting and stopping the kvd processes the integration
 * tests drive: only the pids they started, each stop bounded in time. */
#ifndef KV_TEST_KVD_PROCESS_H
#define KV_TEST_KVD_PROCESS_H

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
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

/* Pauses pid with SIGSTOP and waits (bounded: 10 s) until every thread of
 * it is stopped: kill returns as soon as the signal is queued, and a
 * thread running on another CPU of a busy machine may still answer a
 * request sent right after. 1 once all are stopped, 0 if not in time. */
static inline int kvd_pause(pid_t pid)
{
    if (kill(pid, SIGSTOP) != 0)
        return 0;
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    for (int t = 0; t < 1000; t++) {
        DIR *d = opendir(dir);
        if (!d)
            return 0;
        int running = 0, seen = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL && !running) {
            if (e->d_name[0] == '.')
                continue;
            char path[384], buf[512];
            snprintf(path, sizeof path, "%s/%s/stat", dir, e->d_name);
            FILE *f = fopen(path, "r");
            if (!f)
                continue; /* the thread ended */
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[n] = 0;
            /* "tid (comm) S ...": the state follows the last ')'. */
            const char *close = strrchr(buf, ')');
            char state = close && close[1] == ' ' ? close[2] : '?';
            seen++;
            running = state != 'T' && state != 't';
        }
        closedir(d);
        if (seen && !running)
            return 1;
        sleep_ms(10);
    }
    return 0;
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
