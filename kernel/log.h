/* log.h -- the kernel's own log lines.
 *
 * They go to a duplicate of the original stderr taken before output capture,
 * so they never reach a notebook.  The level is checked before formatting. */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#include "jp.h"

typedef enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG } log_level;

/* Sets where log lines go (default 2) and the most verbose level shown. */
void log_init(int fd, log_level level);
/* Parses "error", "warn", "info", "debug"; -1 when unknown. */
int log_level_parse(const char *name);
int log_enabled(log_level level);
void log_msg(log_level level, const char *fmt, ...) JP_PRINTF(2, 3);
/* The descriptor log lines go to (for children that must log too). */
int log_fd(void);

#define LOG_E(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define LOG_W(...) log_msg(LOG_WARN, __VA_ARGS__)
#define LOG_I(...) log_msg(LOG_INFO, __VA_ARGS__)
#define LOG_D(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
