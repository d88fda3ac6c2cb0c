/* parent.h -- ending the kernel when the frontend that started it dies. */
#ifndef FERRY_PARENT_H
#define FERRY_PARENT_H

/* With JPY_PARENT_PID set, starts a thread that sends the kernel SIGTERM
 * once its parent has gone.  Returns 0, or -1 if the thread cannot start. */
int parent_watch_start(void);

#endif
