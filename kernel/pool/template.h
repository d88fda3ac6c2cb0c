/* template.h -- the template process: `ferry-kernel --template`, and the
 * messages it exchanges with the kernel (template_client.c).
 *
 * The template is an interpreter initialised as a worker's (ferry._worker)
 * that runs no task: it imports the modules the notebook's cells import,
 * as they import them, and forks new workers on the kernel's request, so
 * that a worker starts in about a millisecond with those modules loaded
 * instead of an exec'd interpreter's 15-20 ms plus the imports.  The
 * workers it forks are the kernel's children (clone with CLONE_PARENT): the
 * pool watches, reaps and names their exit as it does for exec'd ones.
 *
 * The wire is a SOCK_SEQPACKET socketpair, one message a datagram, a kind
 * byte first:
 *   kernel -> template  'I' + JSON {"cwd", "path", "modules"}: import these
 *                       'S' + the kernel's environment ("NAME=value",
 *                           each NUL-terminated); fds [log, the worker's
 *                           end of its link to the pool, status page
 *                           (optional)]: fork a worker, in that environment
 *   template -> kernel  'P' + int32: the forked worker's pid, or -errno
 *                           (-ESTALE: the environment names another ferry
 *                           package than the template runs: exec it)
 *                       'T' + text: a thread runs in the template (started
 *                           by the module named): forking it is unsafe, so
 *                           it exits after saying so */
#ifndef FERRY_POOL_TEMPLATE_H
#define FERRY_POOL_TEMPLATE_H

#include <stddef.h>

#define TEMPLATE_MSG_IMPORT 'I'
#define TEMPLATE_MSG_SPAWN 'S'
#define TEMPLATE_MSG_PID 'P'
#define TEMPLATE_MSG_THREADS 'T'

/* The largest message either side sends (an import list with sys.path). */
#define TEMPLATE_MSG_MAX (256 * 1024)

/* Runs the template on the control socket ctl until the kernel closes it
 * or dies.  args / args_len: the process's argument area, rewritten in the
 * workers it forks so that ps shows them as workers.  The exit status. */
int template_main(int ctl, const char *runtime_dir, const char *python, int level,
                  char *args, size_t args_len);

#endif
