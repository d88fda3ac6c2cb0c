/* pool_lone.c -- a lone task dealt by the thread that submits it.
 *
 * A submit's task normally waits for the dispatcher: an eventfd write, the
 * dispatcher's wake-up, its turn, its write to the worker.  When the
 * dispatcher sleeps in its poll (it holds the turn lock at all other
 * times) and the core says a worker idles (sched_lone_ready), the
 * submitting thread takes the turn lock and does that turn's part itself:
 * hands the inbox to the core, deals, writes.  Whatever needs the
 * dispatcher afterwards - bytes the socket did not take, tasks still
 * queued, a rebalancing timer, a worker started - makes the caller wake it
 * as before.  The dispatcher's poll stays valid meanwhile: the same
 * workers and sockets, and it reads the answer when it comes.
 *
 * Ordering: every write to a worker's link happens under the turn lock, so
 * the link's queue keeps its order whoever writes.  A worker that died
 * meanwhile fails the write (MSG_NOSIGNAL: no SIGPIPE), which the core
 * treats as for the dispatcher's own sends; its pidfd wakes the
 * dispatcher, which accounts the death.  Signals: the calling thread holds
 * no lock across anything that waits, so SIGINT lands as usual. */
#include <pthread.h>

#include "pool_int.h"

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

int pool_lone_turn(pool *p)
{
    if (pthread_mutex_trylock(&p->turn) != 0) {
        return 0; /* the dispatcher is in a turn: it takes the task next */
    }
    int done = 0;
    if (!p->turns_over && sched_lone_ready(&p->core)) {
        pool_take_commands(p, 0);
        int balance = pool_note_queued(p, sched_deal(&p->core, pool_now_us()));
        pool_flush_links(p);
        pool_publish_results(p);
        done = balance < 0 && p->queued == 0 && !any_link_pending(p);
    }
    pthread_mutex_unlock(&p->turn);
    return done;
}
