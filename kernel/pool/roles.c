/* roles.c -- a worker's and the template's command lines (roles.h). */
#include "roles.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "template.h"
#include "worker.h"

/* Opens the log on a copy of stderr (the kernel's log: the pool hands its
 * log fd to both roles as fd 2) at the level the kernel passed on. */
static void open_log(int level)
{
    int fd = dup(2);
    log_init(fd >= 0 ? fd : 2, (log_level)level);
}

/* --worker --conn-fd N --runtime-dir DIR [--log-level L] [--status-fd N],
 * as started by a pool (procs.c): fd N is the worker's end of its socket to
 * the kernel. */
static int worker_role(int argc, char **argv, const char *python)
{
    int level = LOG_WARN, status_fd = -1, conn_fd = -1;
    const char *runtime_dir = ".";
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--log-level") == 0 && log_level_parse(argv[i + 1]) >= 0) {
            level = log_level_parse(argv[i + 1]);
        } else if (strcmp(argv[i], "--status-fd") == 0) {
            status_fd = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--conn-fd") == 0) {
            conn_fd = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--runtime-dir") == 0) {
            runtime_dir = argv[i + 1];
        }
    }
    open_log(level);
    if (conn_fd < 0) {
        LOG_E("worker: no --conn-fd: a worker is started by its kernel's pool");
        return 2;
    }
    return worker_run(conn_fd, runtime_dir, python, status_fd);
}

/* --template --control-fd N --runtime-dir D [--log-level L], as started by
 * the kernel (template_client.c). */
static int template_role(int argc, char **argv, const char *python)
{
    int level = LOG_WARN, ctl = -1;
    const char *runtime_dir = ".";
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--log-level") == 0 && log_level_parse(argv[i + 1]) >= 0) {
            level = log_level_parse(argv[i + 1]);
        } else if (strcmp(argv[i], "--control-fd") == 0) {
            ctl = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--runtime-dir") == 0) {
            runtime_dir = argv[i + 1];
        }
    }
    open_log(level);
    if (ctl < 0) {
        LOG_E("template: no --control-fd");
        return 2;
    }
    /* The argument strings lie end to end: the workers it forks rewrite
     * them. */
    char *end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
    return template_main(ctl, runtime_dir, python, level, argv[0],
                         (size_t)(end - argv[0]));
}

int roles_is_role(const char *arg)
{
    return arg && (strcmp(arg, "--worker") == 0 || strcmp(arg, "--template") == 0);
}

int roles_main(int argc, char **argv, const char *python)
{
    if (strcmp(argv[1], "--worker") == 0) {
        return worker_role(argc, argv, python);
    }
    return template_role(argc, argv, python);
}
