"""Child-side runtime of ferry's re-export (private to ferry._reexport).

Every version of the re-export module (``ferry_main_<N>.py`` in the kernel's
runtime directory) calls :func:`run` to re-create the notebook's definitions,
and every cell function or class that the kernel pickles for a
``multiprocessing`` child travels as ``lookup(path, qualname)`` (or, for an
anonymous lambda, ``make_function(path, ...)``), resolved here.

Two promises this module keeps, because a stdlib pool depends on them:

* Loading a version never raises.  A statement that fails when a child re-runs
  it (a decorator that reads a computed value, a class whose base is computed)
  leaves *stand-ins* under the names it would have bound.
* Unpickling never raises.  ``multiprocessing.Pool`` kills a worker whose task
  cannot be unpickled and respawns it forever, so the parent's ``map`` hangs.
  A lookup that cannot be satisfied returns a stand-in instead; the stand-in
  raises :class:`ReexportError`, naming the cell, the statement and the
  original exception, when the task *uses* it - which the pool reports to the
  parent as an ordinary task error.

Imported in plain ``/usr/bin/python3`` children: only the standard library,
and nothing heavy at import time.
"""

import collections
import copyreg
import linecache
import os
import sys
import types

__all__ = ["ReexportError", "Kind", "Statement", "run", "load", "lookup",
           "make_function", "Unavailable"]


class ReexportError(RuntimeError):
    """A cell definition could not be re-created in a worker process."""


# ---------------------------------------------------------------------------
# What a version holds
# ---------------------------------------------------------------------------

class Kind:
    """What a recorded statement is (Statement.kind): the tags the recorder
    and this runtime agree on, never the statement's display text."""
    IMPORT = "import"    # import a / from m import b
    FUTURE = "future"    # from __future__ import ...: later statements compile with it
    DEF = "def"          # def / async def
    CLASS = "class"      # a failed class leaves a stand-in class, not a callable
    ASSIGN = "assign"    # names bound to literals or lambdas


# One recorded statement.  A version file spells each as a plain tuple in
# this field order (it must not bind a name a cell could use); run() reads
# them back with Statement._make.
Statement = collections.namedtuple("Statement", (
    "cell",        # index into the version's cells: (filename, source)
    "pos",         # (lineno, col, end_lineno, end_col) of the statement in its cell
    "text",        # its source when the cell's parse cannot find it by pos, else None
    "names",       # names it binds, in order
    "lambdas",     # names bound directly to a lambda (named after them)
    "kind",        # a Kind tag
    "label",       # short description for messages: "def f", "import numpy"
    "first_line",  # line of the cell where it starts, decorators included
))


# ---------------------------------------------------------------------------
# Stand-ins
# ---------------------------------------------------------------------------

# Callers that are part of the unpickling machinery: a stand-in class called
# from there (an enum member or a namedtuple being rebuilt) must not raise.
# The C unpickler has no frame of its own, so its caller is whatever called
# pickle.loads: multiprocessing's connections and queues, spawn's bootstrap,
# and ferry's own worker loop.
_STDLIB = os.path.dirname(os.__file__)
_QUIET_CALLERS = tuple(
    os.path.join(_STDLIB, part)
    for part in ("multiprocessing" + os.sep, "concurrent" + os.sep,
                 "pickle.py", "copyreg.py")
) + (os.path.dirname(os.path.abspath(__file__)) + os.sep,)
# ... except the stdlib frames that call the task itself (Pool's worker and
# mapstar, Process.run, ProcessPoolExecutor's worker): a task that calls a
# stand-in class there must fail at once with the clear error, not get a
# poisoned instance that only fails when the result is sent back.
_TASK_CALLERS = tuple(
    os.path.join(_STDLIB, part)
    for part in (os.path.join("multiprocessing", "pool.py"),
                 os.path.join("multiprocessing", "process.py"),
                 os.path.join("concurrent", "futures", "process.py"))
)


class StandIn:
    """Takes the place of a function, module or value that failed to load.

    Pickles and unpickles (so a task naming it still reaches the worker's task
    loop); raises ReexportError when called or when an attribute is read.
    """

    __slots__ = ("_rx_qualname", "_rx_message")

    def __init__(self, qualname, message):
        object.__setattr__(self, "_rx_qualname", qualname)
        object.__setattr__(self, "_rx_message", message)

    def __call__(self, *args, **kwargs):
        raise ReexportError(self._rx_message)

    def __getattr__(self, name):
        # Protocol probes (pickle, copy, inspect) get a plain "no such
        # attribute"; everything a user would do raises the clear error.
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        raise ReexportError(self._rx_message)

    def __reduce__(self):
        return (StandIn, (self._rx_qualname, self._rx_message))

    def __repr__(self):
        return "<ferry stand-in for %s, unavailable in this process>" % (
            self._rx_qualname,)


class Unavailable(StandIn):
    """Takes the place of a notebook name that was not re-exported (bound by
    a computed value, a loop, a `with`...) and that a re-exported definition
    reads.  Without it a task would fail with a bare "NameError: name 'x' is
    not defined" for a name the user can see in the notebook; with it, any
    use - a call, an attribute, an operator, a comparison, iteration, str(),
    using it as a base class - raises ReexportError saying why.  It never
    travels back to the parent as a result.
    """

    __slots__ = ()

    def _rx_raise(self, *args, **kwargs):
        raise ReexportError(object.__getattribute__(self, "_rx_message"))

    def __reduce__(self):
        self._rx_raise()

    def __repr__(self):
        return "<ferry: %s is not available in worker processes>" % (
            object.__getattribute__(self, "_rx_qualname"),)


# Every operation a task could apply to a value: each raises the clear error,
# so nothing falls back silently (`x != y` would otherwise compare identities).
for _name in (
        "eq ne lt le gt ge hash bool len iter next reversed contains getitem "
        "setitem delitem setattr delattr str bytes format int float complex index "
        "round trunc floor ceil neg pos abs invert enter exit aenter aexit await "
        "aiter anext fspath mro_entries instancecheck subclasscheck "
        "add sub mul matmul truediv floordiv mod divmod pow lshift rshift and xor "
        "or radd rsub rmul rmatmul rtruediv rfloordiv rmod rdivmod rpow rlshift "
        "rrshift rand rxor ror iadd isub imul imatmul itruediv ifloordiv imod ipow "
        "ilshift irshift iand ixor ior").split():
    setattr(Unavailable, "__%s__" % _name, Unavailable._rx_raise)
del _name


def _unpickling():
    """True when the code using a stand-in class is the unpickler (called
    from multiprocessing's or pickle's own frames), not a user's task."""
    filename = sys._getframe(2).f_code.co_filename
    return filename.startswith(_QUIET_CALLERS) and filename not in _TASK_CALLERS


class _StandInMeta(type):
    """Metaclass of stand-in classes: calling one, or reading an attribute it
    lacks, raises - except while the unpickler rebuilds an object (an enum
    member is `getattr(cls, name)`, a namedtuple `cls(*args)`): then it
    yields a poisoned instance, which raises when the task uses it."""

    def __call__(cls, *args, **kwargs):
        if not _unpickling():
            raise ReexportError(cls._rx_message)
        return cls.__new__(cls)

    def __getattr__(cls, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        if not _unpickling():
            raise ReexportError(cls._rx_message)
        return cls.__new__(cls)


# Attributes a poisoned instance still answers: what pickle, isinstance and
# repr need.  Anything else raises ReexportError.
_INSTANCE_PASS = frozenset((
    "__class__", "__dict__", "__setstate__", "__reduce__", "__reduce_ex__",
    "__repr__", "__getstate__", "_rx_message", "_rx_qualname",
))


def _poisoned_getattribute(self, name):
    if name in _INSTANCE_PASS:
        return object.__getattribute__(self, name)
    raise ReexportError(object.__getattribute__(self, "_rx_message"))


def _poisoned_setstate(self, state):
    # The state is dropped: nothing may read it anyway.
    pass


def _poisoned_reduce_ex(self, protocol):
    # Refuse to travel back to the parent: it would receive a silent husk.
    raise ReexportError(object.__getattribute__(self, "_rx_message"))


def _poisoned_repr(self):
    return "<ferry stand-in instance of %s, unavailable in this process>" % (
        object.__getattribute__(self, "_rx_qualname"),)


def standin_class(qualname, message):
    """A class standing in for a class statement that failed to run."""
    ns = {
        "__module__": __name__,
        "__qualname__": qualname,
        "__getattribute__": _poisoned_getattribute,
        "__setstate__": _poisoned_setstate,
        "__reduce_ex__": _poisoned_reduce_ex,
        "__repr__": _poisoned_repr,
        "_rx_message": message,
        "_rx_qualname": qualname,
    }
    return _StandInMeta(qualname.rpartition(".")[2], (), ns)


def _reduce_standin_class(cls):
    return (standin_class, (cls._rx_qualname, cls._rx_message))


copyreg.pickle(_StandInMeta, _reduce_standin_class)


def _standin_message(obj):
    if isinstance(obj, StandIn):
        return object.__getattribute__(obj, "_rx_message")
    if isinstance(obj, _StandInMeta):
        return obj._rx_message
    return None


# ---------------------------------------------------------------------------
# Running a version of the module
# ---------------------------------------------------------------------------

def _describe(exc):
    text = "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__
    return text


def _failure_message(name, stmt, cells, exc):
    filename = cells[stmt.cell][0]
    return (
        "ferry could not re-create %r in this worker process: `%s` (%s, line %d) "
        "raised %s when the worker re-ran it. A cell definition that is sent to "
        "workers may only depend on imports, definitions and literal constants "
        "made by top-level statements; computed values are not re-exported."
        % (name, stmt.label, filename, stmt.first_line, _describe(exc))
    )


def statement_index(tree):
    """{(lineno, col, end_lineno, end_col): statement} for the statements the
    kernel records: the cell's top-level ones and those inside top-level
    `if` blocks (a main guard's body is run and recorded one statement at a
    time).  The kernel checks a position against this same index, so a
    child finds every statement recorded by position.  O(those statements),
    not O(every node of the cell)."""
    import ast
    index = {}
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        index[(node.lineno, node.col_offset, node.end_lineno,
               node.end_col_offset)] = node
        if isinstance(node, ast.If):
            stack.extend(node.body)
            stack.extend(node.orelse)
    return index


# Code of recorded statements, by all that compile() reads: the unit (the
# cell's source and the statement's position, or its own text), the filename
# and the __future__ flags.  Every version of the re-export runs all of the
# notebook's statements afresh, so without it a worker compiled each one again
# for each version it loaded; compiling was most of a new worker's first task
# (4 of 4.6 ms for a setup cell of five statements).  The template process
# fills it as cells record statements (precompile), so the workers it forks
# start with it.  Bounded: oldest first out.
_code_cache = {}
_CODE_CACHE_MAX = 4096


def _compile(stmt, cells, indexes, flags):
    """Code for one recorded statement, compiled under its cell's filename
    with its own line numbers, so tracebacks and linecache point into the cell.
    """
    filename, source = cells[stmt.cell]
    key = (filename, source if stmt.text is None else stmt.text, stmt.pos, flags)
    code = _code_cache.get(key)
    if code is None:
        code = _compile_unit(filename, source, stmt.pos, stmt.text, indexes, flags)
        if len(_code_cache) >= _CODE_CACHE_MAX:
            del _code_cache[next(iter(_code_cache))]
        _code_cache[key] = code
    return code


def _compile_unit(filename, source, pos, text, indexes, flags):
    import ast
    if text is None:
        index = indexes.get((filename, source))
        if index is None:
            tree = compile(source, filename, "exec",
                           ast.PyCF_ONLY_AST | flags, dont_inherit=True)
            index = indexes[(filename, source)] = statement_index(tree)
        node = index[pos]
        unit = ast.Module(body=[node], type_ignores=[])
    else:
        unit = "\n" * (pos[0] - 1) + text
    return compile(unit, filename, "exec", flags, dont_inherit=True)


_precompile_flags = 0  # __future__ flags of the statements precompile saw


def precompile(cells, statements):
    """Compiles recorded statements ahead of any version that will run them,
    as Recorder.statements_since gives them: cells [(filename, source),
    ...] and statements [(cell index, pos, text, __future__ names or None),
    ...] in the order the kernel recorded them.  Flags follow the
    __future__ imports among them as run() will; a statement whose flags
    differ in the version is compiled there.  Errors are left to run(),
    which reports them."""
    global _precompile_flags
    import __future__
    cells = tuple(tuple(cell) for cell in cells)
    indexes = {}
    for cell, pos, text, future in statements:
        pos = tuple(pos)
        stmt = Statement(cell=cell, pos=pos, text=text, names=(), lambdas=(),
                         kind=None, label=None, first_line=pos[0])
        try:
            _compile(stmt, cells, indexes, _precompile_flags)
        except Exception:
            continue
        for name in future or ():
            feature = getattr(__future__, name, None)
            if feature is not None:
                _precompile_flags |= feature.compiler_flag


def _name_lambdas(ns, lambdas):
    for name in lambdas:
        fn = ns.get(name)
        if isinstance(fn, types.FunctionType) and fn.__name__ == "<lambda>":
            fn.__name__ = fn.__qualname__ = name


def run(ns, cells, statements, drop, unavailable=()):
    """Re-create the recorded definitions in the namespace ``ns``.

    cells: ((filename, source), ...); registered in linecache for tracebacks
           (a filename may appear twice if the kernel reused it).
    statements: Statement field tuples, in execution order.
    drop: names to delete at the end (bound by a statement kept only because a
          later one depended on it, and no longer exported).
    unavailable: ((name, message), ...) for names the definitions read but
          the kernel did not export: bound to Unavailable stand-ins, before
          the statements run (a decorator may read one) and again after drop.
    """
    import __future__
    if ns.get("__name__") == "__mp_main__":
        setup_child()  # a spawn or forkserver child starting up
    for filename, source in cells:
        linecache.cache[filename] = (
            len(source), None, source.splitlines(True), filename)
    for name, message in unavailable:
        ns[name] = Unavailable(name, message)
    indexes = {}
    flags = 0
    for fields in statements:
        stmt = Statement._make(fields)
        names = stmt.names
        before = {name: ns[name] for name in names if name in ns}
        try:
            code = _compile(stmt, cells, indexes, flags)
            exec(code, ns)
            _name_lambdas(ns, stmt.lambdas)
            if stmt.kind == Kind.FUTURE:
                for name in names:
                    feature = getattr(__future__, name, None)
                    if feature is not None:
                        flags |= feature.compiler_flag
        except (Exception, SystemExit) as exc:
            is_class = stmt.kind == Kind.CLASS
            for name in names:
                if name in ns and ns[name] is not before.get(name, _MISSING):
                    continue  # bound before the failure (import a, broken)
                message = _failure_message(name, stmt, cells, exc)
                ns[name] = (standin_class(name, message) if is_class
                            else StandIn(name, message))
    for name in drop:
        ns.pop(name, None)
    for name, message in unavailable:
        if name not in ns:
            ns[name] = Unavailable(name, message)


_MISSING = object()


# ---------------------------------------------------------------------------
# Signals in children of the kernel
# ---------------------------------------------------------------------------

def _is_pool_worker():
    """True in a worker of multiprocessing.Pool or ProcessPoolExecutor."""
    process = sys.modules.get("multiprocessing.process")
    if process is None:
        return False
    target = getattr(process.current_process(), "_target", None)
    if target is None:
        return False
    pool = sys.modules.get("multiprocessing.pool")
    futures = sys.modules.get("concurrent.futures.process")
    return ((pool is not None and target is getattr(pool, "worker", None))
            or (futures is not None
                and target is getattr(futures, "_process_worker", None)))


def setup_child():
    """Signals in a child process of the kernel; called in spawn and forkserver
    children when they run the re-export module as their main module, and in
    fork children by an at-fork hook.

    SIGTERM: a child inherits the signal mask of the thread that forked it,
    and the kernel's own threads keep SIGTERM blocked (the kernel used to
    block it in the cell thread too).  With it blocked, Process.terminate()
    and Pool.terminate() cannot stop the child and it outlives a killed
    kernel, so a child unblocks it.  (The kernel's SIGTERM handler, which a
    fork child inherits, hands a child's SIGTERM back to the default action:
    kernel/control.c.)

    SIGINT: frontends interrupt a kernel with SIGINT to its whole process
    group, and jupyter_client does it again before every shutdown.  A stdlib
    pool worker that dies of it while it holds its task queue's lock (the
    signal lands between the lock's acquire and the `with` block) leaves the
    pool - and the kernel's exit, which finalises the pool - waiting on that
    lock forever; a ProcessPoolExecutor breaks.  The interrupt is meant for
    the cell: its KeyboardInterrupt ends the pool if the cell wants it ended
    (`with Pool(...)` terminates the workers).  So workers of Pool and
    ProcessPoolExecutor ignore SIGINT; other children - a Process running
    the user's own function - keep the handler they had.
    """
    import signal
    try:
        if signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, ()):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGTERM,))
    except (AttributeError, OSError, ValueError):
        pass
    try:
        previous = signal.getsignal(signal.SIGINT)
        if not callable(previous) or getattr(previous, "_ferry_shield", False):
            return  # SIG_IGN, SIG_DFL or not Python's: leave it alone

        def handler(signum, frame):
            if _is_pool_worker():
                return
            previous(signum, frame)

        handler._ferry_shield = True
        signal.signal(signal.SIGINT, handler)
    except (ValueError, OSError):
        pass  # not the main thread: a signal handler cannot be set here


# ---------------------------------------------------------------------------
# Lookups (what the kernel's pickles call)
# ---------------------------------------------------------------------------

_by_path = {}

# (pid, runtime_dir, __main__) of the kernel process, set by
# ferry._reexport.Recorder.install_hooks(); None in children.
kernel = None


def module_name(path):
    return os.path.splitext(os.path.basename(path))[0]


def load(path):
    """The module for one version file: the kernel's live __main__ in the
    kernel, this child's __mp_main__ if it was started from that very file,
    else the file run once under its own module name (ferry's own workers can
    call this with the version a task names).  Never raises: a file that
    cannot be read leaves `_ferry_load_error` in the module."""
    mod = _by_path.get(path)
    if mod is not None:
        return mod
    if kernel is not None and kernel[0] == os.getpid() \
            and os.path.dirname(path) == kernel[1]:
        return kernel[2]  # the kernel itself: every version is its __main__
    name = module_name(path)
    mod = sys.modules.get(name)
    if mod is None:
        main = sys.modules.get("__mp_main__")
        if main is not None and getattr(main, "__file__", None) == path:
            mod = main
    if mod is None:
        mod = types.ModuleType(name)
        mod.__file__ = path
        sys.modules[name] = mod  # dataclasses and pickle look it up by name
        try:
            with open(path, "rb") as f:
                source = f.read()
            exec(compile(source, path, "exec", dont_inherit=True), mod.__dict__)
        except BaseException as exc:  # noqa: B036 - must never raise here
            if isinstance(exc, KeyboardInterrupt):
                raise
            mod.__dict__["_ferry_load_error"] = (
                "ferry could not load the re-export module %s in this worker "
                "process: %s" % (path, _describe(exc)))
    _by_path[path] = mod
    return mod


def lookup(path, qualname):
    """The object ``qualname`` of the re-export version at ``path``, or a
    stand-in that raises a clear ReexportError when used.  Never raises."""
    try:
        mod = load(path)
        obj = mod
        for part in qualname.split("."):
            message = _standin_message(obj)
            if message is not None:
                return StandIn(qualname, message)
            obj = getattr(obj, part)
        return obj
    except Exception as exc:
        message = None
        try:
            message = mod.__dict__.get("_ferry_load_error")
        except Exception:
            pass
        if message is None:
            message = (
                "ferry could not find %r in the re-export module %s in this "
                "worker process: %s" % (qualname, path, _describe(exc)))
        return StandIn(qualname, message)



# Closure cells travel as 1-tuples, an empty cell as None.
_EMPTY_CELL = None


def make_function(path, code, name, qualname, defaults, kwdefaults, closure):
    """Rebuild an anonymous lambda from its marshalled code, with the
    re-export version at ``path`` as its globals.  Never raises."""
    try:
        import marshal
        mod = load(path)
        load_error = mod.__dict__.get("_ferry_load_error")
        if load_error is not None:
            return StandIn(qualname, load_error)
        cells = None
        if closure is not None:
            cells = tuple(types.CellType() if v is _EMPTY_CELL else types.CellType(v[0])
                          for v in closure)
        fn = types.FunctionType(marshal.loads(code), mod.__dict__, name,
                                defaults, cells)
        fn.__qualname__ = qualname
        if kwdefaults:
            fn.__kwdefaults__ = kwdefaults
        return fn
    except Exception as exc:
        return StandIn(qualname, "ferry could not rebuild the lambda %s in this "
                                 "worker process: %s" % (qualname, _describe(exc)))

