"""sys.stdout and sys.stderr of the kernel.

Text written through them goes straight to the kernel's publisher, in
order with everything else the cell publishes; output written at the file
descriptor level (C extensions, os.system, child processes) is captured
from fds 1 and 2 separately and ordered with it by the publisher.

A forked child (multiprocessing's fork start method) has no publisher
thread: it gets plain writers on fds 1 and 2, whose pipes the kernel reads,
so its output still reaches the cell.
"""
import builtins
import io
import os
import sys

import _ferry_kernel


class _BinaryWriter(io.RawIOBase):
    """sys.stdout.buffer: bytes decoded as UTF-8, as a terminal would show."""

    def __init__(self, text_stream):
        self._text = text_stream

    def writable(self):
        return True

    def write(self, data):
        self._text.write(bytes(data).decode("utf-8", "replace"))
        return len(data)


class KernelStream(io.TextIOBase):
    """A text stream that publishes to the frontend as it is written."""

    def __init__(self, name, fd):
        self._name = name
        self._fd = fd
        self.buffer = _BinaryWriter(self)
        # The C function itself, as an instance attribute: print() then
        # calls straight into the kernel, with no Python frame per write.
        self.write = getattr(_ferry_kernel, f"write_{name}")

    @property
    def name(self):
        return f"<{self._name}>"

    @property
    def encoding(self):
        return "utf-8"

    @property
    def errors(self):
        return "replace"

    def writable(self):
        return True

    def isatty(self):
        return False

    def fileno(self):
        return self._fd

    def flush(self):
        pass


def _plain_streams_in_child():
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8",
                                  errors="replace", line_buffering=True, write_through=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                  errors="backslashreplace", line_buffering=True,
                                  write_through=True)


def _log_stream():
    """The kernel's log (a copy of its original stderr) as a text file: what
    the runner writes to sys.__stderr__ is for the log, not for a cell, and
    fd 2 is the cell's captured stderr."""
    return io.TextIOWrapper(io.FileIO(_ferry_kernel.log_fd(), "w", closefd=False),
                            encoding="utf-8", errors="backslashreplace",
                            line_buffering=True, write_through=True)


def install():
    sys.__stderr__ = _log_stream()
    sys.stdout = KernelStream("stdout", 1)
    sys.stderr = KernelStream("stderr", 2)
    # print() to these streams in one write per call, not one per piece;
    # any other file goes to the builtin (see kernel/pyprint.c).
    builtins.print = _ferry_kernel.print_for(builtins.print, KernelStream)
    os.register_at_fork(after_in_child=_plain_streams_in_child)
