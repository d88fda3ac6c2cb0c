"""Running cells: one top-level statement at a time, as IPython does.

Each statement that completes is handed to the re-export recorder, so a
pool dispatched later in the same cell already sees the definitions above
it.  `if __name__ == "__main__":` blocks run their bodies statement by
statement too, so what they define is exported like any other definition.
"""
import ast
import builtins
import getpass
import linecache
import sys
import types
import warnings

import _ferry_kernel

from . import _display, _interrupt, _streams, _traceback
from ._transform import transform

try:
    from . import _reexport
except ImportError:  # the re-export module is optional for the runner
    _reexport = None

_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE, without importing inspect


# IPython's InteractiveShell.cache_size: how many results Out (and the _N
# variables) keep.  When it is full, the oldest fifth goes, with a warning.
CACHE_SIZE = 1000
_CULL_FRACTION = 0.2


_STORED = "Cell In["        # + execution count + "]": a stored cell's filename
_UNSTORED = "<ferry-input-"  # + number + ">": a silent or unstored cell's
_lines_from = None           # the Shell whose cells linecache finds


def _cell_number(filename, prefix, suffix):
    n = filename[len(prefix):-len(suffix)]
    if filename.startswith(prefix) and filename.endswith(suffix) \
            and n.isascii() and n.isdigit():
        return int(n)
    return None


def _find_cells_in_linecache(shell):
    """Lets linecache find a cell's lines the first time something asks
    for them (a traceback, inspect.getsource, pdb), from the source the
    shell keeps.  Every cell stays reachable, as in IPython, without a
    linecache entry per cell (about 200 bytes each, kept forever).  The
    lines found are cached with mtime None, so checkcache never drops them;
    linecache.clearcache() loses nothing.  (IPython patches linecache too:
    its checkcache.)"""
    global _lines_from
    _lines_from = shell
    if getattr(linecache.updatecache, "_ferry_cells", False):
        return
    original = linecache.updatecache

    def updatecache(filename, module_globals=None):
        code = _lines_from.cell_source(filename) if _lines_from is not None else None
        if code is None:
            return original(filename, module_globals)
        lines = code.splitlines(True)
        linecache.cache[filename] = (len(code), None, lines, filename)
        return lines

    updatecache._ferry_cells = True
    updatecache.__wrapped__ = original
    linecache.updatecache = updatecache


class StdinNotImplementedError(NotImplementedError):
    """input() was called, but the frontend does not accept input requests
    (IPython's class of the name, a NotImplementedError too)."""


class _ExitAsker:
    """exit() and quit() in a cell ask the frontend to close, as in IPython,
    rather than ending the kernel process under it."""

    def __init__(self, shell, name):
        self._shell = shell
        self._name = name

    def __repr__(self):
        return f"Use {self._name}() to ask the frontend to exit."

    def __call__(self, keep_kernel=False):
        self._shell.payloads.append({"source": "ask_exit", "keepkernel": bool(keep_kernel)})


class Shell:
    """The kernel's interpreter state: namespace, counters, In/Out."""

    def __init__(self, runtime_dir):
        self.main = sys.modules["__main__"]
        self.ns = self.main.__dict__
        self.main.__spec__ = None
        self.execution_count = 1
        self.unstored = 0
        self.In = [""]
        self.Out = {}
        self.cache_size = CACHE_SIZE
        # The source of each cell, for tracebacks: stored cells by
        # execution count (as In, which users may edit), the others by
        # number.  The strings are the ones In holds, not copies.
        self._stored_sources = [""]
        self._unstored_sources = [""]
        self.payloads = []
        self.allow_stdin = False
        self.loop = None
        self.last_result = None  # the value of the last cell's trailing expression
        self.last_error = None   # what the last cell raised
        self.recorder = None
        if _reexport is not None and hasattr(_reexport, "Recorder"):
            self.recorder = _reexport.Recorder(runtime_dir, self.main)
            self.recorder.install_hooks()
        self._install_builtins()
        _find_cells_in_linecache(self)
        _streams.install()

    # ------------------------------------------------------------ set-up

    def _install_builtins(self):
        self.ns.update({"In": self.In, "Out": self.Out, "_": None, "__": None, "___": None,
                        "_ih": self.In, "_oh": self.Out, "_i": "", "_ii": "", "_iii": ""})
        builtins.display = _display.display
        builtins.update_display = _display.update_display
        builtins.clear_output = _display.clear_output
        builtins.input = self.input
        builtins.exit = _ExitAsker(self, "exit")
        builtins.quit = _ExitAsker(self, "quit")
        getpass.getpass = self.getpass

    def input(self, prompt=""):
        return self._ask(str(prompt), False)

    def getpass(self, prompt="Password: ", stream=None):
        return self._ask(str(prompt), True)

    def _ask(self, prompt, password):
        if not self.allow_stdin:
            # ipykernel's words, which tools comparing outputs look for
            raise StdinNotImplementedError(
                f"{'getpass' if password else 'raw_input'} was called, but this "
                "frontend does not support input requests.")
        value = _ferry_kernel.input(prompt, password)
        if value == "\x04":  # the frontend's end of input (Ctrl-D), as in ipykernel
            raise EOFError("EOF when reading a line")
        return value

    # ----------------------------------------------------------- running

    def run_cell(self, code, silent=False, store_history=True, user_expressions=None,
                 allow_stdin=False):
        """Runs code; returns the execute_reply content."""
        self.payloads = []
        self.allow_stdin = allow_stdin
        self.last_result = self.last_error = None
        store = store_history and not silent
        count = self.execution_count
        if store:
            filename = f"{_STORED}{count}]"
            self._stored_sources.append(code)
        else:
            self.unstored += 1
            filename = f"{_UNSTORED}{self.unstored}>"
            self._unstored_sources.append(code)
        if not silent:
            _display.publish("execute_input", {"code": code, "execution_count": count})
        if store:
            self.In.append(code)
            self.ns.update({"_iii": self.ns.get("_ii", ""), "_ii": self.ns.get("_i", ""),
                            "_i": code, f"_i{count}": code})
            self.execution_count += 1
        reply = {"execution_count": count}
        try:
            # Interrupts are raised only inside this block (_interrupt.py); one
            # that lands in the inner finally is caught below like any other.
            _interrupt.arm(1)
            try:
                # %magics, !cmd and obj? become Python first, so the re-export
                # analysis sees the code that actually runs.
                self._run_statements(transform(code), filename, count, silent, store)
            finally:
                _interrupt.disarm()
        except BaseException as exc:  # everything a cell raises is reported
            _interrupt.disarm()
            self.last_error = exc
            reply.update(self._report(exc, silent))
        else:
            reply["status"] = "ok"
        reply["user_expressions"] = self._user_expressions(user_expressions or {})
        reply["payload"] = self.payloads
        return reply

    def cell_source(self, filename):
        """The source of the cell compiled as `filename`, or None."""
        for prefix, suffix, sources in ((_STORED, "]", self._stored_sources),
                                        (_UNSTORED, ">", self._unstored_sources)):
            n = _cell_number(filename, prefix, suffix)
            if n is not None:
                return sources[n] if 0 < n < len(sources) else None
        return None

    def _run_statements(self, code, filename, count, silent, store):
        tree = ast.parse(code, filename)
        if self.recorder is not None:
            self.recorder.begin_cell(code, filename, tree)
        body = tree.body
        display_last = bool(body) and isinstance(body[-1], ast.Expr) \
            and not code.rstrip().endswith(";")
        for i, node in enumerate(body):
            if display_last and i == len(body) - 1:
                value = self._eval(node.value, filename)
                self._display_result(value, count, silent, store)
            else:
                self._run_node(node, code, filename)

    def _run_node(self, node, code, filename):
        if _reexport is not None and hasattr(_reexport, "is_main_guard") \
                and _reexport.is_main_guard(node):
            if self._eval(node.test, filename):
                for child in node.body:
                    self._run_node(child, code, filename)
            else:
                for child in node.orelse:
                    self._run_node(child, code, filename)
            return
        compiled = compile(ast.Module([node], []), filename, "exec", flags=_FLAGS)
        self._await_if_needed(eval(compiled, self.ns))
        if self.recorder is not None:
            self.recorder.record(node, code, filename)

    def _eval(self, expr, filename):
        compiled = compile(ast.Expression(expr), filename, "eval", flags=_FLAGS)
        value = eval(compiled, self.ns)
        if compiled.co_flags & _CO_COROUTINE:
            value = self._await_if_needed(value)
        return value

    def _await_if_needed(self, value):
        if not isinstance(value, types.CoroutineType):
            return value
        if self.loop is None:
            import asyncio  # costly, and most sessions never await at top level
            self.loop = asyncio.new_event_loop()
        return self.loop.run_until_complete(value)

    def _display_result(self, value, count, silent, store):
        if value is None:
            return
        self.last_result = value
        if store and self.cache_size:
            if len(self.Out) >= self.cache_size:
                self._cull_outputs()
            self.Out[count] = value
            self.ns.update({"___": self.ns.get("__"), "__": self.ns.get("_"), "_": value,
                            f"_{count}": value})
        if silent or _display.ipython_display(value):
            return
        data, metadata = _display.format_bundle(value)
        _display.publish("execute_result", {"execution_count": count, "data": data,
                                            "metadata": metadata})

    def _cull_outputs(self):
        """Drops the oldest fifth of Out and their _N, as IPython does when
        its output cache is full (DisplayHook.cull_cache)."""
        size = len(self.Out)
        cull = max(int(size * _CULL_FRACTION), 2)
        warnings.warn(f"Output cache limit (currently {size} entries) hit.\n"
                      f"Flushing oldest {cull} entries.")
        for n in sorted(self.Out)[:cull]:
            self.ns.pop(f"_{n}", None)
            del self.Out[n]

    def _report(self, exc, silent):
        ename = type(exc).__name__
        if isinstance(exc, SystemExit):
            lines = [f"{_traceback.RED}SystemExit{_traceback.RESET}: {exc.code}",
                     "The kernel keeps running: sys.exit() in a cell ends the cell, "
                     "not the kernel. Use exit() to close the frontend."]
        else:
            lines = _traceback.format_exception(exc)
        content = {"ename": ename, "evalue": _traceback.safe_str(exc), "traceback": lines}
        if not silent:
            _display.publish("error", content)
        return {"status": "error", **content}

    def _user_expressions(self, expressions):
        results = {}
        for name, expr in expressions.items():
            try:
                value = eval(compile(expr, "<user_expression>", "eval"), self.ns)
                data, metadata = _display.format_bundle(value)
                results[name] = {"status": "ok", "data": data, "metadata": metadata}
            except BaseException as exc:
                results[name] = {"status": "error", "ename": type(exc).__name__,
                                 "evalue": _traceback.safe_str(exc),
                                 "traceback": _traceback.format_exception(exc)}
        return results


