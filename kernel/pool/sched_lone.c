/* sched_lone.c -- whether the core can take a lone task outside the
 * dispatcher's turn (pool_lone.c): a ready worker idles, nothing waits
 * before the task, and dealing it starts, stops or recalls nothing, so the
 * dispatcher's poll (armed on the same workers) needs no new turn. */
#include "sched.h"

int sched_lone_ready(const sched *s)
{
    if (s->stopping || s->failed_starts > 0 || s->pending.n > 0 || s->recalled.n > 0) {
        return 0;
    }
    int live = 0, idle = 0;
    for (int i = 0; i < s->n_slots; i++) {
        const sched_worker *w = &s->workers[i];
        if (w->pid == 0) {
            continue;
        }
        if (w->dead_since || w->killed || w->retiring) {
            return 0; /* a worker to replace or to stop: the dispatcher's work */
        }
        live++;
        idle += w->ready && w->sent.n == 0;
    }
    return idle > 0 && live == s->target;
}
