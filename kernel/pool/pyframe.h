/* pyframe.h -- jp_frames as Python buffers, without copying the bytes.
 *
 * Shared by the two files that embed Python (pyrt.c in the worker,
 * pool_py.c in the kernel); include it after Python.h.  A frame received
 * from a worker's socket (or the kernel's) is handed to Python as a writable memoryview
 * over the frame itself, so a numpy array unpickled from an out-of-band buffer sits on
 * the message's own memory, and the message is released when the last view goes. */
#ifndef FERRY_PYFRAME_H
#define FERRY_PYFRAME_H

#include "jp.h"

/* Returns a new list of n writable memoryviews, one per frame.  The frames
 * are taken over (each cleared on return, also on failure); the caller
 * still frees the array.  NULL with a Python exception set on failure. */
PyObject *pyframe_list(jp_frame *frames, size_t n);

#endif
