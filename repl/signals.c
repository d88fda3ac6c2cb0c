/* signals.c -- flags set from signal handlers (async-signal-safe: only
 * sig_atomic_t stores and write(2) to a non-blocking pipe). */
#include "signals.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <unistd.h>

static volatile sig_atomic_t got_int;
static volatile sig_atomic_t got_winch;
static volatile sig_atomic_t got_quit;
static sigset_t saved_mask;
static int wake[2] = {-1, -1};

static void on_signal(int sig)
{
    if (sig == SIGINT) {
        got_int = 1;
    } else if (sig == SIGWINCH) {
        got_winch = 1;
    } else {
        got_quit = 1;
    }
    int saved = errno;
    ssize_t w = write(wake[1], "", 1); /* full pipe: a wake-up is pending anyway */
    (void)w;
    errno = saved;
}

int signals_install(void)
{
    if (pipe(wake) < 0) {
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(wake[i], F_SETFL, fcntl(wake[i], F_GETFL) | O_NONBLOCK);
        fcntl(wake[i], F_SETFD, FD_CLOEXEC);
    }
    struct sigaction sa;
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: waits must see EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGWINCH, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int signals_fd(void)
{
    return wake[0];
}

void signals_drain(void)
{
    char buf[64];
    while (read(wake[0], buf, sizeof buf) > 0) {
    }
}

void signals_block(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGWINCH);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, &saved_mask);
}

void signals_unblock(void)
{
    sigprocmask(SIG_SETMASK, &saved_mask, NULL);
}

int signals_take_interrupt(void)
{
    int v = got_int;
    got_int = 0;
    return v;
}

int signals_take_resize(void)
{
    int v = got_winch;
    got_winch = 0;
    return v;
}

int signals_quit_requested(void)
{
    return got_quit;
}
