/* log.c -- levelled, format-checked logging to the saved stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int out_fd = 2;
static log_level max_level = LOG_WARN;

static const char *const names[] = {"error", "warn", "info", "debug"};

void log_init(int fd, log_level level)
{
    out_fd = fd;
    max_level = level;
}

int log_fd(void)
{
    return out_fd;
}

int log_level_parse(const char *name)
{
    for (int i = 0; i <= LOG_DEBUG; i++) {
        if (strcmp(name, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

int log_enabled(log_level level)
{
    return level <= max_level;
}

void log_msg(log_level level, const char *fmt, ...)
{
    if (!log_enabled(level)) {
        return;
    }
    char line[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    int n =
        snprintf(line, sizeof line, "[ferry %02d:%02d:%02d.%03ld %s %d] ", tm.tm_hour,
                 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[level], (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 2) {
        n = (int)sizeof line - 2;
    }
    line[n++] = '\n';
    /* One write per line keeps lines whole when threads log at once. */
    ssize_t rc = write(out_fd, line, (size_t)n);
    (void)rc;
}
