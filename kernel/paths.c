/* paths.c -- finding the binary and the Python package it needs. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "paths.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int paths_self_exe(char *buf, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n < 0) {
        return -1;
    }
    buf[n] = '\0';
    return 0;
}

int paths_package_dir(char *buf, size_t size)
{
    const char *env = getenv("FERRY_PACKAGE_DIR");
    if (env && *env) {
        snprintf(buf, size, "%s", env);
        return 0;
    }
    char exe[PATH_MAX];
    if (size < PATH_MAX || paths_self_exe(exe, sizeof exe) < 0) {
        return -1;
    }
    char *slash = strrchr(exe, '/');
    if (slash) {
        *slash = '\0';
    }
    static const char *const candidates[] = {"/../kernel/python", "/../lib/ferry"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        char probe[PATH_MAX + 64], init[PATH_MAX + 96];
        snprintf(probe, sizeof probe, "%s%s", exe, candidates[i]);
        snprintf(init, sizeof init, "%s/ferry/_kernel.py", probe);
        if (access(init, R_OK) == 0 && realpath(probe, buf) != NULL) {
            return 0;
        }
    }
    return -1;
}

int paths_beside_binary(const char *name, char *buf, size_t size)
{
    char exe[PATH_MAX];
    if (paths_self_exe(exe, sizeof exe) < 0) {
        return -1;
    }
    char *slash = strrchr(exe, '/');
    int dir_len = slash ? (int)(slash - exe) : 0;
    static const char *const candidates[] = {"", "/../lib/ferry"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        int n = snprintf(buf, size, "%.*s%s/%s", dir_len, exe, candidates[i], name);
        if (n > 0 && (size_t)n < size && access(buf, X_OK) == 0) {
            return 0;
        }
    }
    return -1;
}
