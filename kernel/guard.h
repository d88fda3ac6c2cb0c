/* guard.h -- what unauthenticated input may cost the kernel. */
#ifndef FERRY_GUARD_H
#define FERRY_GUARD_H

#include <stdint.h>

/* The largest message part the kernel's sockets accept (ZMQ_MAXMSGSIZE):
 * FERRY_MAX_MESSAGE_SIZE bytes if set (0: no limit, -1 for ZeroMQ), else
 * 256 MiB. */
int64_t guard_max_message_size(void);

/* Called for each message dropped on channel (unsigned, malformed, too
 * large): logs the first at once and then at most one line every 10 s with
 * the count, and gives the memory the message held back to the system.
 * Thread-safe. */
void guard_dropped(const char *channel, const char *why);

/* Warns on the log when the connection file at path can be read by others
 * than its owner (naming the mode and the fix: anyone who reads the key can
 * run code in the kernel) or when its key is empty (nothing is signed). */
void guard_check_connection_file(const char *path, const char *key);

#endif
