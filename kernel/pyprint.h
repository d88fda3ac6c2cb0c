/* pyprint.h -- print() to the kernel's own streams in one write.
 *
 * print(i) calls sys.stdout.write twice ("i", then "\n"), and every write
 * to a kernel stream costs a look at the capture pipes (a system call), so
 * a chatty cell pays for two per line.  pyprint_new makes a stand-in for
 * builtins.print that formats the line and writes it once when the file is
 * one of the kernel's streams, and hands every other call to the builtin.
 * Include it after Python.h. */
#ifndef FERRY_PYPRINT_H
#define FERRY_PYPRINT_H

#include <stddef.h>

/* Writes UTF-8 text to stream 0 (stdout) or 1 (stderr) of the kernel. */
typedef void (*pyprint_write_fn)(int stream, const char *text, size_t len);

/* Returns a new reference to a built-in function that behaves as
 * builtin_print (a builtin function object: its name, module, __self__,
 * signature and doc are copied), or NULL with a Python exception set.
 * stream_type is the exact type of the kernel's streams, whose instances
 * have write == writers[0] (stdout) or writers[1] (stderr); text written
 * through them goes to write.  Called once per process; the references are
 * kept for its lifetime. */
PyObject *pyprint_new(PyObject *builtin_print, PyObject *stream_type,
                      PyObject *const writers[2], pyprint_write_fn write);

#endif
