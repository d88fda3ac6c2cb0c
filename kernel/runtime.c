/* runtime.c -- creating, cleaning and removing runtime directories. */
#define _GNU_SOURCE /* nftw's FTW_DEPTH and FTW_PHYS */
#include "runtime.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

int runtime_dir_remove(const char *path)
{
    if (path == NULL || path[0] == '\0') {
        return 0;
    }
    return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *runtime_root(void)
{
    const char *root = getenv("FERRY_RUNTIME_ROOT");
    return root && *root ? root : "/tmp";
}

/* A live kernel holds an flock on its directory (on the directory itself,
 * taken before the directory gets its final name, so no other kernel ever
 * sees it unlocked) and marks it with LOCK_MARK.  A marked directory nobody
 * holds was left by a killed kernel.  Pids cannot say so: across PID
 * namespaces (containers sharing /tmp) a live kernel's pid looks dead.  An
 * unmarked directory comes from an older ferry: there the pid is all there
 * is. */
#define LOCK_MARK ".ferry-locked"
static int lock_fd = -1;   /* held for the kernel's life, never closed */
static char own_dir[4096]; /* the directory runtime_dir_create made */

/* 1 if the directory at path may be removed: stale by its lock (then *fd is
 * the open, locked directory, to close after removing it) or, unmarked, by
 * its dead pid. */
static int is_stale(const char *path, long pid, int *fd)
{
    *fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (*fd < 0) {
        return 0;
    }
    if (flock(*fd, LOCK_EX | LOCK_NB) < 0) {
        close(*fd); /* held: its kernel is alive */
        *fd = -1;
        return 0;
    }
    if (faccessat(*fd, LOCK_MARK, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
        return 1;
    }
    return pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* Directories are named ferry-UID-PID-XXXXXX. */
static void remove_stale_dirs(const char *root)
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "ferry-%u-", (unsigned)getuid());
    DIR *d = opendir(root);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0) {
            continue;
        }
        long pid = strtol(e->d_name + strlen(prefix), NULL, 10);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", root, e->d_name);
        struct stat st;
        int fd = -1;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == getuid() &&
            is_stale(path, pid, &fd)) {
            LOG_I("removing runtime directory of dead kernel %ld: %s", pid, path);
            runtime_dir_remove(path);
        }
        if (fd >= 0) {
            close(fd);
        }
    }
    closedir(d);
}

/* Locks and marks the new directory tmp, then gives it its final name. */
static int lock_and_name(const char *tmp, const char *final)
{
    int fd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int mark = fd < 0 ? -1 : openat(fd, LOCK_MARK, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (mark < 0 || flock(fd, LOCK_EX) < 0 || rename(tmp, final) < 0) {
        int saved = errno;
        if (mark >= 0) {
            close(mark);
        }
        if (fd >= 0) {
            close(fd);
        }
        runtime_dir_remove(tmp);
        errno = saved;
        return -1;
    }
    close(mark);
    lock_fd = fd;
    snprintf(own_dir, sizeof own_dir, "%s", final);
    return 0;
}

int runtime_dir_create(char *buf, size_t size)
{
    const char *root = runtime_root();
    remove_stale_dirs(root);
    /* Made under a name cleaners skip (".ferry-..."), locked, then renamed. */
    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%s/.ferry-%u-%d-XXXXXX", root, (unsigned)getuid(),
                     (int)getpid());
    if (n < 0 || (size_t)n >= size || (size_t)n >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (mkdtemp(tmp) == NULL) { /* mkdtemp creates it 0700 */
        return -1;
    }
    const char *base = strrchr(tmp, '/') + 2; /* past "/." */
    snprintf(buf, size, "%s/%s", root, base);
    return lock_and_name(tmp, buf);
}

int runtime_dir_remove_own(void)
{
    return own_dir[0] ? runtime_dir_remove(own_dir) : 0;
}
