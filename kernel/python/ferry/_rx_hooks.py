"""The kernel's multiprocessing hooks for re-export (private to ferry._reexport).

Two hooks make ``multiprocessing`` children see the notebook's definitions
(ferry._reexport describes the whole contract):

* Preparation data.  ``multiprocessing.spawn.get_preparation_data`` (also
  used by the forkserver) gets ``init_main_from_path`` = the current version,
  so spawn and forkserver children run it as their ``__mp_main__``.
* Pickler.  ``ForkingPickler.reducer_override`` sends a function or class of
  ``__main__`` as ``ferry._rx_rt.lookup(<current version>, qualname)``, an
  anonymous lambda by value, and raises ``pickle.PicklingError`` naming the
  object for one that a child cannot re-create.

Both act only in the kernel process itself, not in a forked child that
inherited them.  multiprocessing is hooked when it is imported, by whoever
imports it: a session that never starts a stdlib pool never loads it.
"""

import os
import sys
import threading
import types

from . import _rx_rt

__all__ = ["install", "reducer_override"]

_MISSING = object()

# The Recorder whose hooks are installed (one kernel per process).
_hooked = None
_fork_hook_installed = False
_install_lock = threading.Lock()


def install(rec):
    """Install the preparation-data and pickler hooks for `rec` (idempotent)."""
    global _hooked, _fork_hook_installed
    from . import _importhook
    with _install_lock:
        _hooked = rec
        sys.modules["__mp_main__"] = rec.main
        _rx_rt.kernel = (rec.pid, rec.runtime_dir, rec.main)
        if not _fork_hook_installed:
            # Fork children get what spawn children get from the module.
            os.register_at_fork(after_in_child=_rx_rt.setup_child)
            _fork_hook_installed = True
    _importhook.when_imported("multiprocessing.spawn", _hook_spawn)
    _importhook.when_imported("multiprocessing.reduction", _hook_reduction)
    from . import _globals_stdlib  # Pool and ProcessPoolExecutor take globals at the call
    _globals_stdlib.install_hooks()


def _active():
    """The hooked Recorder if this is its own process (not a forked child)."""
    rec = _hooked
    if rec is not None and rec.pid == os.getpid():
        return rec
    return None


# ---------------------------------------------------------------------------
# Pickling
# ---------------------------------------------------------------------------

def reducer_override(rec, obj):
    """What ForkingPickler.reducer_override does with recorder `rec`: a lookup
    in the current version for a cell function or class, a PicklingError
    for an unexported one, else NotImplemented."""
    try:
        if getattr(obj, "__module__", None) != "__main__":
            return NotImplemented
        qualname = getattr(obj, "__qualname__", None)
    except Exception:
        return NotImplemented
    if not isinstance(qualname, str) or isinstance(obj, types.ModuleType):
        return NotImplemented  # instances: their class comes back here
    return _reduce(rec, obj, qualname)


def _reduce(rec, obj, qualname):
    """reducer_override's answer for an object whose __module__ is __main__
    and that has a __qualname__ (a function, a class, a functools.wraps-style
    callable)."""
    import pickle  # loaded: something is pickling
    is_def = isinstance(obj, (types.FunctionType, type))
    target = rec.main
    for part in qualname.split("."):
        target = getattr(target, part, _MISSING)
        if target is _MISSING:
            break
    if target is not obj:
        if not is_def:
            return NotImplemented  # a bound method, a wrapper: pickle knows
        if isinstance(obj, types.FunctionType) and obj.__name__ == "<lambda>" \
                and obj.__globals__ is rec.main.__dict__:
            return _reduce_lambda(rec, obj)
        raise pickle.PicklingError(_unreachable(obj, qualname, target))
    top = qualname.partition(".")[0]
    path = rec.version_exporting(top)
    if path is None:
        raise pickle.PicklingError(_unexported(rec, obj, qualname, top))
    return (_rx_rt.lookup, (path, qualname))


def _reduce_lambda(rec, fn):
    import marshal
    closure = None
    if fn.__closure__ is not None:
        closure = []
        for cell in fn.__closure__:
            try:
                closure.append((cell.cell_contents,))
            except ValueError:
                closure.append(None)
        closure = tuple(closure)
    return (_rx_rt.make_function,
            (rec.current(), marshal.dumps(fn.__code__), fn.__name__,
             fn.__qualname__, fn.__defaults__, fn.__kwdefaults__, closure))


def _what(obj):
    if isinstance(obj, type):
        return "class"
    if isinstance(obj, types.FunctionType):
        return "function"
    return "object"


def _unreachable(obj, qualname, target):
    what = _what(obj)
    if target is not _MISSING and _what(target) == what:
        return ("cannot send %s %s to a worker process: it is an earlier "
                "definition - __main__.%s has been redefined since - and a "
                "worker only has the current one. Re-run the cells that "
                "made objects from the old definition." % (what, qualname, qualname))
    if "<locals>" in qualname:
        outer = qualname.partition(".<locals>")[0]
        return ("cannot send %s %s to a worker process: it is defined inside "
                "the function %s(), so a worker cannot look it up by name. "
                "Define it at the top level of a cell." % (what, qualname, outer))
    return ("cannot send %s %s to a worker process: __main__.%s is not this "
            "object (it was created dynamically or its name was rebound), so "
            "a worker cannot look it up by name. Define it with a top-level "
            "def or class statement in a cell." % (what, qualname, qualname))


def _unexported(rec, obj, qualname, top):
    why = rec.why_not_exported(top) or (
        "not bound by a top-level statement ferry saw (created with exec or "
        "type(), or through globals())")
    return ("cannot send %s __main__.%s to a worker process: %r was %s, so "
            "a worker cannot re-create it. Only top-level def/class/import "
            "statements and assignments of literals or lambdas are "
            "re-exported to workers." % (_what(obj), qualname, top, why))


# ---------------------------------------------------------------------------
# The hooks
# ---------------------------------------------------------------------------

def _hook_spawn(spawn):
    with _install_lock:
        if not getattr(spawn.get_preparation_data, "_ferry_wrapped", False):
            spawn.get_preparation_data = _wrap_preparation(spawn.get_preparation_data)


def _hook_reduction(reduction):
    with _install_lock:
        if reduction.ForkingPickler.__dict__.get("reducer_override") \
                is not _reducer_override:
            reduction.ForkingPickler.reducer_override = _reducer_override


def _wrap_preparation(original):
    def get_preparation_data(name):
        data = original(name)
        rec = _active()
        if rec is not None and sys.modules.get("__main__") is rec.main:
            try:
                path = rec.current()
            except Exception:
                # Cannot write (disk full?): a pool's respawn thread must not
                # die here.  Fall back to the last version, if any; lookups
                # of newer definitions then fail as task errors.
                path = rec.latest[0]
                if path is None:
                    return data
            data.pop("init_main_from_name", None)
            # The forkserver reads this through the same function for each
            # child.  (Its own "main_path" preload is left alone: 3.11 runs it
            # before applying sys_path, so ferry would not be importable.)
            data["init_main_from_path"] = path
        return data

    get_preparation_data._ferry_wrapped = True
    get_preparation_data.__wrapped__ = original
    return get_preparation_data


_DEFINITIONS = (type, types.FunctionType)
_NO_DICT = {}


def _reducer_override(pickler, obj):
    """ForkingPickler.reducer_override: cell functions and classes by lookup
    in the current version; NotImplemented for everything else.

    Called for nearly every object pickled, so the common case - an instance
    or an array - is turned away after two cheap checks: only classes,
    functions and functools.wraps-style wrappers can be cell definitions.
    """
    if not isinstance(obj, _DEFINITIONS) \
            and "__wrapped__" not in getattr(obj, "__dict__", _NO_DICT):
        return NotImplemented
    rec = _active()
    if rec is None:
        return NotImplemented
    rv = reducer_override(rec, obj)
    if rv is not NotImplemented and not getattr(pickler, "ferry_globals_elsewhere", False):
        from . import _globals_stdlib  # the notebook globals obj reads travel with it
        rv = _globals_stdlib.carry(rv, obj, rec)
    return rv
