/* pyrt.c -- embedding CPython: configuration, the _ferry_kernel built-in
 * module, and JSON calls into the runner. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyrt.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "pool/pyframe.h"
#include "pyprint.h"

static pyrt_hooks hooks;
static PyThreadState *main_state; /* saved while the GIL is released */

/* ------------------------------------------- _ferry_kernel (built in) */

static int list_to_frames(PyObject *seq, jp_frame **out, size_t *n_out);

static void frames_free(jp_frame *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        jp_frame_clear(&f[i]);
    }
    free(f);
}

/* publish(msg_type, content_json, metadata_json=None, buffers=()) */
static PyObject *kernel_publish(PyObject *self, PyObject *args)
{
    (void)self;
    const char *msg_type, *content_text, *metadata_text = NULL;
    Py_ssize_t content_len, metadata_len = 0;
    PyObject *buffers = NULL;
    if (!PyArg_ParseTuple(args, "ss#|z#O", &msg_type, &content_text, &content_len,
                          &metadata_text, &metadata_len, &buffers)) {
        return NULL;
    }
    jp_frame *frames = NULL;
    size_t n = 0;
    if (buffers != NULL && buffers != Py_None &&
        list_to_frames(buffers, &frames, &n) < 0) {
        return NULL;
    }
    json_error_t jerr;
    /* NUL is valid in a Python string and in JSON ("\u0000"): a cell may
     * print or raise one. */
    json_t *content =
        json_loadb(content_text, (size_t)content_len, JSON_ALLOW_NUL, &jerr);
    json_t *metadata = metadata_text ? json_loadb(metadata_text, (size_t)metadata_len,
                                                  JSON_ALLOW_NUL, &jerr)
                                     : NULL;
    if (content == NULL || (metadata_text && metadata == NULL)) {
        json_decref(content);
        frames_free(frames, n);
        return PyErr_Format(PyExc_ValueError, "publish: invalid JSON: %s", jerr.text);
    }
    hooks.publish(hooks.ctx, msg_type, content, metadata, frames, n);
    frames_free(frames, n);
    Py_RETURN_NONE;
}

/* log(level, text): a line in the kernel's log (log.h levels), never in a
 * notebook. */
static PyObject *kernel_log(PyObject *self, PyObject *args)
{
    (void)self;
    int level;
    const char *text;
    if (!PyArg_ParseTuple(args, "is", &level, &text)) {
        return NULL;
    }
    if (level < LOG_ERROR || level > LOG_DEBUG) {
        return PyErr_Format(PyExc_ValueError, "log: no level %d", level);
    }
    log_msg((log_level)level, "%s", text);
    Py_RETURN_NONE;
}

/* parent_header() -> JSON text of the request being handled, or None. */
static PyObject *kernel_parent_header(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    json_t *header = hooks.parent ? hooks.parent(hooks.ctx) : NULL;
    char *text = header ? json_dumps(header, JSON_COMPACT) : NULL;
    json_decref(header);
    if (text == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *r = PyUnicode_FromString(text);
    free(text);
    return r;
}

/* sys.stdout.write and sys.stderr.write themselves (METH_O, no tuple, no
 * Python frame): print() calls them twice per line, so they are the hot
 * path of a chatty cell.  Strings only, as TextIOBase.write. */
static PyObject *write_stream(const char *name, PyObject *text)
{
    Py_ssize_t len;
    const char *utf8 = PyUnicode_Check(text) ? PyUnicode_AsUTF8AndSize(text, &len) : NULL;
    if (utf8 == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_TypeError, "write() argument must be str, not %s",
                         Py_TYPE(text)->tp_name);
        }
        return NULL;
    }
    if (len > 0 && hooks.write) {
        hooks.write(hooks.ctx, name, utf8, (size_t)len);
    }
    return PyLong_FromSsize_t(PyUnicode_GET_LENGTH(text));
}

static PyObject *kernel_write_stdout(PyObject *self, PyObject *text)
{
    (void)self;
    return write_stream("stdout", text);
}

static PyObject *kernel_write_stderr(PyObject *self, PyObject *text)
{
    (void)self;
    return write_stream("stderr", text);
}

static void write_to_stream(int stream, const char *text, size_t len)
{
    hooks.write(hooks.ctx, stream ? "stderr" : "stdout", text, len);
}

/* print_for(builtin_print, stream_type): the print() that writes a line to
 * the kernel's streams in one write (pyprint.h); the builtin itself where
 * there is nowhere to write to. */
static PyObject *kernel_print_for(PyObject *module, PyObject *args)
{
    PyObject *builtin, *stream_type;
    if (!PyArg_ParseTuple(args, "OO", &builtin, &stream_type)) {
        return NULL;
    }
    if (hooks.write == NULL) {
        return Py_NewRef(builtin);
    }
    PyObject *writers[2] = {PyObject_GetAttrString(module, "write_stdout"),
                            PyObject_GetAttrString(module, "write_stderr")};
    PyObject *fn = writers[0] && writers[1]
                       ? pyprint_new(builtin, stream_type, writers, write_to_stream)
                       : NULL;
    Py_XDECREF(writers[0]);
    Py_XDECREF(writers[1]);
    return fn;
}

static PyObject *kernel_input(PyObject *self, PyObject *args)
{
    (void)self;
    const char *prompt;
    int password;
    if (!PyArg_ParseTuple(args, "sp", &prompt, &password)) {
        return NULL;
    }
    char *value = NULL;
    jp_error err = {0};
    int rc;
    Py_BEGIN_ALLOW_THREADS
        rc = hooks.input(hooks.ctx, prompt, password, &value, &err);
    Py_END_ALLOW_THREADS
    if (rc == -2) {
        /* The wait was cut by SIGINT: let Python's handler raise. */
        if (PyErr_CheckSignals() < 0) {
            return NULL;
        }
        PyErr_SetNone(PyExc_KeyboardInterrupt);
        return NULL;
    }
    if (rc < 0) {
        return PyErr_Format(PyExc_RuntimeError, "%s", err.text);
    }
    PyObject *result = PyUnicode_DecodeUTF8(value, (Py_ssize_t)strlen(value), "replace");
    free(value);
    return result;
}

static PyObject *kernel_log_fd(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyLong_FromLong(log_fd());
}

static PyMethodDef kernel_methods[] = {
    {"log_fd", kernel_log_fd, METH_NOARGS,
     "log_fd() -> int: the descriptor of the kernel's log (never a cell's output)."},
    {"publish", kernel_publish, METH_VARARGS,
     "publish(msg_type, content_json): send an iopub message under the current request."},
    {"log", kernel_log, METH_VARARGS,
     "log(level, text): a line in the kernel's log (0 error .. 3 debug)."},
    {"parent_header", kernel_parent_header, METH_NOARGS,
     "parent_header() -> JSON text of the request being handled, or None."},
    {"write_stdout", kernel_write_stdout, METH_O,
     "write_stdout(text): sys.stdout.write."},
    {"write_stderr", kernel_write_stderr, METH_O,
     "write_stderr(text): sys.stderr.write."},
    {"print_for", kernel_print_for, METH_VARARGS,
     "print_for(builtin_print, stream_type): print() in one write to kernel streams."},
    {"input", kernel_input, METH_VARARGS,
     "input(prompt, password) -> str: ask the frontend for a line of input."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef kernel_module = {
    PyModuleDef_HEAD_INIT,
    "_ferry_kernel",
    "The ferry kernel's C side.",
    -1,
    kernel_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

static PyObject *kernel_module_init(void)
{
    return PyModule_Create(&kernel_module);
}

/* Logs the pending exception with its traceback and clears it.  Not
 * PyErr_Print: that writes to sys.stderr, the running cell's stream, and
 * the kernel's own errors belong in its log. */
static void log_python_error(const char *what)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *mod = PyImport_ImportModule("traceback");
    PyObject *lines =
        mod && type ? PyObject_CallMethod(mod, "format_exception", "OOO", type,
                                          value ? value : Py_None, tb ? tb : Py_None)
                    : NULL;
    PyObject *empty = PyUnicode_FromString("");
    PyObject *text = lines && empty ? PyUnicode_Join(empty, lines) : NULL;
    const char *utf8 = text ? PyUnicode_AsUTF8(text) : NULL;
    LOG_E("%s:\n%s", what, utf8 ? utf8 : "(the traceback could not be formatted)");
    PyErr_Clear();
    Py_XDECREF(mod);
    Py_XDECREF(lines);
    Py_XDECREF(empty);
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

/* ------------------------------------------------------ initialisation */

static int status_ok(PyStatus st, const char *what, jp_error *err)
{
    if (PyStatus_Exception(st)) {
        jp_error_set(err, "python %s: %s", what, st.err_msg ? st.err_msg : "failed");
        return -1;
    }
    return 0;
}

static int configure(PyConfig *config, const pyrt_config *cfg, jp_error *err)
{
    PyConfig_InitPythonConfig(config);
    /* Cells see sys.argv == [''], as in IPython; our own arguments are not
     * Python's. */
    config->parse_argv = 0;
    /* Unbuffered stdio: every print reaches the captured descriptor at
     * once, in order with output written by C code and child processes. */
    config->buffered_stdio = 0;
    config->install_signal_handlers = 1;
    wchar_t arg0[] = L"";
    wchar_t *empty[] = {arg0};
    if (status_ok(PyConfig_SetArgv(config, 1, empty), "argv", err) < 0 ||
        status_ok(PyConfig_SetBytesString(config, &config->program_name, cfg->python),
                  "program name", err) < 0 ||
        /* sys.executable names a real interpreter: spawn starts it. */
        status_ok(PyConfig_SetBytesString(config, &config->executable, cfg->python),
                  "executable", err) < 0) {
        return -1;
    }
    return 0;
}

/* Puts the kernel's directory first on sys.path (so `import helper` finds
 * a module beside the notebook) and the ferry package at the end. */
static int setup_sys_path(const pyrt_config *cfg)
{
    PyObject *path = PySys_GetObject("path"); /* borrowed */
    PyObject *cwd = PyUnicode_FromString("");
    PyObject *pkg = PyUnicode_DecodeFSDefault(cfg->package_dir);
    int rc = -1;
    if (path && cwd && pkg && PyList_Insert(path, 0, cwd) == 0 &&
        PyList_Append(path, pkg) == 0) {
        rc = 0;
    }
    Py_XDECREF(cwd);
    Py_XDECREF(pkg);
    return rc;
}

static PyObject *runner;       /* the role's entry module */
static const char *entry_name; /* its name, for errors */

int pyrt_init(const pyrt_config *cfg, jp_error *err)
{
    hooks = cfg->hooks;
    if (PyImport_AppendInittab("_ferry_kernel", kernel_module_init) < 0) {
        jp_error_set(err, "cannot register _ferry_kernel");
        return -1;
    }
    PyConfig config;
    if (configure(&config, cfg, err) < 0) {
        PyConfig_Clear(&config);
        return -1;
    }
    PyStatus st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (status_ok(st, "initialisation", err) < 0) {
        return -1;
    }
    if (setup_sys_path(cfg) < 0) {
        jp_error_set(err, "cannot set sys.path");
        PyErr_Clear();
        return -1;
    }
    entry_name = cfg->entry;
    runner = PyImport_ImportModule(cfg->entry);
    PyObject *r = runner ? PyObject_CallMethod(runner, "start", "sss", cfg->role,
                                               cfg->runtime_dir, cfg->python)
                         : NULL;
    if (r == NULL) {
        log_python_error("the Python runner failed to start");
        jp_error_set(err, "cannot start the Python runner (%s in %s)", cfg->entry,
                     cfg->package_dir);
        return -1;
    }
    Py_DECREF(r);
    main_state = PyEval_SaveThread();
    return 0;
}

/* Runs Python's pending signal handlers and drops what they raised: a SIGINT
 * that arrived while the kernel (or a worker) was idle must not interrupt the
 * request that comes next.  The GIL is held. */
static void drop_pending_signals(void)
{
    if (PyErr_CheckSignals() < 0) {
        PyErr_Clear();
    }
}

json_t *pyrt_call(const char *func, json_t *arg, jp_error *err)
{
    char *text = json_dumps(arg, JSON_COMPACT);
    json_t *result = NULL;
    if (text == NULL) {
        jp_error_set(err, "cannot serialise arguments for %s", func);
        return NULL;
    }
    PyGILState_STATE gil = PyGILState_Ensure();
    drop_pending_signals();
    PyObject *r = PyObject_CallMethod(runner, func, "s", text);
    free(text);
    if (r == NULL) {
        /* The runner catches everything a cell raises: this is our bug. */
        log_python_error(func);
        jp_error_set(err, "internal error in %s.%s", entry_name, func);
        goto done;
    }
    Py_ssize_t len;
    const char *out = PyUnicode_AsUTF8AndSize(r, &len);
    if (out == NULL) {
        log_python_error(func);
        jp_error_set(err, "%s.%s did not return text", entry_name, func);
        goto done;
    }
    json_error_t jerr;
    result = json_loadb(out, (size_t)len, JSON_ALLOW_NUL, &jerr);
    if (result == NULL) {
        jp_error_set(err, "%s.%s returned invalid JSON: %s", entry_name, func, jerr.text);
    }
done:
    Py_XDECREF(r);
    PyGILState_Release(gil);
    return result;
}

/* Copies each bytes-like item of seq into a frame.  The one copy on the way
 * out: the io thread sends while the next task may change the objects. */
static int list_to_frames(PyObject *seq, jp_frame **out, size_t *n_out)
{
    PyObject *fast = PySequence_Fast(seq, "expected a list of bytes");
    if (fast == NULL) {
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    jp_frame *f = calloc((size_t)n + 1, sizeof *f);
    int rc = f ? 0 : -1;
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        Py_buffer view;
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(fast, i), &view, PyBUF_SIMPLE) <
            0) {
            rc = -1;
            break;
        }
        rc = jp_frame_copy(&f[i], view.buf, (size_t)view.len);
        PyBuffer_Release(&view);
    }
    Py_DECREF(fast);
    if (rc < 0) {
        jp_frames_clear(&(jp_frames){f, f ? (size_t)n : 0});
        return -1;
    }
    *out = f;
    *n_out = (size_t)n;
    return 0;
}

void pyrt_drop_signals(void)
{
    PyGILState_STATE gil = PyGILState_Ensure();
    drop_pending_signals();
    PyGILState_Release(gil);
}

int pyrt_call_frames(const char *func, jp_frame *in, size_t n_in, jp_frame **out,
                     size_t *n_out, jp_error *err)
{
    int rc = -1;
    *out = NULL;
    *n_out = 0;
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *args = pyframe_list(in, n_in);
    PyObject *r = args ? PyObject_CallMethod(runner, func, "O", args) : NULL;
    PyObject *ok = NULL, *frames = NULL;
    if (r == NULL || !PyArg_ParseTuple(r, "OO", &ok, &frames) ||
        list_to_frames(frames, out, n_out) < 0) {
        log_python_error(func);
        jp_error_set(err, "internal error in %s.%s", entry_name, func);
        goto done;
    }
    rc = PyObject_IsTrue(ok) ? 1 : 0;
done:
    Py_XDECREF(args);
    Py_XDECREF(r);
    PyGILState_Release(gil);
    return rc;
}

pid_t pyrt_fork(unsigned long flags)
{
    PyGILState_STATE gil = PyGILState_Ensure();
    PyOS_BeforeFork();
    /* The raw system call: glibc's fork() takes no clone flags.  What it
     * skips: the pthread_atfork handlers (they guard locks other threads
     * hold: the caller has none) and the new thread id in glibc's thread
     * descriptor (used by pthread_kill of a thread of the child's own; CPython
     * and ferry's worker signal their threads by process id, not by it). */
    pid_t pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid == 0) {
        PyOS_AfterFork_Child();
    } else {
        PyOS_AfterFork_Parent();
    }
    PyGILState_Release(gil);
    return pid;
}

void pyrt_finalize(void)
{
    if (main_state == NULL) {
        return;
    }
    /* jupyter_client interrupts a kernel (SIGINT to its process group) before
     * every shutdown request.  Taken while idle, that SIGINT is still pending
     * in Python: it would raise KeyboardInterrupt in the first Python code
     * finalisation runs - the exit handlers that stop ProcessPoolExecutor and
     * Pool workers - and the exit would then wait forever on workers no one
     * told to stop.  Drop it, and keep any later one out. */
    sigset_t sigint;
    sigemptyset(&sigint);
    sigaddset(&sigint, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigint, NULL);
    PyEval_RestoreThread(main_state);
    main_state = NULL;
    if (PyErr_CheckSignals() < 0) {
        PyErr_Clear();
    }
    Py_CLEAR(runner);
    if (Py_FinalizeEx() < 0) {
        LOG_W("python finalisation reported an error");
    }
}
