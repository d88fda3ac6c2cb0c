# ---------------------------------------------------------------------------
# ferry's runtime on Dask workers (ferry._cluster_rt)
# ---------------------------------------------------------------------------
#
# Never imported on its own: ferry._dask_ship appends this file to the sources of
# ferry/_rx_rt.py and ferry/_traceback.py and installs the result on every
# Dask worker, and in the kernel, as one module named `_ferry_rt_<digest of
# the sources>`.  So a worker needs no ferry installed, two kernels running
# the same ferry share the module, and two different ferrys never collide.
# Names used below without an import (load's callers lookup and
# make_function, format_exception, _describe) come from those two files.
#
# Cell definitions reach the worker as module `ferry_<kernel id>_<version>`
# (the kernel's re-export version, uploaded by a worker plugin); a task's
# pickle names its cell functions and classes as
# lookup(<that module name>, qualname).  run_task runs one task, with what
# it prints captured and sent back with the result.

import importlib
import io
import pickle
import platform as _platform
import re
import threading
import time as _time


def load(name):
    """The re-export module `name` on this worker (overrides the file-path
    load of ferry/_rx_rt.py above, which lookup and make_function call).
    Never raises: a module that cannot be imported leaves the reason in
    `_ferry_load_error`, for the stand-in that lookup returns."""
    mod = sys.modules.get(name)
    if mod is not None:
        return mod
    try:
        importlib.invalidate_caches()
        return importlib.import_module(name)
    except BaseException as exc:  # noqa: B036 - must never raise here
        if isinstance(exc, KeyboardInterrupt):
            raise
        mod = types.ModuleType(name)
        mod._ferry_load_error = (
            "ferry could not load the notebook's definitions (module %s) on this "
            "Dask worker: %s" % (name, _describe(exc)))
        return mod


def _stand_in_for_ferry():
    """Notebooks say `import ferry`, and the re-export replays it on the
    worker: where ferry is not installed, a stand-in module lets the import
    succeed (and the other names of the statement bind), and says why when
    a task uses it."""
    try:
        importlib.import_module("ferry")
        return
    except ImportError:
        pass
    mod = types.ModuleType("ferry", "ferry is not installed on this Dask worker")

    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise ReexportError(
            "ferry.%s is not available in a task on a Dask worker: ferry is not "
            "installed there, and ferry's pool runs in the kernel only" % name)

    mod.__getattr__ = __getattr__
    mod.runtime_dir = None
    sys.modules["ferry"] = mod


_stand_in_for_ferry()

_VERSION_NAME = re.compile(r"^(ferry_[0-9a-f]+_)v(\d+)$")


def installed(name, keep):
    """Called by a re-export module once it ran on this worker: forgets the
    versions of the same kernel older than the last `keep`, so a long
    session does not pile up modules (their files go too)."""
    m = _VERSION_NAME.match(name)
    if m is None:
        return
    prefix, current = m.group(1), int(m.group(2))
    here = os.path.dirname(os.path.abspath(sys.modules[name].__file__))
    for other in [n for n in sys.modules if n.startswith(prefix)]:
        o = _VERSION_NAME.match(other)
        if o is not None and int(o.group(2)) <= current - keep:
            sys.modules.pop(other, None)
    try:
        for filename in os.listdir(here):
            o = _VERSION_NAME.match(filename[:-3]) if filename.endswith(".py") else None
            if o is not None and o.group(1) == prefix and int(o.group(2)) <= current - keep:
                os.unlink(os.path.join(here, filename))
    except OSError:
        pass


# -------------------------------------------------------------- output

class _TaskStream:
    """sys.stdout or sys.stderr of a Dask worker once it ran a ferry task.
    Dask runs tasks in threads of one process, so what a thread writes while
    it runs a ferry task goes to that task's record; any other write goes
    where it went before."""

    _ferry_task_stream = True

    def __init__(self, which, original, local):
        self._which = which
        self._original = original
        self._ferry_local = local  # shared by stdout and stderr

    def write(self, text):
        record = getattr(self._ferry_local, "record", None)
        if record is None:
            return self._original.write(text)
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not %s" % type(text).__name__)
        record.append((self._which, text))
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        if getattr(self._ferry_local, "record", None) is None:
            self._original.flush()

    def __getattr__(self, name):
        return getattr(self._original, name)


def _output_local():
    """The thread-local task record, installing the streams once per process
    (whichever ferry runtime module installed them)."""
    out = sys.stdout
    if not getattr(out, "_ferry_task_stream", False):
        local = threading.local()
        sys.stdout = _TaskStream("stdout", sys.stdout, local)
        sys.stderr = _TaskStream("stderr", sys.stderr, local)
        return local
    if not getattr(sys.stderr, "_ferry_task_stream", False):
        sys.stderr = _TaskStream("stderr", sys.stderr, out._ferry_local)
    return out._ferry_local


def _joined(record):
    """[(stream, text)] with consecutive writes to one stream joined."""
    out = []
    for which, text in record:
        if out and out[-1][0] == which:
            out[-1] = (which, out[-1][1] + text)
        else:
            out.append((which, text))
    return out


# --------------------------------------------------------------- tasks

class _Unpickler(pickle.Unpickler):
    """Resolves the kernel's references to shared objects (large arrays it
    scattered once) to the values Dask handed the task."""

    def __init__(self, data, shared):
        super().__init__(io.BytesIO(data))
        self._shared = shared
        self.used_shared = False

    def persistent_load(self, pid):
        self.used_shared = True
        return self._shared[pid]


def _loads(data, shared):
    return _Unpickler(data, shared).load() if shared else pickle.loads(data)


def _worker_address():
    try:
        return sys.modules["distributed"].get_worker().address
    except Exception:
        return None


def _where():
    """What the cell's traceback says about the process that ran the task."""
    worker = _worker_address()
    return "%d (Dask worker %s)" % (os.getpid(), worker) if worker else os.getpid()


def _error(exc):
    """(exception, traceback lines, where) pickled; the lines are formatted
    as the kernel formats its own, pointing at the cell and line."""
    try:
        lines = format_exception(exc)
    except Exception:
        import traceback
        lines = traceback.format_exception(exc)
    exc.__traceback__ = None
    where = _where()
    try:
        payload = pickle.dumps((exc, lines, where), 5)
        pickle.loads(payload)  # the kernel must be able to read it
        return payload
    except Exception as err:
        name = "%s.%s" % (type(exc).__module__, type(exc).__qualname__)
        stand_in = RuntimeError("%s: %s (the original exception could not be sent "
                                "back from the worker: %s)" % (name, exc, err))
        return pickle.dumps((stand_in, lines, where), 5)


class TaskFailed(Exception):
    """Raised by run_task for a task that raised, so that Dask reports the
    failure at once, with the task's exception and traceback (pickled), its
    output and where and when it ran as args.  Its str() is short: Dask
    truncates long ones."""

    def __str__(self):
        return "a ferry task raised an exception"


def _same_python(kernel):
    mine = _platform.python_version()
    if kernel is not None and kernel.split(".")[:2] != mine.split(".")[:2]:
        raise RuntimeError(
            "this Dask worker runs Python %s, the kernel runs Python %s: ferry's "
            "tasks only load in the same Python version (major.minor)" % (mine, kernel))


# The last head and the function it unpickled to, when that is a plain
# function (no closure, no state of its own): the next task of the same map
# reuses it.  Anything else is unpickled afresh for each task, so state it
# keeps does not leak from one task into the next.
_head_cache = (None, None)


def _load_head(head, shared):
    global _head_cache
    if _head_cache[0] == head:
        return _head_cache[1]
    unpickler = _Unpickler(head, shared)
    fn = unpickler.load()
    # A head that refers to a shared value (a partial holding a large array)
    # is not kept: the same bytes may refer to another value next time.
    if not unpickler.used_shared and isinstance(fn, types.FunctionType) \
            and fn.__closure__ is None:
        _head_cache = (head, fn)
    return fn


# -------------------------------------------------------- notebook globals

# name -> (digest, object): the value of each notebook global this worker
# process holds, rebuilt once per value the kernel sent.
_globals_held = {}


def _namespaces(fn):
    """The dicts fn's code reads globals from: its own (a cell function's
    is its version module's), and each version module it was looked up in
    for a method, partial or cell instance."""
    spaces, seen = [], set()
    todo = [fn]
    while todo:
        obj = todo.pop()
        if isinstance(obj, types.MethodType):
            todo.append(obj.__func__)
            continue
        func = getattr(obj, "func", None)  # functools.partial
        if func is not None and not isinstance(obj, (type, types.FunctionType)):
            todo.append(func)
        if not isinstance(obj, (type, types.FunctionType)):
            obj = type(obj)
        if isinstance(obj, type):
            mod = sys.modules.get(getattr(obj, "__module__", None) or "")
            ns = getattr(mod, "__dict__", None)
        else:
            ns = obj.__globals__
        if isinstance(ns, dict) and id(ns) not in seen:
            seen.add(id(ns))
            spaces.append(ns)
    return spaces


def _bind_globals(fn, names, payloads):
    """Binds the notebook globals the task's function reads, as the kernel
    sent them ((name, digest) and the pickles Dask fetched): a digest this
    process holds costs a dict assignment, a new one is unpickled once."""
    spaces = _namespaces(fn)
    for (name, digest), payload in zip(names, payloads):
        held = _globals_held.get(name)
        if held is None or held[0] != digest:
            same = [o for d, o in _globals_held.values() if d == digest]
            held = _globals_held[name] = (digest, same[0] if same else pickle.loads(payload))
        for ns in spaces:
            ns[name] = held[1]


# --------------------------------------------------------------- the task

def run_task(head, body, python=None, shared=(), names=(), payloads=()):
    """One ferry task on a Dask worker: fn (head) applied to each item of a
    map chunk, or called once (body); python is the kernel's version;
    shared, the large values the pickles refer to (Dask hands them over);
    names, ((name, digest), ...) of the notebook globals fn reads, whose
    pickled values are payloads.  Returns (pickled result, [(stream,
    text)] the task printed, ran), or raises TaskFailed; ran is (worker
    address, wall-clock start, end) for ferry.timeline()."""
    start = _time.time()
    local = _output_local()
    local.record = record = []
    try:
        try:
            _same_python(python)
            fn = _load_head(head, shared)
            if names:
                _bind_globals(fn, names, payloads)
            kind, work = _loads(body, shared)
            if kind == "map":
                result = [fn(item) for item in work]
            else:
                args, kwargs = work
                result = fn(*args, **kwargs)
            payload = pickle.dumps(result, 5)
        except BaseException as exc:  # everything a task raises goes back to the cell
            payload = None
            error = _error(exc)
    finally:
        local.record = None
    ran = (_worker_address(), start, _time.time())
    if payload is None:
        raise TaskFailed(error, _joined(record), ran)
    return payload, _joined(record), ran
