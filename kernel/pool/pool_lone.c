/* pool_lone.c -- a lone task sent by the thread that submits it, and its
 * result read by the thread that waits on it: no dispatcher on its way.
 *
 * Sending.  A submit's task normally waits for the dispatcher: an eventfd
 * write, the dispatcher's wake-up, its turn, its write to the worker.  When
 * the dispatcher sleeps (it holds the turn lock at all other times) and the
 * core says a worker idles (sched_lone_ready), the submitting thread takes
 * the turn lock and does that turn's part itself: hands the inbox to the
 * core, deals, writes.  Whatever needs the dispatcher afterwards - bytes the
 * socket did not take, tasks still queued, a rebalancing timer, a worker
 * started - makes the caller wake it as before.
 *
 * Collecting.  A thread in pool_next_one for a task its worker runs alone
 * borrows that worker's socket: under the turn lock it takes the socket out
 * of the dispatcher's epoll set, then sleeps in its own poll of the socket
 * and the worker's pidfd, and reads and handles what comes as the
 * dispatcher would - so the result wakes this thread alone, not the
 * dispatcher and then this thread.  The loan lasts one call: every way out
 * gives the socket back, and the dispatcher's set then reports at once
 * whatever came meanwhile.  The dispatcher skips a lent socket's events
 * (ones from before the loan); when it closes the socket (the worker died,
 * the pool ends) the loan ends with it, and the borrower, which looks again
 * under the lock after each wake-up, waits on the results queue instead.
 *
 * Ordering: every read and write of a worker's link happens under the turn
 * lock, so the link's queues keep their order whoever handles them.  A
 * worker that died meanwhile fails a write (MSG_NOSIGNAL: no SIGPIPE),
 * which the core treats as for the dispatcher's own sends; its pidfd wakes
 * the dispatcher (and a borrower), which accounts the death.  Signals: the
 * calling thread holds no lock across anything that waits, and an
 * interrupted poll returns to Python at once, for its handler. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>

#include "pool_int.h"
#include "spin.h"

/* Under turn: bytes queued that no write has taken yet. */
static int any_link_pending(pool *p)
{
    for (int i = 0; i < p->core.n_slots; i++) {
        if (link_pending(&p->slots[i].conn)) {
            return 1;
        }
    }
    return 0;
}

/* Under turn: the end of a turn run outside the dispatcher - deal what
 * waits, write it, publish.  1 when nothing is left for the dispatcher. */
static int turn_tail(pool *p)
{
    pool_take_commands(p, 0);
    int balance = pool_note_queued(p, sched_deal(&p->core, pool_now_us()));
    pool_flush_links(p);
    pool_publish_results(p);
    return balance < 0 && p->queued == 0 && !any_link_pending(p);
}

int pool_lone_turn(pool *p)
{
    if (pthread_mutex_trylock(&p->turn) != 0) {
        return 0; /* the dispatcher is in a turn: it takes the task next */
    }
    int done = !p->turns_over && sched_lone_ready(&p->core) && turn_tail(p);
    pthread_mutex_unlock(&p->turn);
    return done;
}

/* ------------------------------------------------- collecting a result */

/* A poll of a lent socket comes back this often at most, to look again
 * under the turn lock whether the loan still stands. */
#define LENT_POLL_MAX_MS 50
/* How long the borrower spins before it sleeps on the socket (spin.h): a
 * small task's result comes back within about 30 us from a worker that
 * spins for it. */
#define LENT_SPIN_US 100

/* Under turn: the slot whose worker runs task id and nothing else, its
 * socket and pidfd watched and nothing of it left unread or unwritten;
 * -1 when there is none.  (Without a pidfd, a worker's death could go
 * unseen by the socket's reader: such a socket is not lent.) */
static int lendable(pool *p, uint64_t id)
{
    if (p->turns_over) {
        return -1;
    }
    for (int i = 0; i < p->core.n_slots; i++) {
        const sched_worker *w = &p->core.workers[i];
        const slot *sl = &p->slots[i];
        if (w->pid == 0 || w->sent.n != 1 || w->sent.head->id != id) {
            continue;
        }
        int ok = sl->armed && sl->pid_armed && !sl->backlog && sl->lent_to == 0 &&
                 !link_pending(&sl->conn) && !w->dead_since && !w->killed;
        return ok ? i : -1;
    }
    return -1;
}

/* Under turn: slot i's socket goes back into the dispatcher's set (which
 * reports at once what came meanwhile); messages already buffered but not
 * handled need it awake, as no socket will say so. */
static void give_back(pool *p, int i)
{
    p->slots[i].lent_to = 0;
    pool_watch_conn(p, i);
    if (p->slots[i].backlog) {
        pool_wake(p);
    }
}

/* Under turn: what a wake-up of the socket's reader found.  Its worker
 * exited: the dispatcher reaps it, with what it wrote (the loan ends).
 * Messages: handled as the dispatcher would; and since a result frees the
 * worker, what was submitted meanwhile is dealt - here only when the core
 * is as a lone send finds it (sched_lone_ready: every worker up, nothing
 * queued, no failed starts), else by the dispatcher, whose turn alone
 * starts workers (a worker's parent-death signal follows the thread that
 * forked it) and retries failed starts before it fails tasks. */
static void read_lent(pool *p, int i, const struct pollfd *fds)
{
    slot *sl = &p->slots[i];
    if (fds[1].revents) {
        give_back(p, i);
    } else if (fds[0].revents || sl->backlog) {
        sl->backlog = pool_read_worker(p, i, MESSAGES_PER_TURN);
        if (!(sched_lone_ready(&p->core) && turn_tail(p))) {
            pool_publish_results(p);
            pool_wake(p);
        }
    }
}

/* Milliseconds left until deadline_us (monotonic; -1: none, then -1). */
static int left_ms(long long deadline_us)
{
    if (deadline_us < 0) {
        return -1;
    }
    long long left = (deadline_us - pool_now_us() + 999) / 1000;
    return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

/* Under turn: lends the socket of the worker running id alone to the
 * calling thread; its slot, or -1. */
static int lend(pool *p, uint64_t id)
{
    int i = lendable(p, id);
    if (i >= 0) {
        pool_unwatch_conn(p, i);
        p->slots[i].lent_to = id;
    }
    return i;
}

int pool_lone_collect(pool *p, uint64_t id, pool_result *out, int *timeout_ms)
{
    long long deadline = *timeout_ms < 0 ? -1 : pool_now_us() + 1000LL * *timeout_ms;
    int got = 0, err = 0;
    long spin = LENT_SPIN_US;
    pthread_mutex_lock(&p->turn);
    int i = lend(p, id);
    while (i >= 0) {
        slot *sl = &p->slots[i];
        int left = left_ms(deadline);
        int wait = sl->backlog                           ? 0
                   : left < 0 || left > LENT_POLL_MAX_MS ? LENT_POLL_MAX_MS
                                                         : left;
        struct pollfd fds[2] = {{.fd = sl->conn.fd, .events = POLLIN},
                                {.fd = sl->proc.pidfd, .events = POLLIN}};
        pthread_mutex_unlock(&p->turn);
        int polled = spin_poll(fds, 2, wait, spin);
        spin = 0;
        err = polled < 0 ? errno : 0;
        pthread_mutex_lock(&p->turn);
        if (sl->lent_to == id && (polled > 0 || sl->backlog)) {
            read_lent(p, i, fds);
            got = pool_take_one(p, id, out);
        }
        if (sl->lent_to != id) {
            break; /* closed, or its worker exited: the queue's now */
        }
        if (got || err || left_ms(deadline) == 0) {
            give_back(p, i);
            break;
        }
    }
    pthread_mutex_unlock(&p->turn);
    /* An interrupt returns to Python at once, for its handler. */
    *timeout_ms = err == EINTR ? 0 : left_ms(deadline);
    return got ? 1 : -1;
}
