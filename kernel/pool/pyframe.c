/* pyframe.c -- a minimal Python object that owns one jp_frame and exposes
 * its bytes through the buffer protocol (see pyframe.h). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyframe.h"

typedef struct frame_object {
    PyObject_HEAD jp_frame frame; /* owned; cleared when the object dies */
} frame_object;

static char empty[1]; /* what an empty frame's views point at */

static int frame_getbuffer(PyObject *self, Py_buffer *view, int flags)
{
    frame_object *f = (frame_object *)self;
    void *data = f->frame.size ? f->frame.data : empty;
    return PyBuffer_FillInfo(view, self, data, (Py_ssize_t)f->frame.size, 0, flags);
}

static void frame_dealloc(PyObject *self)
{
    frame_object *f = (frame_object *)self;
    jp_frame_clear(&f->frame);
    Py_TYPE(self)->tp_free(self);
}

static PyBufferProcs frame_as_buffer = {
    .bf_getbuffer = frame_getbuffer,
};

static PyTypeObject frame_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_ferry_frame",
    .tp_doc = "Bytes received by ferry, handed on without a copy.",
    .tp_basicsize = sizeof(frame_object),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = frame_dealloc,
    .tp_as_buffer = &frame_as_buffer,
};

/* Wraps one frame (taken over) in a memoryview; NULL on failure. */
static PyObject *frame_view(jp_frame *frame)
{
    frame_object *f = PyObject_New(frame_object, &frame_type);
    if (f == NULL) {
        jp_frame_clear(frame);
        return NULL;
    }
    f->frame = *frame;
    memset(frame, 0, sizeof *frame);
    PyObject *view = PyMemoryView_FromObject((PyObject *)f);
    Py_DECREF(f); /* the view holds it */
    return view;
}

PyObject *pyframe_list(jp_frame *frames, size_t n)
{
    PyObject *list = NULL;
    if (PyType_Ready(&frame_type) == 0) {
        list = PyList_New((Py_ssize_t)n);
    }
    for (size_t i = 0; i < n; i++) {
        PyObject *view = list ? frame_view(&frames[i]) : NULL;
        if (view == NULL) {
            Py_CLEAR(list);
            jp_frame_clear(&frames[i]);
            continue;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, view);
    }
    return list;
}
