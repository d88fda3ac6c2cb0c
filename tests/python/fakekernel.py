"""A stand-in for ferry's cell runner, for testing the re-export in Python.

It behaves like the kernel: a fresh module is the notebook's ``__main__`` (no
``__file__``, ``__spec__`` None), each cell is parsed and its top-level
statements run one at a time under the filename ``Cell In[N]`` (the body of an
``if __name__ == "__main__":`` block is hoisted and run the same way), the cell
source is registered in linecache, and ``Recorder.record()`` is called after
each statement that ran without raising.

Two uses:

* In-process, for rule tests: ``FakeKernel(runtime_dir)`` with a private
  ``__main__`` module that is NOT installed in sys.modules.
* As a program, for behaviour tests::

      /usr/bin/python3 fakekernel.py SCRIPT.json

  SCRIPT.json is ``{"runtime_dir": ..., "results": ..., "cells": [[label,
  source], ...], "cell_timeout": seconds}``.  The module replaces
  ``sys.modules['__main__']``, installs the hooks, runs the cells in order and
  appends one JSON line per cell to the results file: ``{"label", "ok",
  "out", "error", "traceback"}``.  A cell that takes longer than cell_timeout
  is interrupted (SIGALRM) and reported with error "CellTimeout", so a hang
  is a failed cell, not a stuck test.
"""

import ast
import builtins
import contextlib
import io
import json
import linecache
import os
import signal
import sys
import traceback
import types

HERE = os.path.dirname(os.path.abspath(__file__))
KERNEL_PYTHON = os.path.join(os.path.dirname(os.path.dirname(HERE)), "kernel", "python")
if KERNEL_PYTHON not in sys.path:
    # As the kernel does: put the package directory on sys.path itself, so
    # spawn and forkserver children inherit it through the preparation data.
    sys.path.insert(0, KERNEL_PYTHON)

from ferry import _reexport  # noqa: E402

import __future__  # noqa: E402


def new_main():
    main = types.ModuleType("__main__")
    main.__spec__ = None
    main.__builtins__ = builtins
    return main


class FakeKernel:
    def __init__(self, runtime_dir, main=None):
        self.main = main if main is not None else new_main()
        self.rec = _reexport.Recorder(runtime_dir, self.main)
        self.count = 0
        self.flags = 0  # __future__ features seen so far, as IPython keeps them

    @property
    def ns(self):
        return self.main.__dict__

    def run_cell(self, source):
        """Run one cell; re-raises the first exception, like a kernel
        reporting an error (the statements before it stay in effect)."""
        self.count += 1
        filename = "Cell In[%d]" % self.count
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        tree = ast.parse(source, filename)
        self.rec.begin_cell(source, filename, tree)
        self._run_body(tree.body, source, filename)
        return filename

    def _run_body(self, body, source, filename):
        for node in body:
            if _reexport.is_main_guard(node):
                self._run_body(node.body, source, filename)
                continue
            code = compile(ast.Module(body=[node], type_ignores=[]), filename,
                           "exec", self.flags, dont_inherit=True)
            exec(code, self.main.__dict__)
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                for alias in node.names:
                    self.flags |= getattr(__future__, alias.name).compiler_flag
            self.rec.record(node, source, filename)


class CellTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise CellTimeout("cell did not finish in time (a hang?)")


def main(argv):
    with open(argv[1]) as f:
        script = json.load(f)
    kernel = FakeKernel(script["runtime_dir"])
    sys.modules["__main__"] = kernel.main
    kernel.rec.install_hooks()
    signal.signal(signal.SIGALRM, _on_alarm)
    timeout = int(script.get("cell_timeout", 20))
    with open(script["results"], "a") as results:
        for label, source in script["cells"]:
            out = io.StringIO()
            record = {"label": label, "ok": True, "out": "", "error": None,
                      "traceback": None}
            signal.alarm(timeout)
            try:
                with contextlib.redirect_stdout(out):
                    kernel.run_cell(source)
            except BaseException as exc:  # noqa: B036 - report everything
                record["ok"] = False
                record["error"] = "%s: %s" % (type(exc).__name__, exc)
                record["traceback"] = "".join(traceback.format_exception(exc))
            finally:
                signal.alarm(0)
            record["out"] = out.getvalue()
            results.write(json.dumps(record) + "\n")
            results.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
