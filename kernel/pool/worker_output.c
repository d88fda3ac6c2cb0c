/* worker_output.c -- a worker's captured stdout and stderr (see
 * worker_output.h). */
#define _GNU_SOURCE /* pipe2 */
#include "worker_output.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static int capture(int target, int *read_end)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0 || dup2(fds[1], target) < 0) {
        return -1;
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    *read_end = fds[0];
    return 0;
}

int wout_capture(wout *o)
{
    return capture(1, &o->fd[0]) < 0 || capture(2, &o->fd[1]) < 0 ? -1 : 0;
}

/* Length of the longest prefix of buf[0..n) that does not end inside a
 * UTF-8 character (the kernel sanitises each chunk on its own, so a
 * character split between two chunks would turn into two U+FFFD). */
static size_t utf8_complete(const unsigned char *buf, size_t n)
{
    for (size_t back = 1; back <= 4 && back <= n; back++) {
        unsigned char c = buf[n - back];
        if ((c & 0xC0) != 0x80) { /* a lead byte or ASCII */
            size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            return need > back ? n - back : n;
        }
    }
    return n; /* not UTF-8 anyway: send as is */
}

int wout_pending(const wout *o)
{
    if (o->n_carry[0] || o->n_carry[1]) {
        return 1;
    }
    struct pollfd fds[2] = {
        {.fd = o->fd[0], .events = POLLIN},
        {.fd = o->fd[1], .events = POLLIN},
    };
    return poll(fds, 2, 0) != 0; /* on an error too: the drain reports it */
}

wout_chunk *wout_drain(wout *o, uint64_t task, int final)
{
    wout_chunk *first = NULL, **link = &first;
    char buf[65536 + 4];
    for (int i = 0; i < 2; i++) {
        for (;;) {
            size_t have = o->n_carry[i];
            memcpy(buf, o->carry[i], have);
            ssize_t n = read(o->fd[i], buf + have, sizeof buf - 4);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            size_t total = have + (n > 0 ? (size_t)n : 0);
            size_t take = n > 0 ? utf8_complete((unsigned char *)buf, total) : 0;
            if (n <= 0 && final) {
                take = total;
            }
            o->n_carry[i] = total - take;
            memcpy(o->carry[i], buf + take, total - take);
            wout_chunk *c = take > 0 ? malloc(sizeof *c + take) : NULL;
            if (c != NULL) {
                c->task = task;
                c->stream = i;
                c->len = take;
                c->next = NULL;
                memcpy(c->data, buf, take);
                *link = c;
                link = &c->next;
            } else if (take > 0) {
                LOG_E("worker: out of memory; %zu bytes of output dropped", take);
            }
            if (n <= 0) {
                break;
            }
        }
    }
    return first;
}
