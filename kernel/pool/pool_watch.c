/* pool_watch.c -- what the dispatcher sleeps on: one epoll set holding its
 * wake-up eventfd, each worker's socket and each worker's pidfd.
 *
 * An epoll set rather than a poll array rebuilt each turn because another
 * thread must be able to take a socket out of it while the dispatcher
 * sleeps: a thread waiting on a lone task's result reads that worker's
 * socket itself (pool_lone.c), and with the socket still in the dispatcher's
 * set both threads would wake for the result - on two cores the second
 * wake-up costs what the first saved.  Changes to the set are made under
 * the turn lock, by whichever thread holds it; epoll_ctl is safe against a
 * concurrent epoll_wait, and takes effect for it at once.
 *
 * Every socket and pidfd leaves the set before it is closed (pool_close_conn,
 * pool_unwatch_pidfd): a number closed while still in the set could come
 * back as a new worker's, and the set would no longer say which. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "log.h"
#include "pool_int.h"

/* Tags of the set's events: the wake-up eventfd, or a slot's socket or
 * pidfd. */
#define WATCH_WAKE 0
#define WATCH_TAG(i, pidfd) (((uint64_t)(i) << 1 | (uint64_t)(pidfd)) + 1)
#define WATCH_SLOT(tag) ((int)(((tag)-1) >> 1))
#define WATCH_IS_PIDFD(tag) ((((tag)-1) & 1) != 0)

static int set_ctl(pool *p, int op, int fd, unsigned events, uint64_t tag)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};
    if (epoll_ctl(p->epfd, op, fd, &ev) < 0) {
        LOG_E("pool: epoll_ctl(%d) of fd %d: %s", op, fd, strerror(errno));
        return -1;
    }
    return 0;
}

int pool_watch_init(pool *p)
{
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p->epfd < 0) {
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WATCH_WAKE};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->wake_fd, &ev) < 0) {
        int e = errno;
        close(p->epfd);
        p->epfd = -1;
        errno = e;
        return -1;
    }
    return 0;
}

void pool_watch_conn(pool *p, int i)
{
    slot *sl = &p->slots[i];
    if (sl->conn.fd < 0 || sl->lent_to != 0) {
        return;
    }
    unsigned want = EPOLLIN | (link_pending(&sl->conn) ? EPOLLOUT : 0);
    if (want == sl->armed) {
        return;
    }
    if (set_ctl(p, sl->armed ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, sl->conn.fd, want,
                WATCH_TAG(i, 0)) == 0) {
        sl->armed = want;
    } else if (!sl->armed) {
        /* Unwatched, its messages would never be read (the set is full:
         * max_user_watches): it goes, and the core replaces it. */
        kill(p->core.workers[i].pid, SIGKILL);
    }
}

void pool_unwatch_conn(pool *p, int i)
{
    slot *sl = &p->slots[i];
    if (sl->armed) {
        set_ctl(p, EPOLL_CTL_DEL, sl->conn.fd, 0, 0);
        sl->armed = 0;
    }
}

void pool_watch_pidfd(pool *p, int i)
{
    slot *sl = &p->slots[i];
    if (sl->proc.pidfd >= 0 && !sl->pid_armed) {
        if (set_ctl(p, EPOLL_CTL_ADD, sl->proc.pidfd, EPOLLIN, WATCH_TAG(i, 1)) == 0) {
            sl->pid_armed = 1;
        } else {
            /* Reaped by polling waitpid instead, as when pidfd_open fails. */
            close(sl->proc.pidfd);
            sl->proc.pidfd = -1;
        }
    }
}

void pool_unwatch_pidfd(pool *p, int i)
{
    slot *sl = &p->slots[i];
    if (sl->pid_armed) {
        set_ctl(p, EPOLL_CTL_DEL, sl->proc.pidfd, 0, 0);
        sl->pid_armed = 0;
    }
}

void pool_close_conn(pool *p, int i)
{
    pool_unwatch_conn(p, i);
    p->slots[i].lent_to = 0; /* its reader sees the loan ended (pool_lone.c) */
    p->slots[i].backlog = 0;
    link_close(&p->slots[i].conn);
}

void pool_watch_rearm(pool *p)
{
    for (int i = 0; i < p->core.n_slots; i++) {
        slot *sl = &p->slots[i];
        if (sl->lent_to != 0 && link_pending(&sl->conn)) {
            /* Bytes for a lent socket wait for it to take more: only the
             * dispatcher watches for that, so the loan ends (its reader,
             * waking, waits on the results queue instead). */
            sl->lent_to = 0;
        }
        if (p->core.workers[i].pid != 0) {
            pool_watch_conn(p, i);
        }
    }
}

int pool_watch_wait(pool *p, pool_woke *w, int timeout_ms)
{
    struct epoll_event ev[1 + 2 * SCHED_MAX_WORKERS];
    int n = epoll_wait(p->epfd, ev, 1 + 2 * SCHED_MAX_WORKERS, timeout_ms);
    int e = errno;
    memset(w, 0, sizeof *w);
    for (int k = 0; k < n; k++) {
        uint64_t tag = ev[k].data.u64;
        if (tag == WATCH_WAKE) {
            w->commands = 1;
        } else if (WATCH_IS_PIDFD(tag)) {
            w->exited[WATCH_SLOT(tag)] = 1;
        } else if (ev[k].events & ~(unsigned)EPOLLOUT) {
            w->conn[WATCH_SLOT(tag)] = 1; /* to read: data, or its end */
        }
    }
    errno = e;
    return n;
}
