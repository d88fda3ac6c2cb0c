/* transport_probe.c -- the floor of each transport the pool could use
 * between the kernel and a local worker, on this machine.
 *
 * A parent and a forked child bounce a 64-byte message back and forth;
 * the median round trip of ROUNDS is printed per transport:
 *
 *   pipes        two pipes, blocking read/write (multiprocessing's way)
 *   socketpair   one AF_UNIX SOCK_STREAM pair, blocking
 *   eventfd+shm  the message in a shared page, an eventfd each way to wake
 *                the other side
 *
 * Each also "+spin": the reader first polls without sleeping for up to
 * SPIN_US (a non-blocking read, or the shared page's sequence number),
 * then sleeps as above.  Spinning saves the wake-up when the answer comes
 * within the spin, and costs a core while it spins: on 2 cores shared with
 * other work it may not pay, which is what this measures.
 *
 * A row "thread hop" bounces the same between two threads of one process
 * over eventfds: the cost of one hand-off inside the kernel (cell thread to
 * dispatcher and back).
 *
 * Usage: transport_probe [rounds] (default 2000). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG 64
#define SPIN_US 50

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* ------------------------------------------------------- fd transports */

/* Reads exactly n bytes from a socket; with spin, non-blocking tries for
 * SPIN_US first, then a blocking read. */
static int recv_full(int fd, char *buf, size_t n, int spin)
{
    size_t got = 0;
    long long spin_end = spin ? now_ns() + SPIN_US * 1000LL : 0;
    while (got < n) {
        int flags = spin && now_ns() < spin_end ? MSG_DONTWAIT : 0;
        ssize_t r = recv(fd, buf + got, n - got, flags);
        if (r > 0) {
            got += (size_t)r;
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            return -1;
        }
    }
    return 0;
}

/* The same from a pipe: a pipe has no per-call MSG_DONTWAIT, so its read
 * end is non-blocking and the sleep is a poll once the spin is over. */
static int read_pipe(int fd, char *buf, size_t n, int spin)
{
    size_t got = 0;
    long long spin_end = spin ? now_ns() + SPIN_US * 1000LL : 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            return -1;
        }
        if (now_ns() >= spin_end) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            poll(&p, 1, -1);
        }
    }
    return 0;
}

typedef struct fdpair {
    int parent_rd, parent_wr; /* the parent's ends */
    int child_rd, child_wr;   /* the child's ends */
    int is_pipe;
} fdpair;

static int do_read(const fdpair *fp, int fd, char *buf, int spin)
{
    return fp->is_pipe ? read_pipe(fd, buf, MSG, spin) : recv_full(fd, buf, MSG, spin);
}

static double bounce_fds(fdpair fp, int rounds, int spin)
{
    if (fp.is_pipe && spin) {
        fcntl(fp.parent_rd, F_SETFL, O_NONBLOCK);
        fcntl(fp.child_rd, F_SETFL, O_NONBLOCK);
    }
    pid_t pid = fork();
    char buf[MSG] = {0};
    if (pid == 0) {
        for (int i = 0; i < rounds; i++) {
            if (do_read(&fp, fp.child_rd, buf, spin) < 0 ||
                write(fp.child_wr, buf, MSG) != MSG) {
                _exit(1);
            }
        }
        _exit(0);
    }
    long long *t = calloc((size_t)rounds, sizeof *t);
    for (int i = 0; i < rounds; i++) {
        long long t0 = now_ns();
        if (write(fp.parent_wr, buf, MSG) != MSG ||
            do_read(&fp, fp.parent_rd, buf, spin) < 0) {
            break;
        }
        t[i] = now_ns() - t0;
    }
    waitpid(pid, NULL, 0);
    qsort(t, (size_t)rounds, sizeof *t, cmp_ll);
    double med = (double)t[rounds / 2] / 1000.0;
    free(t);
    return med;
}

static double run_pipes(int rounds, int spin)
{
    int a[2], b[2];
    if (pipe(a) < 0 || pipe(b) < 0) {
        return -1;
    }
    fdpair fp = {.parent_wr = a[1],
                 .child_rd = a[0],
                 .child_wr = b[1],
                 .parent_rd = b[0],
                 .is_pipe = 1};
    double r = bounce_fds(fp, rounds, spin);
    close(a[0]), close(a[1]), close(b[0]), close(b[1]);
    return r;
}

static double run_socketpair(int rounds, int spin)
{
    int s[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) < 0) {
        return -1;
    }
    fdpair fp = {
        .parent_rd = s[0], .parent_wr = s[0], .child_rd = s[1], .child_wr = s[1]};
    double r = bounce_fds(fp, rounds, spin);
    close(s[0]), close(s[1]);
    return r;
}

/* ------------------------------------------------------ eventfd + shm */

typedef struct shm_box {
    volatile uint64_t seq[2]; /* [0] parent -> child, [1] child -> parent */
    char msg[2][MSG];         /* the messages */
} shm_box;

/* Waits until box->seq[dir] reaches want: spins first when asked, then
 * sleeps on the eventfd (the writer always signals it). */
static void shm_wait(shm_box *box, int dir, uint64_t want, int efd, int spin)
{
    if (spin) {
        long long end = now_ns() + SPIN_US * 1000LL;
        while (now_ns() < end) {
            if (__atomic_load_n(&box->seq[dir], __ATOMIC_ACQUIRE) >= want) {
                return;
            }
        }
    }
    while (__atomic_load_n(&box->seq[dir], __ATOMIC_ACQUIRE) < want) {
        uint64_t c;
        if (read(efd, &c, sizeof c) < 0 && errno != EINTR) {
            return;
        }
    }
}

static void shm_post(shm_box *box, int dir, const char *msg, int efd)
{
    memcpy(box->msg[dir], msg, MSG);
    __atomic_add_fetch(&box->seq[dir], 1, __ATOMIC_RELEASE);
    uint64_t one = 1;
    if (write(efd, &one, sizeof one) < 0) {
        perror("eventfd");
    }
}

static double run_eventfd_shm(int rounds, int spin)
{
    shm_box *box = mmap(NULL, sizeof *box, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int to_child = eventfd(0, 0), to_parent = eventfd(0, 0);
    if (box == MAP_FAILED || to_child < 0 || to_parent < 0) {
        return -1;
    }
    memset(box, 0, sizeof *box);
    char buf[MSG] = {0};
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 1; i <= rounds; i++) {
            shm_wait(box, 0, (uint64_t)i, to_child, spin);
            memcpy(buf, box->msg[0], MSG);
            shm_post(box, 1, buf, to_parent);
        }
        _exit(0);
    }
    long long *t = calloc((size_t)rounds, sizeof *t);
    for (int i = 1; i <= rounds; i++) {
        long long t0 = now_ns();
        shm_post(box, 0, buf, to_child);
        shm_wait(box, 1, (uint64_t)i, to_parent, spin);
        t[i - 1] = now_ns() - t0;
    }
    waitpid(pid, NULL, 0);
    qsort(t, (size_t)rounds, sizeof *t, cmp_ll);
    double med = (double)t[rounds / 2] / 1000.0;
    free(t);
    munmap(box, sizeof *box);
    close(to_child), close(to_parent);
    return med;
}

/* --------------------------------------------------------- thread hop */

typedef struct hop {
    int to_thread, to_main; /* eventfds */
    int rounds;
} hop;

static void *hop_main(void *arg)
{
    hop *h = arg;
    uint64_t c;
    for (int i = 0; i < h->rounds; i++) {
        if (read(h->to_thread, &c, sizeof c) < 0 || write(h->to_main, &c, sizeof c) < 0) {
            break;
        }
    }
    return NULL;
}

static double run_thread_hop(int rounds)
{
    hop h = {eventfd(0, 0), eventfd(0, 0), rounds};
    pthread_t th;
    pthread_create(&th, NULL, hop_main, &h);
    long long *t = calloc((size_t)rounds, sizeof *t);
    uint64_t one = 1, c;
    for (int i = 0; i < rounds; i++) {
        long long t0 = now_ns();
        if (write(h.to_thread, &one, sizeof one) < 0 ||
            read(h.to_main, &c, sizeof c) < 0) {
            break;
        }
        t[i] = now_ns() - t0;
    }
    pthread_join(th, NULL);
    qsort(t, (size_t)rounds, sizeof *t, cmp_ll);
    double med = (double)t[rounds / 2] / 1000.0;
    free(t);
    close(h.to_thread), close(h.to_main);
    return med;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 2000;
    if (rounds < 1) {
        rounds = 2000;
    }
    printf("median round trip of %d, %d-byte messages, parent and forked child\n", rounds,
           MSG);
    for (int spin = 0; spin <= 1; spin++) {
        const char *s = spin ? " +spin" : "";
        printf("pipes%-6s        %8.1f us\n", s, run_pipes(rounds, spin));
        printf("socketpair%-6s   %8.1f us\n", s, run_socketpair(rounds, spin));
        printf("eventfd+shm%-6s  %8.1f us\n", s, run_eventfd_shm(rounds, spin));
    }
    printf("thread hop (eventfd, both ways) %8.1f us\n", run_thread_hop(rounds));
    return 0;
}
