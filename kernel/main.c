/* main.c -- ferry-kernel: the Jupyter kernel, its worker role, and the
 * kernelspec installer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "install.h"
#include "kernel.h"
#include "log.h"
#include "pool/roles.h"

#ifndef FERRY_PYTHON
#define FERRY_PYTHON "/usr/bin/python3"
#endif

#ifndef FERRY_VERSION
#define FERRY_VERSION "0.1.0"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ferry-kernel -f CONNECTION_FILE [--log-level LEVEL]\n"
            "       ferry-kernel install [--user | --prefix P | --sys-prefix]\n"
            "                            [--name N] [--display-name D]\n"
            "       ferry-kernel --version | --help\n"
            "\n"
            "A Jupyter kernel for Python whose cell definitions reach worker\n"
            "processes.  Frontends start it from its kernelspec.\n"
            "\n"
            "  -f FILE            the connection file written by the frontend\n"
            "  --log-level LEVEL  error, warn (default), info or debug; the log goes\n"
            "                     to the kernel's stderr, never into a notebook\n"
            "  --Class.trait=V    IPython-style options: HistoryManager.hist_file is\n"
            "                     honoured, the others logged and ignored\n"
            "\n"
            "With JPY_PARENT_PID set (jupyter_client sets it), the kernel exits when\n"
            "that process dies.  FERRY_MAX_MESSAGE_SIZE (bytes, default 256 MiB, 0 for\n"
            "no limit) bounds each part of a message the kernel accepts.\n");
}

/* "--Class.trait=value" or "--Class.trait value", as IPython's kernels take
 * them: frontends pass such options to any kernel named python3 (nbclient:
 * --HistoryManager.hist_file=:memory:).  Returns how many arguments it used,
 * 0 when a is not one.  The one ferry has a use for goes to *hist_file; the
 * rest are counted in *ignored, logged once the log is open
 * (log_ignored_traits), and ignored. */
static int trait_option(const char *a, const char *next, const char **hist_file,
                        int *ignored)
{
    const char *dot = strncmp(a, "--", 2) == 0 ? strchr(a + 2, '.') : NULL;
    if (dot == NULL || dot == a + 2 || dot[1] == '\0' || dot[1] == '=') {
        return 0;
    }
    const char *eq = strchr(a, '=');
    int used = eq ? 1 : (next && strncmp(next, "--", 2) != 0 ? 2 : 1);
    const char *value = eq ? eq + 1 : (used == 2 ? next : "");
    size_t name_len = eq ? (size_t)(eq - a) : strlen(a);
    if (name_len == 26 && strncmp(a, "--HistoryManager.hist_file", 26) == 0) {
        *hist_file = value;
    } else {
        (*ignored)++;
    }
    return used;
}

static void log_ignored_traits(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        int n = 0;
        const char *unused = NULL;
        if (trait_option(argv[i], NULL, &unused, &n) > 0 && n > 0) {
            LOG_W("ignoring option %s: ferry has no such setting", argv[i]);
        }
    }
}

int main(int argc, char **argv)
{
    int ignored = 0;              /* trait options ferry has no use for */
    const char *hist_file = NULL; /* --HistoryManager.hist_file */
    const char *connection_file = NULL;
    int level = LOG_WARN;
    if (argc > 1 && strcmp(argv[1], "install") == 0) {
        return install_main(argc - 2, argv + 2);
    }
    if (argc >= 2 && roles_is_role(argv[1])) {
        return roles_main(argc, argv, FERRY_PYTHON); /* when ferry-worker is missing */
    }
    for (int i = 1, used; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if ((strcmp(a, "-f") == 0 || strcmp(a, "--connection-file") == 0) && next) {
            connection_file = next;
            i++;
        } else if (strncmp(a, "--connection-file=", 18) == 0) {
            connection_file = a + 18;
        } else if (strcmp(a, "--log-level") == 0 && next) {
            level = log_level_parse(next);
            if (level < 0) {
                fprintf(stderr, "ferry-kernel: unknown log level '%s'\n", next);
                return 2;
            }
            i++;
        } else if (strcmp(a, "--version") == 0) {
            printf("ferry-kernel %s\n", FERRY_VERSION);
            return 0;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if ((used = trait_option(a, next, &hist_file, &ignored)) > 0) {
            i += used - 1;
        } else {
            fprintf(stderr, "ferry-kernel: unknown or incomplete argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (connection_file == NULL) {
        usage(stderr);
        return 2;
    }
    /* Log lines go to a copy of stderr taken before output capture. */
    int fd = dup(2);
    log_init(fd >= 0 ? fd : 2, (log_level)level);
    if (ignored) {
        log_ignored_traits(argc, argv);
    }
    if (hist_file) {
        setenv("FERRY_HISTORY_FILE", hist_file, 1); /* _history.py reads it */
    }
    return kernel_run(connection_file);
}
