"""Notebook globals for multiprocessing and concurrent.futures pools.

These pools have no cache of ferry's: the globals a cell function reads
(found and pickled as for ferry's own pool, ferry._globals) travel inside
the function's reduction, with every task that names it, and a child binds
them in the re-export version before the task runs
(ferry._globals_rt.with_globals).

The pools pickle tasks later, in a background thread.  So that a task gets
the values of the call, Pool.apply_async, _map_async (map, map_async,
starmap, starmap_async, apply goes through apply_async), imap,
imap_unordered and ProcessPoolExecutor.submit and map wrap the function
with its values first (snapshot); anything else pickled with
ForkingPickler carries the values of the moment it is pickled (carry).
"""
import functools
import threading
import types

from . import _globals, _globals_rt

_carrying = threading.local()


def carry(rv, obj, rec):
    """rv (reducer_override's answer for the cell function or class obj),
    extended with the notebook globals obj reads, pickled now: a child
    binds them in the re-export version before the task runs."""
    from . import _rx_rt
    if not (isinstance(rv, tuple) and len(rv) == 2
            and rv[0] in (_rx_rt.lookup, _rx_rt.make_function)):
        return rv
    path = rv[1][0]  # both take the re-export version's path first
    # Globals already travelling in an outer reduction (a global holding a
    # cell function that reads it back) are not pickled again inside it.
    outer = getattr(_carrying, "names", None)
    values = _globals.globals_for(obj, rec, skip=outer or ())
    if not values:
        return rv
    return (_globals_rt.with_globals, (path, _blob(values, obj, outer)) + rv)


def _blob(values, reader, outer=None):
    """((name, pickle), ...) of values, each pickled once and in band (a
    child of a multiprocessing pool reads its task from a pipe), so an
    unpicklable one is named."""
    _carrying.names = set(outer or ()) | set(values)
    try:
        out = []
        for name in sorted(values):
            payload, _ = _globals._pickle(name, values[name], reader, False)
            _globals._warn_size(name, len(payload), reader)
            out.append((name, bytes(payload)))
        return tuple(out)
    finally:
        _carrying.names = outer


class Carried:
    """A cell function with the globals it reads taken at the call
    (Pool.apply_async, map_async, imap, ProcessPoolExecutor.submit and map
    pickle the task later, in a background thread).  Pickles as the
    function plus those values; called in this process (a ThreadPool), it
    is the function."""

    __slots__ = ("fn", "reduced")

    def __init__(self, fn, reduced):
        self.fn, self.reduced = fn, reduced

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def __reduce__(self):
        return self.reduced


def snapshot(fn):
    """fn, or a Carried holding the values of the globals fn reads now."""
    from . import _rx_hooks
    rec = _rx_hooks._active()
    if rec is None or isinstance(fn, Carried):
        return fn
    if not isinstance(fn, (types.FunctionType, type)):
        return fn  # a partial, a method, an instance: pickled when sent
    rv = rec.reducer_override(fn)
    if rv is NotImplemented:
        return fn
    carried = carry(rv, fn, rec)
    return fn if carried is rv else Carried(fn, carried)


def _hook_pool(pool):
    """Pool's entry points take the globals at the call (sync ones too:
    map and starmap go through _map_async, apply through apply_async)."""
    cls = pool.Pool
    if getattr(cls, "_ferry_snapshots", False):
        return
    for name in ("apply_async", "_map_async", "imap", "imap_unordered"):
        setattr(cls, name, _taking_values(getattr(cls, name), pool.ThreadPool))
    cls._ferry_snapshots = True


def _hook_executor(process):
    cls = process.ProcessPoolExecutor
    if getattr(cls, "_ferry_snapshots", False):
        return
    for name in ("submit", "map"):
        setattr(cls, name, _taking_values(getattr(cls, name), None))
    cls._ferry_snapshots = True


def _taking_values(method, threads):
    @functools.wraps(method)
    def wrapper(self, fn, *args, **kwargs):
        if threads is None or not isinstance(self, threads):
            fn = snapshot(fn)
        return method(self, fn, *args, **kwargs)
    return wrapper


def install_hooks():
    """Pools of multiprocessing and concurrent.futures take the values at
    the call; hooked when they are imported."""
    from . import _importhook
    _importhook.when_imported("multiprocessing.pool", _hook_pool)
    _importhook.when_imported("concurrent.futures.process", _hook_executor)
