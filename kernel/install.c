/* install.c -- the kernelspec: kernel.json naming this binary, and a logo.
 *
 * Locations follow jupyter_client: --user writes to the user's data dir
 * (~/.local/share/jupyter), --prefix P to P/share/jupyter, --sys-prefix to
 * the Python prefix, and no flag to the system-wide /usr/local/share/jupyter.
 */
#include "install.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "paths.h"

#ifndef FERRY_PYTHON_PREFIX
#define FERRY_PYTHON_PREFIX "/usr"
#endif

static int mkdir_p(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) < 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    return mkdir(tmp, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

static int install_usage(FILE *out)
{
    fprintf(out, "usage: ferry-kernel install [--user | --prefix PREFIX | --sys-prefix]\n"
                 "                            [--name NAME] [--display-name NAME]\n"
                 "Installs the ferry kernelspec so Jupyter frontends can start ferry.\n");
    return out == stderr ? 2 : 0;
}

static int user_data_dir(char *buf, size_t size)
{
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    if (xdg && *xdg) {
        snprintf(buf, size, "%s/jupyter", xdg);
    } else if (home && *home) {
        snprintf(buf, size, "%s/.local/share/jupyter", home);
    } else {
        return -1;
    }
    return 0;
}

/* Writes kernel.json into dir; the argv names the running binary. */
static int write_spec(const char *dir, const char *exe, const char *display_name)
{
    json_t *spec =
        json_pack("{s:[s,s,s], s:s, s:s, s:s, s:{s:b}}", "argv", exe, "-f",
                  "{connection_file}", "display_name", display_name, "language", "python",
                  "interrupt_mode", "signal", "metadata", "debugger", 0);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/kernel.json", dir);
    int rc = spec ? json_dump_file(spec, path, JSON_INDENT(1)) : -1;
    json_decref(spec);
    return rc;
}

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    char buf[8192];
    size_t n;
    int rc = in && out ? 0 : -1;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0) {
        rc = fwrite(buf, 1, n, out) == n ? 0 : -1;
    }
    if (in) {
        fclose(in);
    }
    if (out && fclose(out) != 0) {
        rc = -1;
    }
    return rc;
}

/* The logo lives in share/ferry beside an installed binary, or in the
 * build tree's kernel/ directory. */
static void install_logo(const char *exe, const char *dir)
{
    char exedir[PATH_MAX];
    snprintf(exedir, sizeof exedir, "%s", exe);
    char *slash = strrchr(exedir, '/');
    if (slash) {
        *slash = '\0';
    }
    static const char *const candidates[] = {"/../share/ferry/logo-64x64.png",
                                             "/../kernel/logo-64x64.png"};
    for (size_t i = 0; i < 2; i++) {
        char from[PATH_MAX + 64], to[PATH_MAX + 32];
        snprintf(from, sizeof from, "%s%s", exedir, candidates[i]);
        snprintf(to, sizeof to, "%s/logo-64x64.png", dir);
        if (access(from, R_OK) == 0 && copy_file(from, to) == 0) {
            return;
        }
    }
}

int install_main(int argc, char **argv)
{
    char base[PATH_MAX] = "/usr/local/share/jupyter";
    const char *name = "ferry", *display = "Python 3 (ferry)";
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--user") == 0) {
            if (user_data_dir(base, sizeof base) < 0) {
                fprintf(stderr,
                        "ferry-kernel install: neither XDG_DATA_HOME nor HOME set\n");
                return 1;
            }
        } else if (strcmp(a, "--sys-prefix") == 0) {
            snprintf(base, sizeof base, "%s/share/jupyter", FERRY_PYTHON_PREFIX);
        } else if (strcmp(a, "--prefix") == 0 && next) {
            snprintf(base, sizeof base, "%s/share/jupyter", next);
            i++;
        } else if (strcmp(a, "--name") == 0 && next) {
            name = next;
            i++;
        } else if (strcmp(a, "--display-name") == 0 && next) {
            display = next;
            i++;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            return install_usage(stdout);
        } else {
            fprintf(stderr, "ferry-kernel install: unknown or incomplete option '%s'\n",
                    a);
            return install_usage(stderr);
        }
    }
    char exe[PATH_MAX];
    if (paths_self_exe(exe, sizeof exe) < 0) {
        perror("ferry-kernel install: /proc/self/exe");
        return 1;
    }
    char dir[PATH_MAX];
    int len = snprintf(dir, sizeof dir, "%s/kernels/%s", base, name);
    if (len < 0 || (size_t)len >= sizeof dir) {
        fprintf(stderr, "ferry-kernel install: path too long\n");
        return 1;
    }
    if (mkdir_p(dir) < 0 || write_spec(dir, exe, display) < 0) {
        fprintf(stderr, "ferry-kernel install: cannot write %s: %s\n", dir,
                strerror(errno));
        return 1;
    }
    install_logo(exe, dir);
    printf("Installed kernelspec %s in %s\n", name, dir);
    return 0;
}
