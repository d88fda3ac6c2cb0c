/* roles.c -- a worker's and the template's command lines (roles.h). */
#include "roles.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "template.h"
#include "worker.h"

/* A role's arguments: option and value in pairs after the role. */
typedef struct role_args {
    int level;               /* --log-level, the kernel's */
    const char *runtime_dir; /* --runtime-dir */
    int fd;                  /* the role's own fd: --conn-fd or --control-fd */
    int status_fd;           /* --status-fd (a worker's status page), or -1 */
} role_args;

static role_args parse_args(int argc, char **argv, const char *fd_flag)
{
    role_args a = {.level = LOG_WARN, .runtime_dir = ".", .fd = -1, .status_fd = -1};
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *name = argv[i], *value = argv[i + 1];
        if (strcmp(name, "--log-level") == 0 && log_level_parse(value) >= 0) {
            a.level = log_level_parse(value);
        } else if (strcmp(name, "--status-fd") == 0) {
            a.status_fd = atoi(value);
        } else if (strcmp(name, fd_flag) == 0) {
            a.fd = atoi(value);
        } else if (strcmp(name, "--runtime-dir") == 0) {
            a.runtime_dir = value;
        }
    }
    /* The log goes to a copy of stderr (the kernel's log: the pool hands
     * its log fd to both roles as fd 2). */
    int fd = dup(2);
    log_init(fd >= 0 ? fd : 2, (log_level)a.level);
    return a;
}

/* --worker --conn-fd N --runtime-dir DIR [--log-level L] [--status-fd N],
 * as started by a pool (procs.c): fd N is the worker's end of its socket to
 * the kernel. */
static int worker_role(int argc, char **argv, const char *python)
{
    role_args a = parse_args(argc, argv, "--conn-fd");
    if (a.fd < 0) {
        LOG_E("worker: no --conn-fd: a worker is started by its kernel's pool");
        return 2;
    }
    return worker_run(a.fd, a.runtime_dir, python, a.status_fd);
}

/* --template --control-fd N --runtime-dir D [--log-level L], as started by
 * the kernel (template_client.c). */
static int template_role(int argc, char **argv, const char *python)
{
    role_args a = parse_args(argc, argv, "--control-fd");
    if (a.fd < 0) {
        LOG_E("template: no --control-fd");
        return 2;
    }
    /* The argument strings lie end to end: the workers it forks rewrite
     * them. */
    char *end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
    return template_main(a.fd, a.runtime_dir, python, a.level, argv[0],
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
