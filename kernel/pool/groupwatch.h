/* groupwatch.h -- a worker's process group ends with the worker. */
#ifndef FERRY_GROUPWATCH_H
#define FERRY_GROUPWATCH_H

/* Starts the watcher of the calling process's group (a pool worker, which
 * leads a group of its own): once the caller dies, for whatever reason, the
 * watcher kills every process left in the group - what the worker's tasks
 * started - and itself.  Call first thing, from the thread that lives as
 * long as the process.  Does nothing unless the caller leads its group.
 * Returns 0, or -1 if it could not start it (logged). */
int groupwatch_start(void);

#endif
