/* pool_py.c -- `_ferry_pool`: the C pool (pool.c) as seen from Python.
 * ferry/_pool.py builds map, submit and Executor on it. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pool_py.h"

#include "pool.h"
#include "pyframe.h"
#include "template_client.h"

static const pool_py_ctx *ctx;

/* The capsule's contents.  close() stops the pool but frees it only with
 * the capsule: the collector thread (and a thread in next_one) holds the
 * capsule while it waits in pool_next, so the pool cannot be freed under
 * it. */
typedef struct holder {
    pool *p;    /* the pool, until the capsule dies */
    int closed; /* close() was called */
} holder;

static void holder_free(PyObject *capsule)
{
    holder *h = PyCapsule_GetPointer(capsule, "ferry.pool");
    if (h) {
        pool_destroy(&h->p);
        free(h);
    }
}

static pool *get_pool(PyObject *capsule)
{
    holder *h = PyCapsule_GetPointer(capsule, "ferry.pool");
    if (h == NULL) {
        return NULL;
    }
    if (h->closed) {
        PyErr_SetString(PyExc_RuntimeError, "this pool was shut down");
        return NULL;
    }
    return h->p;
}

static PyObject *py_create(PyObject *self, PyObject *args)
{
    (void)self;
    int n;
    if (!PyArg_ParseTuple(args, "i", &n)) {
        return NULL;
    }
    holder *h = calloc(1, sizeof *h);
    if (h == NULL) {
        return PyErr_NoMemory();
    }
    jp_error err = {0};
    h->p = pool_new(ctx->runtime_dir, ctx->exe, ctx->io, n, &err);
    if (h->p == NULL) {
        free(h);
        return PyErr_Format(PyExc_RuntimeError, "cannot start a worker pool: %s",
                            err.text);
    }
    return PyCapsule_New(h, "ferry.pool", holder_free);
}

static PyObject *py_close(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *capsule;
    if (!PyArg_ParseTuple(args, "O", &capsule)) {
        return NULL;
    }
    holder *h = PyCapsule_GetPointer(capsule, "ferry.pool");
    if (h == NULL) {
        return NULL;
    }
    pool *p = h->p;
    h->closed = 1;
    Py_BEGIN_ALLOW_THREADS
        pool_stop(p);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_size(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *capsule;
    int n = -1;
    if (!PyArg_ParseTuple(args, "O|i", &capsule, &n)) {
        return NULL;
    }
    pool *p = get_pool(capsule);
    if (p == NULL) {
        return NULL;
    }
    if (n > 0) {
        pool_resize(p, n);
    }
    return PyLong_FromLong(pool_size(p));
}

static PyObject *py_pids(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *capsule;
    if (!PyArg_ParseTuple(args, "O", &capsule)) {
        return NULL;
    }
    pool *p = get_pool(capsule);
    if (p == NULL) {
        return NULL;
    }
    int pids[256];
    int n = pool_pids(p, pids, 256);
    PyObject *list = PyList_New(n);
    for (int i = 0; list && i < n; i++) {
        PyList_SET_ITEM(list, i, PyLong_FromLong(pids[i]));
    }
    return list;
}

/* Copies the bytes of buffer-like obj into f; -1 with a Python error set. */
static int copy_buffer(PyObject *obj, jp_frame *f)
{
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    int rc = jp_frame_copy(f, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    if (rc < 0) {
        PyErr_NoMemory();
    }
    return rc;
}

/* Queues one task whose frames are head (or none) then the parts of body
 * (a list of buffer-likes); -1 with a Python error set. */
static int submit_one(pool *p, uint64_t id, json_t *parent, PyObject *head,
                      PyObject *body, int lone)
{
    if (!PyList_Check(body)) {
        PyErr_SetString(PyExc_TypeError, "a task is a list of buffers");
        return -1;
    }
    size_t first = head ? 1 : 0;
    size_t n = first + (size_t)PyList_GET_SIZE(body);
    jp_frames frames = {calloc(n + 1, sizeof *frames.v), n};
    if (frames.v == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int rc = head ? copy_buffer(head, &frames.v[0]) : 0;
    for (size_t i = first; rc == 0 && i < n; i++) {
        rc = copy_buffer(PyList_GET_ITEM(body, (Py_ssize_t)(i - first)), &frames.v[i]);
    }
    if (rc < 0) {
        jp_frames_clear(&frames);
        return -1;
    }
    if (pool_submit(p, id, parent, &frames, lone) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* The parent of the running request, copied once for all tasks it submits
 * now (the kernel's own may change when the next request starts). */
static json_t *parent_copy(void)
{
    request *r = request_slot_get(ctx->requests);
    json_t *parent = r ? json_deep_copy(request_msg(r)->header) : NULL;
    request_release(&r);
    return parent;
}

/* submit(pool, task_id, head, [[part, ...], ...]): one task per body, ids
 * task_id, task_id + 1, ...; each task's frames are head (bytes-like, or
 * None for no head) then its body's parts. */
static PyObject *py_submit(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *capsule, *head, *bodies;
    unsigned long long id;
    if (!PyArg_ParseTuple(args, "OKOO!", &capsule, &id, &head, &PyList_Type, &bodies)) {
        return NULL;
    }
    pool *p = get_pool(capsule);
    if (p == NULL) {
        return NULL;
    }
    json_t *parent = parent_copy();
    int rc = 0;
    for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(bodies); i++) {
        rc = submit_one(p, id + (uint64_t)i, parent, head == Py_None ? NULL : head,
                        PyList_GET_ITEM(bodies, i), PyList_GET_SIZE(bodies) == 1);
    }
    json_decref(parent);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static const char *const status_names[] = {"ok", "error", "crashed", "cancelled"};

#define NEXT_MAX 256

/* next(pool, timeout_ms) -> [(task_id, status, [bytes...], message, (status,
 * pid, sent, ended, run_us)), ...] (pool_result; monotonic microseconds),
 * every result queued (empty after a timeout); raises EOFError once the
 * pool is closed. */
/* A result as (task_id, status, [frames], message, where); the frames are
 * taken over.  Writable views over the received messages themselves: an
 * array rebuilt from an out-of-band buffer is writable, and not copied. */
static PyObject *result_tuple(pool_result *r)
{
    PyObject *list = pyframe_list(r->frames.v, r->frames.n);
    return list ? Py_BuildValue("KsNs(siLLK)", (unsigned long long)r->task_id,
                                status_names[r->status], list, r->message,
                                status_names[r->status], r->pid, r->sent, r->ended,
                                (unsigned long long)r->run_us)
                : NULL;
}

static PyObject *py_next(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *capsule;
    int timeout;
    if (!PyArg_ParseTuple(args, "Oi", &capsule, &timeout)) {
        return NULL;
    }
    holder *h = PyCapsule_GetPointer(capsule, "ferry.pool");
    if (h == NULL) {
        return NULL;
    }
    pool *p = h->p;
    /* Each pool's collector waits here with the GIL released, so the
     * buffer is the call's own. */
    pool_result *r = PyMem_RawMalloc(NEXT_MAX * sizeof *r);
    if (r == NULL) {
        return PyErr_NoMemory();
    }
    int n;
    Py_BEGIN_ALLOW_THREADS
        n = pool_next(p, r, NEXT_MAX, timeout);
    Py_END_ALLOW_THREADS
    if (n < 0) {
        PyMem_RawFree(r);
        PyErr_SetString(PyExc_EOFError, "pool closed");
        return NULL;
    }
    PyObject *out = PyList_New(n);
    for (int i = 0; i < n; i++) {
        PyObject *item = out ? result_tuple(&r[i]) : NULL;
        pool_result_clear(&r[i]);
        if (item == NULL) {
            Py_CLEAR(out);
        } else {
            PyList_SET_ITEM(out, i, item);
        }
    }
    PyMem_RawFree(r);
    return out;
}

/* next_one(pool, task_id, timeout_ms, sink): see pool_next_one.  Appends
 * the result to the list sink and returns 1, 0 on timeout, None when the
 * thread cannot wait directly.  The result goes into the caller's list here,
 * in C, because a SIGINT's KeyboardInterrupt is raised as soon as a call
 * returns: a result handed back as the return value would be lost with it. */
static PyObject *py_next_one(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *capsule, *sink;
    unsigned long long id;
    int timeout;
    if (!PyArg_ParseTuple(args, "OKiO!", &capsule, &id, &timeout, &PyList_Type, &sink)) {
        return NULL;
    }
    holder *h = PyCapsule_GetPointer(capsule, "ferry.pool");
    if (h == NULL) {
        return NULL;
    }
    pool_result r;
    int n;
    Py_BEGIN_ALLOW_THREADS
        n = pool_next_one(h->p, id, &r, timeout);
    Py_END_ALLOW_THREADS
    if (n == -1) {
        PyErr_SetString(PyExc_EOFError, "pool closed");
        return NULL;
    }
    if (n == -2) {
        Py_RETURN_NONE;
    }
    if (n == 0) {
        return PyLong_FromLong(0);
    }
    PyObject *item = result_tuple(&r);
    pool_result_clear(&r);
    int rc = item ? PyList_Append(sink, item) : -1;
    Py_XDECREF(item);
    return rc < 0 ? NULL : PyLong_FromLong(1);
}

static PyObject *py_cancel(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *capsule, *ids;
    int interrupt = 1;
    if (!PyArg_ParseTuple(args, "OO!|p", &capsule, &PyList_Type, &ids, &interrupt)) {
        return NULL;
    }
    pool *p = get_pool(capsule);
    if (p == NULL) {
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(ids);
    uint64_t *buf = malloc(((size_t)n + 1) * sizeof *buf);
    if (buf == NULL) {
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        buf[i] = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(ids, i));
    }
    if (PyErr_Occurred()) {
        free(buf);
        return NULL;
    }
    pool_cancel(p, buf, (size_t)n, interrupt);
    free(buf);
    Py_RETURN_NONE;
}

/* flush(): returns once worker output forwarded so far is published, so
 * that it comes before whatever the cell prints next. */
static PyObject *py_flush(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    /* A round trip to the publisher thread costs more than a small task:
     * skip it when no worker output came since the last flush. */
    static unsigned long flushed;
    unsigned long count = pool_output_count();
    if (count != flushed) {
        Py_BEGIN_ALLOW_THREADS
            iopub_flush(ctx->io);
        Py_END_ALLOW_THREADS
        flushed = count;
    }
    Py_RETURN_NONE;
}

/* template_start() -> bool: starts the template process (template.h);
 * true when it runs.  From the kernel's main thread only. */
static PyObject *py_template_start(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    int running;
    template_environment();
    Py_BEGIN_ALLOW_THREADS
        running = template_start(ctx->exe, ctx->runtime_dir);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(running);
}

/* template_environment(): the environment the next workers get, as it
 * is now (with the GIL: Python code cannot change it meanwhile). */
static PyObject *py_template_environment(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    template_environment();
    Py_RETURN_NONE;
}

/* template_preload(json_text): what the template should import. */
static PyObject *py_template_preload(PyObject *self, PyObject *args)
{
    (void)self;
    const char *text;
    if (!PyArg_ParseTuple(args, "s", &text)) {
        return NULL;
    }
    template_preload(text);
    Py_RETURN_NONE;
}

/* template_state() -> (state, pid, reason). */
static PyObject *py_template_state(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    pid_t pid;
    const char *why, *state;
    Py_BEGIN_ALLOW_THREADS
        state = template_state(&pid, &why);
    Py_END_ALLOW_THREADS
    return Py_BuildValue("sis", state, (int)pid, why);
}

static PyMethodDef methods[] = {
    {"template_start", py_template_start, METH_NOARGS,
     "template_start() -> bool: start the template process (main thread only)."},
    {"template_environment", py_template_environment, METH_NOARGS,
     "template_environment(): the environment for the next workers, as it is now."},
    {"template_preload", py_template_preload, METH_VARARGS,
     "template_preload(json_text): modules for the template to import."},
    {"template_state", py_template_state, METH_NOARGS,
     "template_state() -> (state, pid, reason)."},
    {"create", py_create, METH_VARARGS, "create(n) -> pool: start n workers."},
    {"close", py_close, METH_VARARGS, "close(pool): stop every worker."},
    {"size", py_size, METH_VARARGS, "size(pool[, n]) -> int: the size, resized to n."},
    {"pids", py_pids, METH_VARARGS, "pids(pool) -> list: process ids of the workers."},
    {"submit", py_submit, METH_VARARGS,
     "submit(pool, first_id, head, [[payload, buffers...], ...]): queue tasks."},
    {"next", py_next, METH_VARARGS, "next(pool, timeout_ms) -> [result, ...]."},
    {"next_one", py_next_one, METH_VARARGS,
     "next_one(pool, task_id, timeout_ms, sink) -> 1 (result appended to sink), 0 "
     "(timeout) or None "
     "(too many threads wait directly)."},
    {"cancel", py_cancel, METH_VARARGS,
     "cancel(pool, [task_id, ...], interrupt=True): drop queued tasks; "
     "with interrupt, SIGINT running ones."},
    {"flush", py_flush, METH_NOARGS,
     "flush(): publish the worker output received so far."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "_ferry_pool",
    "Worker pools driven from C.",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

static PyObject *module_init(void)
{
    return PyModule_Create(&module);
}

int pool_py_register(const pool_py_ctx *c)
{
    ctx = c;
    return PyImport_AppendInittab("_ferry_pool", module_init);
}
