/* pool_py.h -- the `_ferry_pool` built-in module: pools for Python. */
#ifndef FERRY_POOL_PY_H
#define FERRY_POOL_PY_H

#include "iopub.h"
#include "jp.h"
#include "request.h"

typedef struct pool_py_ctx {
    const char *runtime_dir; /* the re-export module's, for the workers */
    const char *exe;         /* ferry-kernel, started with --worker */
    iopub *io;               /* receives worker output */
    request_slot *requests;  /* the request whose cell runs: its tasks' parent */
} pool_py_ctx;

/* Registers _ferry_pool; call before pyrt_init.  ctx must outlive Python. */
int pool_py_register(const pool_py_ctx *ctx);

#endif
