/* kernelspec.h -- finding a kernel and how to start it.
 *
 * A kernelspec is a directory KERNELS/NAME holding kernel.json:
 *   {"argv": ["python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
 *    "display_name": "...", "language": "python",
 *    "interrupt_mode": "signal" | "message",   (optional, default signal)
 *    "env": {"VAR": "value with ${OTHER}"}}     (optional)
 * searched in $JUPYTER_PATH/kernels (each entry), $JUPYTER_DATA_DIR/kernels or
 * ~/.local/share/jupyter/kernels, /usr/local/share/jupyter/kernels and
 * /usr/share/jupyter/kernels, first match wins (jupyter_client's order).
 */
#ifndef REPL_KERNELSPEC_H
#define REPL_KERNELSPEC_H

#include "jp.h"

typedef struct kernelspec {
    char *name;           /* kernelspec name ("python3"), owned */
    char *resource_dir;   /* directory holding kernel.json, owned; may be NULL */
    char **argv;          /* NULL-terminated, owned, still with {connection_file} */
    char **env;           /* NULL-terminated "VAR=value" list, owned; may be empty */
    int interrupt_signal; /* 1: interrupt by SIGINT, 0: by interrupt_request */
} kernelspec;

/* Looks up the kernelspec called name.  Returns a new spec the caller frees
 * with kernelspec_destroy, or NULL with the reason in err. */
kernelspec *kernelspec_find(const char *name, jp_error *err) JP_WUR;

/* The default kernel: ferry-kernel in the directory of this executable, else
 * the "ferry" kernelspec.  Caller frees. */
kernelspec *kernelspec_default(jp_error *err) JP_WUR;

void kernelspec_destroy(kernelspec **spec);

/* A copy of spec->argv with {connection_file} and {resource_dir} replaced.
 * Caller frees each string and the array (kernelspec_free_strv). */
char **kernelspec_argv(const kernelspec *spec, const char *connection_file) JP_WUR;

void kernelspec_free_strv(char **v);

#endif /* REPL_KERNELSPEC_H */
