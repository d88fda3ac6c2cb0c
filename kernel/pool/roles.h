/* roles.h -- the pool's two processes as a command line of ferry-kernel:
 * a worker (`--worker`) and the template (`--template`), both started by
 * exec from the kernel's pool (procs.c, template_client.c).  They run the
 * kernel's own binary, so the code pages of all three are one copy in the
 * page cache. */
#ifndef FERRY_ROLES_H
#define FERRY_ROLES_H

/* Whether arg (argv[1]) names one of the roles. */
int roles_is_role(const char *arg);

/* Runs the role argv[1] names with the rest of its arguments; returns the
 * process's exit status.  python is the interpreter children should run. */
int roles_main(int argc, char **argv, const char *python);

#endif
