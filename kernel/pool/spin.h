/* spin.h -- a poll that spins briefly before it sleeps.
 *
 * On this project's reference machine (a 2-core VM) a thread that sleeps
 * in poll leaves its virtual CPU idle, the hypervisor halts it, and the
 * write that wakes it costs the writer and the sleeper tens of
 * microseconds each - more than the rest of a small task's round trip
 * (bench/README.md, "Single-task round trip": 83-146 us with both ends
 * sleeping, 27-36 us with both spinning).  Where the answer usually comes
 * within that time (a lone task's result; a worker's next task in a loop
 * of submits), the waiting thread polls without sleeping for a bounded
 * while first, yielding its CPU to any other runnable thread meanwhile. */
#ifndef FERRY_POOL_SPIN_H
#define FERRY_POOL_SPIN_H

#include <poll.h>

/* poll(fds, n, timeout_ms), after polling without waiting for up to
 * spin_us microseconds (none when spin_us or timeout_ms is 0). */
int spin_poll(struct pollfd *fds, nfds_t n, int timeout_ms, long spin_us);

#endif
