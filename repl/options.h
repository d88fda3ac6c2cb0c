/* options.h -- the REPL's command line: what it says, parsed once. */
#ifndef FERRY_REPL_OPTIONS_H
#define FERRY_REPL_OPTIONS_H

#define FERRY_VERSION "0.1.0"

enum { EXIT_CELL_ERROR = 1, EXIT_USAGE = 2 };

typedef struct options {
    const char *kernel;      /* --kernel NAME, or NULL for ferry's own */
    const char *existing;    /* --existing FILE */
    const char *code;        /* -c CODE */
    const char *save_images; /* --save-images DIR */
    const char *script;      /* FILE */
    char **script_args;      /* ARGS after FILE (NULL-terminated) */
    int startup_timeout;     /* seconds to wait for the kernel */
    int quiet;               /* no banner */
} options;

/* Fills o from argv; --help and --version print and exit 0, a bad option or
 * value says why on stderr and exits EXIT_USAGE. */
void options_parse(int argc, char **argv, options *o);

#endif
