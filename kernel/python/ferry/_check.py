"""Why an object cannot be sent to a worker, said exactly.

pickle's own errors name a type ("cannot pickle '_thread.lock' object") but
not where it sits in your arguments, nor what to do.  check() walks the
object, pickling each part, and names the innermost part that fails, its
path (`args[0]['lock']`), the reason and the fix.
"""
import io
import pickle
import types

from multiprocessing.reduction import ForkingPickler


class TaskPickler(ForkingPickler):
    """The pickler of ferry's pool tasks: multiprocessing's, so the re-export
    hook sends cell functions and classes by lookup, minus its reducers for
    sockets and Connections - they pass file descriptors through
    multiprocessing's resource sharer, which a ferry worker (not a
    multiprocessing child) cannot reach; those are live OS resources, said
    so before dispatch."""

    _extra_reducers = {
        cls: reduce for cls, reduce in ForkingPickler._extra_reducers.items()
        if cls.__module__ not in ("socket", "multiprocessing.connection")
    }


class PicklingError(pickle.PicklingError):
    """An object cannot be sent to a worker process; the message says what,
    where, why, and how to fix it."""


# Types that hold a live OS resource or thread state: the reason and fix.
_LOCK = "a lock is a live OS resource, which belongs to the process that made it"
_FILE = "an open file is a live OS resource (a file descriptor) of this process"
_RESOURCE_HINTS = {
    "lock": _LOCK,
    "RLock": _LOCK,
    "Condition": _LOCK,
    "Semaphore": _LOCK,
    "socket": "a socket is a live OS resource, a connection owned by this process",
    "TextIOWrapper": _FILE,
    "BufferedReader": _FILE,
    "BufferedWriter": _FILE,
    "BufferedRandom": _FILE,
    "FileIO": _FILE,
    "Thread": "a thread is a live OS resource that runs in this process only",
    "generator": "a generator's paused frame cannot be copied",
    "coroutine": "a coroutine's paused frame cannot be copied",
    "SSLContext": "an SSL context wraps live OS state",
    "Connection": "a connection is a live OS resource owned by this process",
}

_RESOURCE_FIX = ("create it inside the task instead of passing it, or give the class "
                 "that holds it __getstate__/__setstate__ methods that leave it out "
                 "and re-create it")


def _dumps(obj):
    TaskPickler(io.BytesIO(), 5, True, lambda b: None).dump(obj)


def _picklable(obj):
    try:
        _dumps(obj)
        return True
    except Exception:
        return False


def _children(obj):
    """(path suffix, child) pairs worth descending into."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield f"[{k!r}]", v
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield f"[{i}]", v
    elif isinstance(obj, (set, frozenset)):
        for v in obj:
            yield f"{{{v!r}}}", v
    elif isinstance(obj, types.FunctionType):
        # A lambda made in a cell travels by value with its closure and
        # defaults (ferry._reexport): one of those is what failed.
        if obj.__name__ == "<lambda>" and getattr(obj, "__module__", None) == "__main__":
            for name, cell in zip(obj.__code__.co_freevars, obj.__closure__ or ()):
                try:
                    yield f" (closure variable {name!r})", cell.cell_contents
                except ValueError:
                    pass
            for i, v in enumerate(obj.__defaults__ or ()):
                yield f" (default argument {i})", v
        return
    else:
        state = getattr(obj, "__dict__", None)
        if isinstance(state, dict):
            for k, v in state.items():
                yield f".{k}", v


def _explain_function(fn, path):
    qual = getattr(fn, "__qualname__", "")
    name = getattr(fn, "__name__", "?")
    if name == "<lambda>" and getattr(fn, "__module__", None) == "__main__":
        return None  # sent by value: the reason is in what it holds
    if "<locals>" in qual:
        outer = qual.split(".<locals>")[0]
        kind = "a lambda" if name == "<lambda>" else f"the nested function {name!r}"
        return (f"{path} is {kind} defined inside {outer}(): pickle sends functions by "
                f"name, and a function made inside another call has no importable name. "
                f"Fix: define it at the top level of a cell (bind a lambda to a name "
                f"there), or pass the data it closes over as arguments.")
    if name == "<lambda>":
        return (f"{path} is an unnamed lambda: pickle sends functions by name. Fix: bind "
                f"it to a name at the top level of a cell (f = lambda x: ...) or use def.")
    return None


def _explain(obj, path, err, outer=None):
    if isinstance(obj, (types.FunctionType, type)):
        text = _explain_function(obj, path)
        if text:
            return text
    if outer is not None:
        # A part of a lambda: say which lambda, and where it was made.
        qual = getattr(outer, "__qualname__", "")
        where = (f", made inside {qual.split('.<locals>')[0]}()" if "<locals>" in qual
                 else "")
        holder = path.split(" (")[0]
        return (f"{_explain(obj, path, err)} ({holder} is the lambda {qual}{where}; a "
                f"lambda travels by value, with the variables it closes over.)")
    tname = type(obj).__name__
    qual = f"{type(obj).__module__}.{type(obj).__qualname__}"
    why = _RESOURCE_HINTS.get(tname)
    if why:
        return (f"{path} is a {qual} object, which cannot be pickled: {why}. "
                f"Fix: {_RESOURCE_FIX}.")
    return f"{path} ({qual}) cannot be pickled: {err}"


def diagnose(obj, path="obj"):
    """Returns a message naming the innermost unpicklable part, or None."""
    try:
        _dumps(obj)
        return None
    except Exception as err:
        first_error = err
    # Descend while a child fails too: the innermost failure is the cause.
    seen, outer = set(), None
    while id(obj) not in seen:
        seen.add(id(obj))
        for suffix, child in _children(obj):
            if not _picklable(child):
                if isinstance(obj, types.FunctionType):
                    outer = obj
                obj, path = child, path + suffix
                break
        else:
            break
    try:
        _dumps(obj)
        err = first_error
    except Exception as inner:
        err = inner
    return _explain(obj, path, err, outer)


def check(obj, path="obj"):
    """Returns quietly if obj can be sent to a worker; otherwise raises
    ferry.PicklingError saying what cannot be pickled, where, why, and how
    to fix it."""
    message = diagnose(obj, path)
    if message:
        raise PicklingError(message)
