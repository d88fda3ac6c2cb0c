/* paths.h -- where the kernel's own files are. */
#ifndef FERRY_PATHS_H
#define FERRY_PATHS_H

#include <stddef.h>

/* Writes the absolute path of the running binary into buf.  0 or -1. */
int paths_self_exe(char *buf, size_t size);

/* Finds the directory holding the ferry Python package: $FERRY_PACKAGE_DIR,
 * else kernel/python beside a build tree's binary, else PREFIX/lib/ferry
 * beside an installed one.  Writes it into buf (>= PATH_MAX).  0 or -1. */
int paths_package_dir(char *buf, size_t size);

/* Finds the helper program name beside the running binary (a build tree)
 * or in PREFIX/lib/ferry beside an installed one; writes its path into
 * buf.  0 or -1. */
int paths_beside_binary(const char *name, char *buf, size_t size);

#endif
