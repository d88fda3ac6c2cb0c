"""The worker side of ferry's pool: run one pickled task, pickle the result.

A task is two pickles: the head (context, fn) or (context, fn, globals),
the same bytes for every task of one map, and the body (kind, work).
globals names the values of the notebook globals fn reads (ferry._globals_rt
binds them, reading each distinct value once per worker).  context is the kernel's (cwd,
sys.path) at dispatch time, which the worker follows; kind "map" applies
fn to each item of work, kind "call" calls fn(*args, **kwargs) once.
Buffers of pickle protocol 5 travel as separate frames after the body,
out of band.

A failed task answers (exception, traceback lines, pid): the exception
itself, so the cell re-raises the same type, and the worker's traceback,
formatted as the kernel formats its own (cell and line, ferry's frames
hidden), for the cell's traceback to show.
"""
import os
import pickle
import sys
import types


# ------------------------------------------------ entry points, from C
# The worker role enters here (kernel/pool/worker.c through pyrt.c), as the
# kernel role enters through _kernel.

def start(role, runtime_dir, python):
    """Called once the interpreter is up: the kernel's runtime directory,
    as cells see it in the kernel."""
    import ferry
    ferry.runtime_dir = runtime_dir


def run_task(frames):
    """Runs one pool task; returns (ok, frames)."""
    return run(frames)


# ------------------------------------ the template process (template.c)

def template_start(_):
    """The template's own start: what every worker's first task imports
    besides the notebook's modules (the runtime of the re-export)."""
    from . import _rx_rt  # noqa: F401
    _freeze()
    return "{}"


def _freeze():
    """What the template holds now goes to the collector's permanent
    generation: a full collection in a worker forked from it would
    otherwise write to every object's header, making the worker copy every
    page it shares with the template (its memory, and a fault per page)."""
    import gc
    gc.freeze()


def template_import(text):
    """Imports the modules the kernel lists ({"cwd", "path", "modules"},
    what cells import), for the workers the template forks to hold them,
    and compiles the notebook's definitions it lists ("code": what cells
    recorded, ferry._rx_rt.precompile) for their first task.
    A module beside the notebook is left out: the user may edit it, and a
    worker imports it afresh.  Import errors are ignored: a task that needs
    the module fails, and is reported, in the worker.  Returns {"threads":
    name} when importing name started a thread (then forking is unsafe)."""
    import importlib
    import importlib.util
    import json
    plan = json.loads(text)
    _follow((plan["cwd"], tuple(plan["path"])))
    for name in plan["modules"]:
        if name in sys.modules or _beside_notebook(name):
            continue
        try:
            importlib.import_module(name)
        except BaseException:  # SystemExit too: a module's own business
            pass
        if len(os.listdir("/proc/self/task")) > 1:
            return json.dumps({"threads": name})
    if plan.get("code"):
        from . import _rx_rt
        _rx_rt.precompile(plan["code"]["cells"], plan["code"]["statements"])
    _freeze()
    return "{}"


def _beside_notebook(name):
    import importlib.util
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return True  # not importable: nothing to gain
    origin = spec and spec.origin
    if not origin or not os.path.isabs(origin):
        return False  # built-in or frozen
    where = os.path.dirname(origin)
    if spec.submodule_search_locations is not None:  # a package: its directory's parent
        where = os.path.dirname(where)
    return os.path.realpath(where) == os.path.realpath(os.getcwd())


def after_fork(text):
    """In a worker the template just forked, before its first task: what an
    exec'd worker would have differently.  The kernel's environment as it
    is now ({"environ": ["NAME=value", ...]}, when a cell changed it since
    the template started).  Its own random numbers: CPython reseeds
    `random` itself; numpy's global generator, seeded once at import, would
    give every worker the same numbers."""
    import json
    environ = json.loads(text).get("environ")  # absent: the template's is the kernel's
    if environ is not None:
        env = dict(e.split("=", 1) for e in environ if "=" in e)
        if env != os.environ:
            os.environ.clear()
            os.environ.update(env)
    np_random = sys.modules.get("numpy.random")
    if np_random is not None:
        try:
            np_random.seed()
        except Exception:
            pass
    return "{}"


_context = None


def _follow(context):
    global _context
    if context == _context:
        return
    cwd, path = context
    if cwd != os.getcwd():
        try:
            os.chdir(cwd)
        except OSError:
            pass
    sys.path[:] = list(path)
    _context = context


def _dumps(obj):
    buffers = []
    payload = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    if not buffers:  # most results: no list to build and join per task
        return [payload]
    return [payload] + [b.raw() for b in buffers]


def _error_frames(exc):
    try:
        from . import _traceback  # only for a failed task: not on the first task's path
        lines = _traceback.format_exception(exc)
    except Exception:
        import traceback
        lines = traceback.format_exception(exc)
    exc.__traceback__ = None  # frames do not pickle; the lines say it all
    try:
        payload = _dumps((exc, lines, os.getpid()))
        pickle.loads(payload[0], buffers=payload[1:])  # the kernel must read it
        return payload
    except Exception as err:
        # The exception itself cannot travel (its class lives only here, or
        # it holds something unpicklable): send one the kernel can build.
        name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        stand_in = RuntimeError(f"{name}: {exc} (the original exception could not be sent "
                                f"back from the worker: {err})")
        return _dumps((stand_in, lines, os.getpid()))


# The last head and what it unpickled to, when that is a function without
# state of its own: the next task of the same map reuses it instead of
# unpickling it again.  Any other callable (an instance, a partial, a
# closure) is unpickled afresh for each task, as state it keeps must not
# leak from one task into the next.
_head_cache = (None, None)


def _load_head(head):
    global _head_cache
    key = bytes(head)
    if _head_cache[0] == key:
        return _head_cache[1]
    loaded = pickle.loads(head)
    if len(loaded) == 2:
        loaded += (None,)
    fn = loaded[1]
    plain = isinstance(fn, types.BuiltinFunctionType) or (
        isinstance(fn, types.FunctionType) and fn.__closure__ is None)
    _head_cache = (key, loaded) if plain else (None, None)
    return loaded


def _bind_globals(spec, fn):
    global _bind_globals
    from ._globals_rt import bind  # only once a task reads notebook globals
    _bind_globals = bind
    bind(spec, fn)


def run(frames):
    try:
        context, fn, spec = _load_head(frames[0])
        if spec is not None:
            _bind_globals(spec, fn)
        kind, work = pickle.loads(frames[1], buffers=frames[2:])
        _follow(context)
        if kind == "map":
            result = [fn(item) for item in work]
        else:
            args, kwargs = work
            result = fn(*args, **kwargs)
        return True, _dumps(result)
    except BaseException as exc:  # everything a task raises goes back to the cell
        return False, _error_frames(exc)
