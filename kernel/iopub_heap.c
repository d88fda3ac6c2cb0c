/* iopub_heap.c -- giving memory back after a huge output (see
 * iopub_int.h): the publisher's buffers and the heap. */
#define _GNU_SOURCE /* malloc_trim */
#include <malloc.h>
#include <stdlib.h>

#include "iopub_int.h"

/* A buffer grown for one huge write (print of 200 MB) is let go once empty,
 * and the heap trimmed, so the kernel does not keep its peak for life.  The
 * messages built from that output are freed by ZeroMQ's own thread once they
 * have been sent, at the pace the slowest subscriber reads them, which on a
 * loaded machine can be seconds later: so the heap is trimmed again after
 * TRIM_DELAY_MS, and again at doubling intervals up to TRIM_LAST_DELAY_MS,
 * rather than once at a moment that assumes a fast reader. */
#define SHRINK_ABOVE (1024 * 1024)
#define TRIM_DELAY_MS 300
#define TRIM_LAST_DELAY_MS 20000

void iopub_shrink_buffer(iopub *io, void **buf, size_t *cap, size_t len)
{
    if (len == 0 && *cap > SHRINK_ABOVE) {
        free(*buf);
        *buf = NULL;
        *cap = 0;
        malloc_trim(0);
        io->trim_delay_ms = TRIM_DELAY_MS;
        io->trim_ms = iopub_now_ms() + io->trim_delay_ms;
    }
}

void iopub_trim_if_due(iopub *io)
{
    if (io->trim_ms == 0 || iopub_now_ms() < io->trim_ms) {
        return;
    }
    malloc_trim(0);
    io->trim_delay_ms *= 2;
    io->trim_ms =
        io->trim_delay_ms <= TRIM_LAST_DELAY_MS ? iopub_now_ms() + io->trim_delay_ms : 0;
}
