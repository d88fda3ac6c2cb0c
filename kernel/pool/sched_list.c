/* sched_list.c -- the task queues of the pool's core (see sched.h). */
#include "sched.h"

#include <stddef.h>

void sched_list_push(sched_list *l, sched_task *t)
{
    t->next = NULL;
    if (l->tail) {
        l->tail->next = t;
    } else {
        l->head = t;
    }
    l->tail = t;
    l->n++;
}

sched_task *sched_list_pop(sched_list *l)
{
    sched_task *t = l->head;
    if (t) {
        l->head = t->next;
        if (l->head == NULL) {
            l->tail = NULL;
        }
        l->n--;
        t->next = NULL;
    }
    return t;
}

/* Removes and returns the task with id from l, or NULL. */
sched_task *sched_list_take(sched_list *l, uint64_t id)
{
    sched_task *prev = NULL;
    for (sched_task *t = l->head; t; prev = t, t = t->next) {
        if (t->id == id) {
            if (prev) {
                prev->next = t->next;
            } else {
                l->head = t->next;
            }
            if (l->tail == t) {
                l->tail = prev;
            }
            l->n--;
            t->next = NULL;
            return t;
        }
    }
    return NULL;
}

/* Puts the tasks of from, in their order, in front of to. */
void sched_list_prepend(sched_list *to, sched_list *from)
{
    if (from->head == NULL) {
        return;
    }
    from->tail->next = to->head;
    if (to->tail == NULL) {
        to->tail = from->tail;
    }
    to->head = from->head;
    to->n += from->n;
    *from = (sched_list){0};
}
