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
 * loaded machine can be seconds later - a client reading 100 MB of output
 * beside another test run took over the 38 s the doubling intervals used to
 * end at, and the kernel kept 45 MB.  So the heap is trimmed again after
 * TRIM_DELAY_MS, at doubling intervals up to TRIM_MAX_DELAY_MS, and then at
 * that interval until TRIM_FOR_MS after the output. */
#define SHRINK_ABOVE (1024 * 1024)
#define TRIM_DELAY_MS 300
#define TRIM_MAX_DELAY_MS 10000
#define TRIM_FOR_MS 300000

void iopub_shrink_buffer(iopub *io, void **buf, size_t *cap, size_t len)
{
    if (len == 0 && *cap > SHRINK_ABOVE) {
        free(*buf);
        *buf = NULL;
        *cap = 0;
        malloc_trim(0);
        io->trim_delay_ms = TRIM_DELAY_MS;
        io->trim_ms = iopub_now_ms() + io->trim_delay_ms;
        io->trim_until_ms = iopub_now_ms() + TRIM_FOR_MS;
    }
}

void iopub_trim_if_due(iopub *io)
{
    if (io->trim_ms == 0 || iopub_now_ms() < io->trim_ms) {
        return;
    }
    malloc_trim(0);
    io->trim_delay_ms = io->trim_delay_ms * 2 < TRIM_MAX_DELAY_MS ? io->trim_delay_ms * 2
                                                                  : TRIM_MAX_DELAY_MS;
    long long next = iopub_now_ms() + io->trim_delay_ms;
    io->trim_ms = next <= io->trim_until_ms ? next : 0;
}
