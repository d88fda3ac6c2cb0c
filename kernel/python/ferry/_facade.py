"""get_ipython() in ferry: a small stand-in for IPython's shell.

It is what `get_ipython()` returns everywhere, in cells and in library code
(IPython.get_ipython() too, once IPython is imported), as in IPython: the
calls notebooks make (run_line_magic, system, user_ns, push, ...) and what
libraries reach for (kernel with its comm_manager and session, events,
display_formatter, parent_header, history_manager, config).  Anything else
raises an AttributeError that names ferry, so a library that probes with
hasattr() takes its plain-Python path.  kernel/README-compat.md lists it.
"""
import builtins
import sys

import _ferry_kernel

from . import _display
from ._autoreload import autoreloader
from . import _request
from ._magics import Magics


class _Events:
    """IPython's shell.events: callbacks for pre_execute, pre_run_cell,
    post_execute, post_run_cell.  A callback that raises is reported in
    the kernel's log and the others still run."""

    NAMES = ("pre_execute", "pre_run_cell", "post_execute", "post_run_cell",
             "shell_initialized")

    def __init__(self):
        self.callbacks = {name: [] for name in self.NAMES}

    def _list(self, event):
        if event not in self.callbacks:
            raise KeyError(f"{event!r} is not an event ferry's get_ipython() "
                           f"triggers: {', '.join(self.NAMES)}")
        return self.callbacks[event]

    def register(self, event, function):
        if not callable(function):
            raise TypeError(f"need a callable, got {function!r}")
        if function not in self._list(event):
            self.callbacks[event].append(function)

    def unregister(self, event, function):
        try:
            self._list(event).remove(function)
        except ValueError:
            raise ValueError(f"function {function!r} is not registered as a "
                             f"{event} callback") from None

    def trigger(self, event, *args, **kwargs):
        for function in list(self._list(event)):
            try:
                function(*args, **kwargs)
            except Exception:
                import traceback
                _ferry_kernel.log(0, f"{event} callback {function!r} failed:\n"
                                     f"{traceback.format_exc().rstrip()}")


class _DisplayFormatter:
    """shell.display_formatter: format(obj) -> (data, metadata), as
    display() makes them.  `formatters` takes extra MIME types (mime ->
    callable(obj) returning the value or None), as pandas registers its
    table schema."""

    def __init__(self):
        self.formatters = _display.extra_formatters

    def format(self, obj, include=None, exclude=None):
        return _display.format_bundle(obj, include, exclude)


class _HistoryManager:
    """shell.history_manager: where the history is kept."""

    def __init__(self, shell):
        self._shell = shell

    @property
    def hist_file(self):
        from . import _kernel
        return _kernel.hist.path if _kernel.hist is not None else ":memory:"

    @property
    def session_number(self):
        from . import _kernel
        return _kernel.hist.session if _kernel.hist is not None else 0

    @property
    def input_hist_raw(self):
        return self._shell.In

    input_hist_parsed = input_hist_raw

    @property
    def output_hist(self):
        return self._shell.Out


class ExecutionInfo:
    """What pre_run_cell callbacks get (IPython's ExecutionInfo)."""

    def __init__(self, raw_cell, store_history, silent):
        self.raw_cell, self.store_history, self.silent = raw_cell, store_history, silent
        self.shell_futures, self.cell_id = True, None

    def __repr__(self):
        return f"<ExecutionInfo raw_cell={self.raw_cell[:50]!r} " \
               f"store_history={self.store_history} silent={self.silent}>"


class ExecutionResult:
    """What run_cell returns and post_run_cell callbacks get."""

    def __init__(self, info, execution_count, result=None, error_in_exec=None):
        self.info, self.execution_count = info, execution_count
        self.result, self.error_in_exec = result, error_in_exec
        self.error_before_exec = None

    @property
    def success(self):
        return self.error_in_exec is None

    def raise_error(self):
        if self.error_in_exec is not None:
            raise self.error_in_exec

    def __repr__(self):
        return f"<ExecutionResult execution_count={self.execution_count} " \
               f"error_in_exec={self.error_in_exec!r} result={self.result!r}>"


class FerryShell:
    """What get_ipython() returns in ferry."""

    def __init__(self, shell):
        self._shell = shell
        self._magics = Magics(shell)
        self.events = _Events()
        self.display_formatter = _DisplayFormatter()
        self.history_manager = _HistoryManager(shell)
        # tqdm.auto and others look for "IPKernelApp" here to choose their
        # notebook widgets; ferry is not IPKernelApp: they keep their
        # console output, which ferry shows in the cell.
        self.config = {}

    def __repr__(self):
        return "<ferry.FerryShell: ferry's stand-in for IPython's get_ipython()>"

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"get_ipython().{name}: ferry's get_ipython() is not IPython's shell and "
            f"has no {name!r} (what it has is listed in ferry's kernel/README-compat.md)")

    # -- state --------------------------------------------------------------
    @property
    def user_ns(self):
        return self._shell.ns

    @property
    def execution_count(self):
        return self._shell.execution_count

    @property
    def kernel(self):
        from . import _ipykernel_compat  # comms: only for kernels that use them
        return _ipykernel_compat.kernel()

    @property
    def parent_header(self):
        """The request being handled, as IPython's shell has it: a message
        dict with its "header" (empty when none is)."""
        return _request.parent_message()

    @property
    def cache_size(self):
        """How many results Out and the _N variables keep (IPython's
        InteractiveShell.cache_size, 1000); the oldest fifth is dropped when
        it is full.  Set it to keep more; under 3 keeps none, as in IPython."""
        return self._shell.cache_size

    @cache_size.setter
    def cache_size(self, n):
        n = int(n)
        self._shell.cache_size = n if n >= 3 else 0

    def push(self, variables):
        self._shell.ns.update(variables)

    def ev(self, expr):
        return eval(expr, self._shell.ns)

    def ex(self, cmd):
        exec(cmd, self._shell.ns)

    # -- magics and the shell ----------------------------------------------
    def find_line_magic(self, name):
        return self._magics._line.get(name)

    def find_cell_magic(self, name):
        return self._magics._cell.get(name)

    def magic_names(self):
        """(line magic names, cell magic names), for completion."""
        return list(self._magics._line), list(self._magics._cell)

    def run_line_magic(self, magic_name, line, _stack_depth=1):
        return self._magics.run_line_magic(magic_name, line, _stack_depth + 1)

    def run_cell_magic(self, magic_name, line, cell):
        filename = sys._getframe(1).f_code.co_filename
        return self._magics.run_cell_magic(magic_name, line, cell, filename)

    def magic(self, arg_s):
        name, _, line = arg_s.lstrip("%").partition(" ")
        return self._magics.run_line_magic(name, line, 2)

    def system(self, cmd):
        return self._magics.system(cmd)

    def getoutput(self, cmd):
        return self._magics.getoutput(cmd)

    # -- running and reporting ---------------------------------------------
    def run_cell(self, raw_cell, store_history=False, silent=False, shell_futures=True,
                 cell_id=None):
        """Runs raw_cell as a cell of its own (its output goes to the running
        cell); returns an ExecutionResult."""
        shell = self._shell
        saved = shell.payloads, shell.allow_stdin
        count = shell.execution_count
        try:
            reply = shell.run_cell(raw_cell, silent=silent, store_history=store_history,
                                   allow_stdin=shell.allow_stdin)
        finally:
            shell.payloads, shell.allow_stdin = saved
        info = ExecutionInfo(raw_cell, store_history, silent)
        error = shell.last_error if reply["status"] == "error" else None
        return ExecutionResult(info, count, shell.last_result, error)

    def showtraceback(self, exc_tuple=None, filename=None, tb_offset=None,
                      exception_only=False, running_compiled_code=False):
        """Shows the exception being handled (or exc_tuple's) in the cell, as
        an error output."""
        from . import _traceback
        exc = exc_tuple[1] if exc_tuple else sys.exc_info()[1]
        if exc is None:
            print("No traceback available to show.", file=sys.stderr)
            return
        _display.publish("error", {"ename": type(exc).__name__,
                                   "evalue": _traceback.safe_str(exc),
                                   "traceback": _traceback.format_exception(exc)})


_shell = None  # the FerryShell, set by install()


def get_ipython() -> FerryShell:
    """ferry's stand-in for IPython's get_ipython()."""
    return _shell


def pre_execute(code="", silent=False, store_history=True):
    """Before each cell: %autoreload's check, then the events."""
    if autoreloader.enabled:
        autoreloader.check()
    _shell.events.trigger("pre_execute")
    if not silent:
        _shell.events.trigger("pre_run_cell", ExecutionInfo(code, store_history, silent))


def post_execute(code="", silent=False, store_history=True, reply=None):
    """After each cell: note the modules it imported (%autoreload compares
    with these times), show the figures it drew inline, run the events."""
    if autoreloader.enabled:
        autoreloader.check(reload=False)
    backend = None if silent else sys.modules.get("ferry._mpl_inline")
    if backend is not None:
        try:
            backend.flush()
        except Exception as e:  # a figure that fails to draw must not fail the reply
            print(f"ferry: could not show a matplotlib figure: {e!r}", file=sys.stderr)
    _shell.events.trigger("post_execute")
    if not silent and reply is not None:
        shell = _shell._shell
        error = shell.last_error if reply.get("status") == "error" else None
        result = ExecutionResult(ExecutionInfo(code, store_history, silent),
                                 reply.get("execution_count"), shell.last_result, error)
        _shell.events.trigger("post_run_cell", result)


def install(shell):
    """Gives the kernel's shell get_ipython()."""
    global _shell
    _shell = FerryShell(shell)
    builtins.get_ipython = get_ipython
    _shell._magics.hidden.add("get_ipython")
