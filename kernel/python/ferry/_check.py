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


class PicklingError(pickle.PicklingError):
    """An object cannot be sent to a worker process; the message says what,
    where, why, and how to fix it."""


# Types that hold a live OS resource or thread state: the reason and fix.
_RESOURCE_HINTS = {
    "lock": "a lock belongs to the process that made it",
    "RLock": "a lock belongs to the process that made it",
    "socket": "a socket is a live connection owned by this process",
    "TextIOWrapper": "an open file is a live OS handle owned by this process",
    "BufferedReader": "an open file is a live OS handle owned by this process",
    "BufferedWriter": "an open file is a live OS handle owned by this process",
    "FileIO": "an open file is a live OS handle owned by this process",
    "Thread": "a thread runs in this process only",
    "generator": "a generator's paused frame cannot be copied",
    "coroutine": "a coroutine's paused frame cannot be copied",
    "SSLContext": "an SSL context wraps live OS state",
    "Connection": "a connection is a live OS resource owned by this process",
}

_RESOURCE_FIX = ("create it inside the task instead of passing it, or give the class "
                 "that holds it __getstate__/__setstate__ methods that leave it out "
                 "and re-create it")


def _dumps(obj):
    ForkingPickler(io.BytesIO(), 5, True, lambda b: None).dump(obj)


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
        return
    else:
        state = getattr(obj, "__dict__", None)
        if isinstance(state, dict):
            for k, v in state.items():
                yield f".{k}", v


def _explain_function(fn, path):
    qual = getattr(fn, "__qualname__", "")
    name = getattr(fn, "__name__", "?")
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


def _explain(obj, path, err):
    if isinstance(obj, (types.FunctionType, type)):
        text = _explain_function(obj, path)
        if text:
            return text
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
    seen = set()
    while id(obj) not in seen:
        seen.add(id(obj))
        for suffix, child in _children(obj):
            if not _picklable(child):
                obj, path = child, path + suffix
                break
        else:
            break
    try:
        _dumps(obj)
        err = first_error
    except Exception as inner:
        err = inner
    return _explain(obj, path, err)


def check(obj, path="obj"):
    """Returns quietly if obj can be sent to a worker; otherwise raises
    ferry.PicklingError saying what cannot be pickled, where, why, and how
    to fix it."""
    message = diagnose(obj, path)
    if message:
        raise PicklingError(message)
