/* kvd_process.h - starting and stopping the kvd processes the integration
 * tests drive: only the pids they started, each stop bounded in time. */
#ifndef KV_TEST_KVD_PROCESS_H
#define KV_TEST_KVD_PROCESS_H

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "integration/loopback.h"

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

#endif
