/* spin.c -- see spin.h. */
#include "spin.h"

#include <sched.h>
#include <time.h>

static long long mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int spin_poll(struct pollfd *fds, nfds_t n, int timeout_ms, long spin_us)
{
    if (spin_us > 0 && timeout_ms != 0) {
        long long start = mono_us(), now = start;
        do {
            int rc = poll(fds, n, 0);
            if (rc != 0) {
                return rc; /* ready, or an error (EINTR: the caller's signal) */
            }
            sched_yield(); /* a runnable thread here goes first */
            now = mono_us();
        } while (now < start + spin_us);
        if (timeout_ms > 0) { /* the spin counts in the timeout */
            long long left = timeout_ms - (now - start) / 1000;
            timeout_ms = left > 0 ? (int)left : 0;
        }
    }
    return poll(fds, n, timeout_ms);
}
