/*
 * net/loop.c - the event loop (see loop.h).
 *
 * Inside: an epoll set holding the callers' descriptors, an eventfd that
 * wakes the loop when a task is posted, and a timerfd armed at the earliest
 * timer, so that the epoll descriptor alone tells an outside poller when to
 * run an iteration. Timers sit in a binary min-heap (slot 1 is the
 * earliest).
 *
 * Posting costs a mutex and, only when the loop may be asleep, one write to
 * the eventfd: the loop says it is about to sleep before it looks at the
 * queue a last time, and a poster looks at that flag after queueing, so
 * one of the two always sees the other.
 */
#define _GNU_SOURCE
#include "net/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <kv/kv.h>
#include "util/error.h"
#include "util/clock.h"

#define MAX_EVENTS 256

/* Markers in epoll_event.data.ptr for the loop's own descriptors. */
static char wake_marker, timer_marker;

struct kvi_loop {
    int epfd;
    int wakefd;
    int timerfd;
    uint64_t timer_armed_ms; /* what timerfd is set to; 0 = disarmed */

    /* Events of the running iteration; io_del clears its entries. */
    struct epoll_event events[MAX_EVENTS];
    int n_events;

    kvi_loop_timer **heap; /* heap[1..n_timers] */
    size_t n_timers, heap_cap;

    pthread_mutex_t post_lock;
    kvi_loop_task *posted, *posted_tail;
    atomic_int sleeping;

    kvi_loop_deferred *deferred;
    kvi_loop_deferred *late; /* run once deferred is empty */

    atomic_int stop;
    /* The thread inside run_once (its pthread_t), or 0. */
    atomic_uintptr_t runner;
};

uint64_t kvi_loop_now_ms(void)
{
    return kvi_monotonic_ms();
}

/* ------------------------------------------------------------- lifecycle */

int kvi_loop_new(kvi_loop **out)
{
    *out = NULL;
    kvi_loop *l = calloc(1, sizeof *l);
    if (!l)
        return kvi_error(KV_ENOMEM, "out of memory making an event loop");
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    l->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event we = {.events = EPOLLIN, .data.ptr = &wake_marker};
    struct epoll_event te = {.events = EPOLLIN, .data.ptr = &timer_marker};
    if (l->epfd < 0 || l->wakefd < 0 || l->timerfd < 0 ||
        epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &we) != 0 ||
        epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->timerfd, &te) != 0) {
        int err = errno;
        if (l->epfd >= 0)
            close(l->epfd);
        if (l->wakefd >= 0)
            close(l->wakefd);
        if (l->timerfd >= 0)
            close(l->timerfd);
        free(l);
        return kvi_error(KV_EIO, "cannot make an event loop: %s", strerror(err));
    }
    pthread_mutex_init(&l->post_lock, NULL);
    *out = l;
    return KV_OK;
}

void kvi_loop_free(kvi_loop *l)
{
    if (!l)
        return;
    close(l->epfd);
    close(l->wakefd);
    close(l->timerfd);
    free(l->heap);
    pthread_mutex_destroy(&l->post_lock);
    free(l);
}

int kvi_loop_fd(const kvi_loop *l)
{
    return l->epfd;
}

int kvi_loop_on_thread(const kvi_loop *l)
{
    return atomic_load(&l->runner) == (uintptr_t)pthread_self();
}

void kvi_loop_stop(kvi_loop *l)
{
    atomic_store(&l->stop, 1);
    uint64_t one = 1;
    ssize_t w = write(l->wakefd, &one, sizeof one);
    (void)w; /* a full counter still wakes the loop */
}

/* ----------------------------------------------------------- descriptors */

static uint32_t epoll_bits(unsigned want)
{
    /* EPOLLEXCLUSIVE takes no other flag but IN, OUT and ET. */
    if (want & KVI_LOOP_EXCLUSIVE)
        return EPOLLEXCLUSIVE | (want & KVI_LOOP_READ ? EPOLLIN : 0u) |
               (want & KVI_LOOP_WRITE ? EPOLLOUT : 0u);
    return (want & KVI_LOOP_READ ? EPOLLIN | EPOLLRDHUP : 0u) | (want & KVI_LOOP_WRITE ? EPOLLOUT : 0u);
}

int kvi_loop_io_add(kvi_loop *l, kvi_loop_io *io, int fd, unsigned want, kvi_loop_io_fn fn,
                    void *ctx)
{
    io->fd = fd;
    io->want = want;
    io->fn = fn;
    io->ctx = ctx;
    struct epoll_event ev = {.events = epoll_bits(want), .data.ptr = io};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        return kvi_error(KV_EIO, "cannot watch a socket: %s", strerror(errno));
    return KV_OK;
}

int kvi_loop_io_set(kvi_loop *l, kvi_loop_io *io, unsigned want)
{
    if (io->want == want)
        return KV_OK;
    io->want = want;
    struct epoll_event ev = {.events = epoll_bits(want), .data.ptr = io};
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev) != 0)
        return kvi_error(KV_EIO, "cannot watch a socket: %s", strerror(errno));
    return KV_OK;
}

void kvi_loop_io_del(kvi_loop *l, kvi_loop_io *io)
{
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    for (int i = 0; i < l->n_events; i++)
        if (l->events[i].data.ptr == io)
            l->events[i].data.ptr = NULL;
}

/* ---------------------------------------------------------------- timers */

void kvi_loop_timer_init(kvi_loop_timer *t, kvi_loop_fn fn, void *ctx)
{
    memset(t, 0, sizeof *t);
    t->fn = fn;
    t->ctx = ctx;
}

static void heap_put(kvi_loop *l, size_t slot, kvi_loop_timer *t)
{
    l->heap[slot] = t;
    t->slot = slot;
}

static void sift_up(kvi_loop *l, size_t slot)
{
    kvi_loop_timer *t = l->heap[slot];
    while (slot > 1 && l->heap[slot / 2]->at_ms > t->at_ms) {
        heap_put(l, slot, l->heap[slot / 2]);
        slot /= 2;
    }
    heap_put(l, slot, t);
}

static void sift_down(kvi_loop *l, size_t slot)
{
    kvi_loop_timer *t = l->heap[slot];
    for (;;) {
        size_t child = slot * 2;
        if (child > l->n_timers)
            break;
        if (child + 1 <= l->n_timers && l->heap[child + 1]->at_ms < l->heap[child]->at_ms)
            child++;
        if (l->heap[child]->at_ms >= t->at_ms)
            break;
        heap_put(l, slot, l->heap[child]);
        slot = child;
    }
    heap_put(l, slot, t);
}

void kvi_loop_timer_cancel(kvi_loop *l, kvi_loop_timer *t)
{
    size_t slot = t->slot;
    if (!slot)
        return;
    t->slot = 0;
    kvi_loop_timer *last = l->heap[l->n_timers--];
    if (last == t)
        return;
    heap_put(l, slot, last);
    sift_up(l, slot);
    sift_down(l, last->slot);
}

int kvi_loop_timer_set(kvi_loop *l, kvi_loop_timer *t, uint64_t at_ms)
{
    kvi_loop_timer_cancel(l, t);
    if (l->n_timers + 2 > l->heap_cap) {
        size_t cap = l->heap_cap ? l->heap_cap * 2 : 16;
        kvi_loop_timer **h = realloc(l->heap, cap * sizeof *h);
        if (!h)
            return kvi_error(KV_ENOMEM, "out of memory arming a timer");
        l->heap = h;
        l->heap_cap = cap;
    }
    t->at_ms = at_ms;
    heap_put(l, ++l->n_timers, t);
    sift_up(l, l->n_timers);
    return KV_OK;
}

/* Runs the timers due by now; returns how many ran. */
static int run_timers(kvi_loop *l)
{
    int ran = 0;
    uint64_t now = kvi_loop_now_ms();
    while (l->n_timers && l->heap[1]->at_ms <= now) {
        kvi_loop_timer *t = l->heap[1];
        kvi_loop_timer_cancel(l, t);
        t->fn(t->ctx);
        ran++;
    }
    return ran;
}

/* Keeps the timerfd at the earliest timer, so an outside poller of the
 * epoll descriptor wakes for it. */
static void arm_timerfd(kvi_loop *l)
{
    uint64_t at = l->n_timers ? l->heap[1]->at_ms : 0;
    if (at == l->timer_armed_ms)
        return;
    struct itimerspec its = {{0, 0}, {0, 0}};
    if (at) {
        its.it_value.tv_sec = (time_t)(at / 1000u);
        its.it_value.tv_nsec = (long)(at % 1000u) * 1000000L;
    }
    if (timerfd_settime(l->timerfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
        l->timer_armed_ms = at;
}

/* ------------------------------------------------------------ other work */

void kvi_loop_post(kvi_loop *l, kvi_loop_task *t, kvi_loop_fn fn, void *ctx)
{
    t->fn = fn;
    t->ctx = ctx;
    t->next = NULL;
    pthread_mutex_lock(&l->post_lock);
    if (l->posted_tail)
        l->posted_tail->next = t;
    else
        l->posted = t;
    l->posted_tail = t;
    pthread_mutex_unlock(&l->post_lock);
    if (atomic_load(&l->sleeping)) {
        uint64_t one = 1;
        ssize_t w = write(l->wakefd, &one, sizeof one);
        (void)w;
    }
}

static int run_posted(kvi_loop *l)
{
    pthread_mutex_lock(&l->post_lock);
    kvi_loop_task *t = l->posted;
    l->posted = l->posted_tail = NULL;
    pthread_mutex_unlock(&l->post_lock);
    int ran = 0;
    while (t) {
        kvi_loop_task *next = t->next; /* fn may free t */
        t->fn(t->ctx);
        t = next;
        ran++;
    }
    return ran;
}

void kvi_loop_deferred_init(kvi_loop_deferred *d, kvi_loop_fn fn, void *ctx)
{
    memset(d, 0, sizeof *d);
    d->fn = fn;
    d->ctx = ctx;
}

void kvi_loop_defer(kvi_loop *l, kvi_loop_deferred *d)
{
    if (d->queued)
        return;
    d->queued = 1;
    d->next = l->deferred;
    l->deferred = d;
}

void kvi_loop_defer_late(kvi_loop *l, kvi_loop_deferred *d)
{
    if (d->queued)
        return;
    d->queued = 1;
    d->next = l->late;
    l->late = d;
}

static int unlink_deferred(kvi_loop_deferred **list, kvi_loop_deferred *d)
{
    for (kvi_loop_deferred **pp = list; *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            return 1;
        }
    return 0;
}

void kvi_loop_undefer(kvi_loop *l, kvi_loop_deferred *d)
{
    if (!d->queued)
        return;
    if (!unlink_deferred(&l->deferred, d))
        unlink_deferred(&l->late, d);
    d->queued = 0;
}

/* Runs deferred work until none is left (work may defer more); late work
 * only once no other is left, and other work it defers before the next. */
static int run_deferred(kvi_loop *l)
{
    int ran = 0;
    for (;;) {
        kvi_loop_deferred *d = l->deferred;
        if (d) {
            l->deferred = d->next;
        } else if ((d = l->late) != NULL) {
            l->late = d->next;
        } else {
            break;
        }
        d->queued = 0;
        d->fn(d->ctx);
        ran++;
    }
    return ran;
}

/* --------------------------------------------------------------- running */

static int wait_ms(kvi_loop *l, int timeout_ms)
{
    if (!l->n_timers)
        return timeout_ms;
    uint64_t now = kvi_loop_now_ms(), at = l->heap[1]->at_ms;
    uint64_t until = at > now ? at - now : 0;
    if (timeout_ms >= 0 && (uint64_t)timeout_ms < until)
        return timeout_ms;
    return until > 60000u ? 60000 : (int)until;
}

int kvi_loop_run_once(kvi_loop *l, int timeout_ms)
{
    atomic_store(&l->runner, (uintptr_t)pthread_self());
    int ran = run_posted(l);
    ran += run_deferred(l);

    /* About to sleep: say so, then look at the queue a last time. */
    atomic_store(&l->sleeping, 1);
    pthread_mutex_lock(&l->post_lock);
    int have_posts = l->posted != NULL;
    pthread_mutex_unlock(&l->post_lock);
    int wait = have_posts || ran || atomic_load(&l->stop) ? 0 : wait_ms(l, timeout_ms);
    arm_timerfd(l);
    int n = epoll_wait(l->epfd, l->events, MAX_EVENTS, wait);
    atomic_store(&l->sleeping, 0);
    if (n < 0) {
        n = 0;
        if (errno != EINTR) {
            atomic_store(&l->runner, 0);
            return kvi_error(KV_EIO, "epoll_wait: %s", strerror(errno));
        }
    }
    l->n_events = n;
    for (int i = 0; i < n; i++) {
        void *p = l->events[i].data.ptr;
        uint32_t ev = l->events[i].events;
        if (p == &wake_marker || p == &timer_marker) {
            uint64_t count;
            ssize_t r = read(p == &wake_marker ? l->wakefd : l->timerfd, &count, sizeof count);
            (void)r;
            if (p == &timer_marker)
                l->timer_armed_ms = 0; /* it fired: re-arm from the heap */
            continue;
        }
        if (!p)
            continue; /* deleted by an earlier callback of this iteration */
        kvi_loop_io *io = p;
        unsigned events = (ev & (EPOLLIN | EPOLLRDHUP) ? KVI_LOOP_READ : 0u) |
                          (ev & EPOLLOUT ? KVI_LOOP_WRITE : 0u) |
                          (ev & (EPOLLERR | EPOLLHUP) ? KVI_LOOP_ERROR : 0u);
        io->fn(io->ctx, events);
        ran++;
    }
    l->n_events = 0;
    ran += run_timers(l);
    ran += run_posted(l);
    ran += run_deferred(l);
    atomic_store(&l->runner, 0);
    return ran;
}

void kvi_loop_run(kvi_loop *l)
{
    while (!atomic_load(&l->stop))
        if (kvi_loop_run_once(l, -1) < 0)
            break;
    atomic_store(&l->stop, 0);
}
