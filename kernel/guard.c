/* guard.c -- bounding what unauthenticated peers cost.
 *
 * Anyone who can reach the kernel's ports can send it messages; only signed
 * ones are acted on, but each costs memory before the signature is checked:
 * libzmq buffers a whole multipart message before the kernel sees its first
 * part.  So: a size limit per part (ZMQ_MAXMSGSIZE: a peer that sends more
 * is disconnected before the part is allocated), a limit on the number of
 * parts (jp_recv drains the excess unread), and after a dropped message the
 * freed heap is trimmed, so a flood leaves the kernel no larger.  Dropped
 * messages are logged with a count, not a line each: a flood must not fill
 * the log either. */
#define _GNU_SOURCE /* malloc_trim */
#include "guard.h"

#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"

#define DEFAULT_MAX_MESSAGE_SIZE ((int64_t)256 << 20)
#define LOG_INTERVAL_S 10

int64_t guard_max_message_size(void)
{
    const char *env = getenv("FERRY_MAX_MESSAGE_SIZE");
    if (env == NULL || *env == '\0') {
        return DEFAULT_MAX_MESSAGE_SIZE;
    }
    char *end;
    long long v = strtoll(env, &end, 10);
    if (*end != '\0' || v < 0) {
        LOG_W("FERRY_MAX_MESSAGE_SIZE=%s is not a size in bytes; using %lld", env,
              (long long)DEFAULT_MAX_MESSAGE_SIZE);
        return DEFAULT_MAX_MESSAGE_SIZE;
    }
    return v == 0 ? -1 : (int64_t)v;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static time_t last_logged;     /* when the last line was written, 0 never */
static unsigned long unlogged; /* drops since that line */

void guard_dropped(const char *channel, const char *why)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&lock);
    unlogged++;
    if (last_logged == 0 || now.tv_sec - last_logged >= LOG_INTERVAL_S) {
        if (unlogged == 1) {
            LOG_W("dropping a message on %s: %s", channel, why);
        } else {
            LOG_W("dropped %lu messages in the last %d s; the latest on %s: %s", unlogged,
                  LOG_INTERVAL_S, channel, why);
        }
        last_logged = now.tv_sec > 0 ? now.tv_sec : 1;
        unlogged = 0;
    }
    pthread_mutex_unlock(&lock);
    /* What libzmq and the decoder held for the message is free now, but
     * glibc keeps freed small blocks: give them back. */
    malloc_trim(0);
}

/* Jupyter writes connection files 0600 (jupyter_core's secure_write).  One
 * that other users can read or write is refused when it is loaded
 * (protocol/connection.c); one its group can read may be a deliberate
 * sharing, so it is warned about, as jupyter does. */
void guard_check_connection_file(const char *path, const char *key)
{
    if (key == NULL || *key == '\0') {
        LOG_W("the connection file %s has an empty key: messages are not signed, "
              "and anyone who can reach the kernel's ports can run code in it",
              path);
        return;
    }
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        LOG_W("the connection file %s has mode %04o: its group can read the key "
              "and run code in this kernel; make it private with: chmod 600 %s",
              path, (unsigned)(st.st_mode & 07777), path);
    }
}
