/* runtime.h -- the kernel's private runtime directory.
 *
 * Holds the re-export module versions and the workers' ipc endpoints.  It is
 * mode 0700 and short: ipc endpoint paths must fit in 107 bytes. */
#ifndef FERRY_RUNTIME_H
#define FERRY_RUNTIME_H

#include <stddef.h>

/* Creates /tmp/ferry-UID-PID-XXXXXX (or under $FERRY_RUNTIME_ROOT) after
 * removing directories left by kernels that no longer run.  The process
 * holds an flock on its directory until it exits: that, not the pid, is how
 * other kernels know it is in use.  Writes the path into buf.  Returns 0 or
 * -1 (errno set). */
int runtime_dir_create(char *buf, size_t size);

/* Removes the directory and everything in it.  Returns 0 or -1. */
int runtime_dir_remove(const char *path);

/* Removes the directory runtime_dir_create made, if any (the SIGTERM path,
 * which knows nothing else of the kernel).  Returns 0 or -1. */
int runtime_dir_remove_own(void);

#endif
