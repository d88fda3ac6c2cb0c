/* pyprint.c -- print() to the kernel's own streams in one write.
 *
 * builtin_print (Python/bltinmodule.c) does, for file = sys.stdout when not
 * given:
 *
 *     for each argument i:  if i > 0: file.write(sep or " ")
 *                           file.write(str(arg_i))
 *     file.write(end or "\n");  if flush: file.flush()
 *
 * looking file.write up again for every write, and calling str() between
 * writes.  The stand-in below keeps that order of effects exactly:
 *  - it handles a call only when the file is one of the kernel's streams
 *    (exact type, write still the kernel's), sep and end are None or exact
 *    str and flush is None, a bool or an int; anything else (another file,
 *    a redirect, a str subclass, an unknown keyword) goes to the builtin;
 *  - it formats arguments whose str() runs no user code (str, int, float,
 *    bool, None) into one buffer, and writes it once: nothing can happen
 *    between the builtin's writes of such pieces, so one write is the same;
 *  - at the first other argument, it writes what it has (the sep before
 *    that argument included, as the builtin writes it before the str()
 *    call) and does the rest as the builtin does, so output a __str__
 *    makes, or an exception it raises, lands where print() puts it;
 *  - on an error (a str too large to convert, a lone surrogate) what was
 *    formatted before it is written, as the builtin would have. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyprint.h"

#include <string.h>

static struct {
    PyObject *fn;           /* the stand-in, once made */
    PyObject *builtin;      /* builtins.print */
    PyObject *stream_type;  /* the kernel streams' type */
    PyObject *writers[2];   /* their write functions: stdout, stderr */
    pyprint_write_fn write; /* where their text goes */
    PyObject *sys;          /* the sys module */
    PyObject *s_stdout;     /* interned "stdout" */
    PyObject *s_write;      /* interned "write" */
    PyObject *s_flush;      /* interned "flush" */
    PyMethodDef def;        /* the stand-in's method: the builtin's doc */
} P;

/* ----------------------------------------------------------- the line */

typedef struct line {
    char *text;      /* small, or a PyMem block */
    size_t len;      /* bytes used */
    size_t cap;      /* bytes available at text */
    char small[256]; /* most lines fit here */
} line;

static void line_init(line *l)
{
    l->text = l->small;
    l->len = 0;
    l->cap = sizeof l->small;
}

static void line_free(line *l)
{
    if (l->text != l->small) {
        PyMem_Free(l->text);
    }
}

static int line_add(line *l, const char *s, size_t n)
{
    if (l->cap - l->len < n) {
        if (n > (size_t)PY_SSIZE_T_MAX / 2 - l->len) {
            PyErr_NoMemory();
            return -1;
        }
        size_t cap = l->cap;
        while (cap - l->len < n) {
            cap *= 2;
        }
        char *grown = PyMem_Malloc(cap);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(grown, l->text, l->len);
        line_free(l);
        l->text = grown;
        l->cap = cap;
    }
    memcpy(l->text + l->len, s, n);
    l->len += n;
    return 0;
}

static int line_add_str(line *l, PyObject *s)
{
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(s, &n);
    return utf8 ? line_add(l, utf8, (size_t)n) : -1;
}

/* Whether str(o) runs no user code. */
static int str_is_plain(PyObject *o)
{
    return PyUnicode_CheckExact(o) || PyLong_CheckExact(o) || PyFloat_CheckExact(o) ||
           PyBool_Check(o) || o == Py_None;
}

/* Adds str(o) for a plain o. */
static int line_add_plain(line *l, PyObject *o)
{
    if (PyUnicode_CheckExact(o)) {
        return line_add_str(l, o);
    }
    PyObject *s = PyObject_Str(o);
    int rc = s ? line_add_str(l, s) : -1;
    Py_XDECREF(s);
    return rc;
}

/* Formats the arguments up to the first whose str() is not plain, each
 * after sep (NULL: " "); the sep before that argument is added too, as the
 * builtin writes it before calling str().  *done = arguments formatted. */
static int line_add_plain_args(line *l, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *sep, Py_ssize_t *done)
{
    for (Py_ssize_t i = 0; i < nargs; i++) {
        if (i > 0 && (sep ? line_add_str(l, sep) : line_add(l, " ", 1)) < 0) {
            return -1;
        }
        if (!str_is_plain(args[i])) {
            *done = i;
            return 0;
        }
        if (line_add_plain(l, args[i]) < 0) {
            return -1;
        }
    }
    *done = nargs;
    return 0;
}

/* ------------------------------------------------------ print() itself */

typedef struct print_opts {
    PyObject *sep;  /* exact str, or NULL for " " (borrowed) */
    PyObject *end;  /* exact str, or NULL for "\n" (borrowed) */
    PyObject *file; /* as given, or NULL (borrowed) */
    int flush;      /* flush's truth */
} print_opts;

/* Reads the keywords when they are ones the stand-in handles; returns -1
 * (no exception set) for anything the builtin must see. */
static int opts_parse(PyObject *const *values, PyObject *kwnames, print_opts *o)
{
    *o = (print_opts){NULL, NULL, NULL, 0};
    Py_ssize_t n = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i), *v = values[i];
        if (PyUnicode_CompareWithASCIIString(name, "sep") == 0) {
            o->sep = v;
        } else if (PyUnicode_CompareWithASCIIString(name, "end") == 0) {
            o->end = v;
        } else if (PyUnicode_CompareWithASCIIString(name, "file") == 0) {
            o->file = v;
        } else if (PyUnicode_CompareWithASCIIString(name, "flush") == 0 &&
                   (v == Py_None || PyBool_Check(v) || PyLong_CheckExact(v))) {
            o->flush = PyObject_IsTrue(v); /* runs no user code for these */
        } else {
            return -1;
        }
    }
    o->sep = o->sep == Py_None ? NULL : o->sep;
    o->end = o->end == Py_None ? NULL : o->end;
    if ((o->sep && !PyUnicode_CheckExact(o->sep)) ||
        (o->end && !PyUnicode_CheckExact(o->end))) {
        return -1;
    }
    return 0;
}

/* The kernel stream (0 stdout, 1 stderr) that file (NULL or None:
 * sys.stdout) is, with *stream_file a new reference to it; -1 when it is
 * something else. */
static int kernel_stream(PyObject *file, PyObject **stream_file)
{
    PyObject *f =
        file && file != Py_None ? Py_NewRef(file) : PyObject_GetAttr(P.sys, P.s_stdout);
    if (f == NULL) {
        PyErr_Clear(); /* the builtin says "lost sys.stdout" */
        return -1;
    }
    PyObject *writer = Py_TYPE(f) == (PyTypeObject *)P.stream_type
                           ? PyObject_GetAttr(f, P.s_write)
                           : NULL;
    int stream = writer == P.writers[0] ? 0 : writer == P.writers[1] ? 1 : -1;
    if (writer == NULL) {
        PyErr_Clear();
        stream = -1;
    }
    Py_XDECREF(writer);
    if (stream < 0) {
        Py_DECREF(f);
        return -1;
    }
    *stream_file = f;
    return stream;
}

/* The builtin's loop from an argument whose sep is already written. */
static int print_rest(PyObject *file, PyObject *const *args, Py_ssize_t n, PyObject *sep,
                      PyObject *end)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i > 0 && (sep ? PyFile_WriteObject(sep, file, Py_PRINT_RAW)
                          : PyFile_WriteString(" ", file)) < 0) {
            return -1;
        }
        if (PyFile_WriteObject(args[i], file, Py_PRINT_RAW) < 0) {
            return -1;
        }
    }
    return end ? PyFile_WriteObject(end, file, Py_PRINT_RAW)
               : PyFile_WriteString("\n", file);
}

static int call_flush(PyObject *file)
{
    PyObject *r = PyObject_CallMethodNoArgs(file, P.s_flush);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

static PyObject *print_fast(PyObject *self, PyObject *const *args, size_t nargsf,
                            PyObject *kwnames)
{
    (void)self;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    print_opts o;
    PyObject *file = NULL;
    int stream =
        opts_parse(args + nargs, kwnames, &o) == 0 ? kernel_stream(o.file, &file) : -1;
    if (stream < 0) {
        return PyObject_Vectorcall(P.builtin, args, nargsf, kwnames);
    }
    line l;
    line_init(&l);
    Py_ssize_t done = 0;
    int rc = line_add_plain_args(&l, args, nargs, o.sep, &done);
    if (rc == 0 && done == nargs) {
        rc = o.end ? line_add_str(&l, o.end) : line_add(&l, "\n", 1);
    }
    if (l.len > 0) {
        P.write(stream, l.text, l.len); /* also what came before an error */
    }
    line_free(&l);
    if (rc == 0 && done < nargs) {
        rc = print_rest(file, args + done, nargs - done, o.sep, o.end);
    }
    if (rc == 0 && o.flush) {
        rc = call_flush(file);
    }
    Py_DECREF(file);
    return rc == 0 ? Py_NewRef(Py_None) : NULL;
}

/* ------------------------------------------------------------ set-up */

PyObject *pyprint_new(PyObject *builtin_print, PyObject *stream_type,
                      PyObject *const writers[2], pyprint_write_fn write)
{
    if (P.fn) {
        return Py_NewRef(P.fn);
    }
    if (!PyCFunction_Check(builtin_print) || !PyType_Check(stream_type)) {
        PyErr_SetString(PyExc_TypeError, "expected the builtin print and a type");
        return NULL;
    }
    P.s_stdout = PyUnicode_InternFromString("stdout");
    P.s_write = PyUnicode_InternFromString("write");
    P.s_flush = PyUnicode_InternFromString("flush");
    P.sys = PyImport_ImportModule("sys");
    PyObject *module_name = PyObject_GetAttrString(builtin_print, "__module__");
    if (!P.s_stdout || !P.s_write || !P.s_flush || !P.sys || !module_name) {
        Py_XDECREF(module_name);
        return NULL;
    }
    /* The builtin's doc carries its __text_signature__; __self__ is the
     * builtins module, as for the builtin, so pickle and inspect see a
     * builtins.print. */
    P.def = (PyMethodDef){
        "print",
        (PyCFunction)(void (*)(void))print_fast,
        METH_FASTCALL | METH_KEYWORDS,
        ((PyCFunctionObject *)builtin_print)->m_ml->ml_doc,
    };
    P.fn = PyCMethod_New(&P.def, PyCFunction_GET_SELF(builtin_print), module_name, NULL);
    Py_DECREF(module_name);
    if (P.fn == NULL) {
        return NULL;
    }
    P.builtin = Py_NewRef(builtin_print);
    P.stream_type = Py_NewRef(stream_type);
    P.writers[0] = Py_NewRef(writers[0]);
    P.writers[1] = Py_NewRef(writers[1]);
    P.write = write;
    return Py_NewRef(P.fn);
}
