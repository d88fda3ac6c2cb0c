/* runtime.c -- creating, cleaning and removing runtime directories. */
#define _GNU_SOURCE /* nftw's FTW_DEPTH and FTW_PHYS */
#include "runtime.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Directories are named ferry-UID-PID-XXXXXX: a dead PID means a killed kernel
 * left it behind, so it is ours to remove. */
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
        if (pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH) {
            continue;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", root, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == getuid()) {
            LOG_I("removing runtime directory of dead kernel %ld: %s", pid, path);
            runtime_dir_remove(path);
        }
    }
    closedir(d);
}

int runtime_dir_create(char *buf, size_t size)
{
    const char *root = runtime_root();
    remove_stale_dirs(root);
    int n = snprintf(buf, size, "%s/ferry-%u-%d-XXXXXX", root, (unsigned)getuid(),
                     (int)getpid());
    if (n < 0 || (size_t)n >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (mkdtemp(buf) == NULL) { /* mkdtemp creates it 0700 */
        return -1;
    }
    return 0;
}
