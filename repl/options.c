/* options.c -- the REPL's command line (see options.h). */
#include "options.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jp.h"

static void usage(FILE *f)
{
    fputs("usage: ferry [options] [-c CODE | FILE [ARGS...]]\n"
          "\n"
          "A terminal for Jupyter kernels.  Without -c or FILE, an interactive prompt\n"
          "when stdin is a terminal, else stdin is run cell by cell.\n"
          "\n"
          "options:\n"
          "  -c CODE               run CODE as one cell and exit\n"
          "  -k, --kernel NAME     start the kernelspec NAME (default: ferry)\n"
          "  -e, --existing FILE   attach to a running kernel by its connection file;\n"
          "                        it keeps running when ferry exits\n"
          "  --save-images DIR     save images the kernel displays into DIR\n"
          "  --startup-timeout S   seconds to wait for the kernel to answer (60)\n"
          "  -q, --quiet           no banner\n"
          "  -h, --help            show this help and exit\n"
          "  -V, --version         show the version and exit\n"
          "\n"
          "At the prompt: Enter runs the cell when the kernel says it is complete;\n"
          "Tab completes; Up/Down and Ctrl-R search the history; Ctrl-C interrupts a\n"
          "running cell or clears the line; Ctrl-D on an empty line exits.\n",
          f);
}

static const char *need_arg(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "ferry: %s needs an argument\n", argv[*i]);
        exit(EXIT_USAGE);
    }
    return argv[++*i];
}

/* A positive whole number of seconds, or a usage error naming the option:
 * atoi would turn "5s" or "-1" into a silent default. */
static int seconds_arg(const char *opt, const char *value)
{
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || v <= 0 || v > INT_MAX) {
        fprintf(stderr, "ferry: %s needs a positive whole number of seconds, not '%s'\n",
                opt, value);
        exit(EXIT_USAGE);
    }
    return (int)v;
}

void options_parse(int argc, char **argv, options *o)
{
    o->startup_timeout = 60;
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            break;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            printf("ferry %s (Jupyter protocol %s)\n", FERRY_VERSION,
                   JP_PROTOCOL_VERSION);
            exit(0);
        } else if (strcmp(a, "-c") == 0) {
            o->code = need_arg(argc, argv, &i);
            i++;
            break; /* what follows -c CODE is sys.argv[1:], as in python */
        } else if (strcmp(a, "-k") == 0 || strcmp(a, "--kernel") == 0) {
            o->kernel = need_arg(argc, argv, &i);
        } else if (strncmp(a, "--kernel=", 9) == 0) {
            o->kernel = a + 9;
        } else if (strcmp(a, "-e") == 0 || strcmp(a, "--existing") == 0) {
            o->existing = need_arg(argc, argv, &i);
        } else if (strncmp(a, "--existing=", 11) == 0) {
            o->existing = a + 11;
        } else if (strcmp(a, "--save-images") == 0) {
            o->save_images = need_arg(argc, argv, &i);
        } else if (strncmp(a, "--save-images=", 14) == 0) {
            o->save_images = a + 14;
        } else if (strcmp(a, "--startup-timeout") == 0) {
            o->startup_timeout = seconds_arg(a, need_arg(argc, argv, &i));
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            o->quiet = 1;
        } else {
            fprintf(stderr, "ferry: unknown option %s (see ferry --help)\n", a);
            exit(EXIT_USAGE);
        }
    }
    if (o->code == NULL && i < argc) {
        o->script = argv[i++];
    }
    o->script_args = argv + i;
    if (o->kernel != NULL && o->existing != NULL) {
        fprintf(stderr, "ferry: --kernel and --existing exclude each other\n");
        exit(EXIT_USAGE);
    }
}
