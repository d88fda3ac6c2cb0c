/* sched_query.c -- what other parts ask of the core, which changes
 * nothing: whether it can take a lone task outside the dispatcher's turn
 * (pool_lone.c), a worker's slot, whether any worker lives, the pids. */
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

int sched_slot_of(const sched *s, int pid)
{
    for (int i = 0; pid != 0 && i < s->n_slots; i++) {
        if (s->workers[i].pid == pid) {
            return i;
        }
    }
    return -1;
}

int sched_any_workers(const sched *s)
{
    for (int i = 0; i < s->n_slots; i++) {
        if (s->workers[i].pid != 0) {
            return 1;
        }
    }
    return 0;
}

int sched_read_pids(const sched *s, int *pids, int max)
{
    /* Read without the dispatcher's cooperation: pids change rarely and a
     * torn read only gives a stale answer to a diagnostic. */
    int n = 0;
    for (int i = 0; i < SCHED_MAX_WORKERS && n < max; i++) {
        int pid = __atomic_load_n(&s->workers[i].pid, __ATOMIC_RELAXED);
        if (pid != 0 &&
            __atomic_load_n(&s->workers[i].dead_since, __ATOMIC_RELAXED) == 0) {
            pids[n++] = pid;
        }
    }
    return n;
}
