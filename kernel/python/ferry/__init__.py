"""ferry: send what you define in notebook cells to worker processes.

    import ferry
    ferry.map(f, xs)            # ordered results from the kernel's shared pool
    ferry.submit(f, *args)      # a concurrent.futures.Future
    ferry.workers()             # size of the shared pool; ferry.workers(n) resizes
    with ferry.Executor(4) as ex: ...   # a pool of its own
    ferry.check(obj)            # why obj cannot be sent, if it cannot
    ferry.explain(obj)          # how pickle would send each part of obj
    ferry.timeline()            # the last map: which worker ran what, when

`ferry.runtime_dir` names the kernel's private runtime directory (mode
0700), where the re-exported definitions live.
"""
__version__ = "0.1.0"

# Set by the kernel at start; None outside a ferry kernel.
runtime_dir = None


def __getattr__(name):
    # Imported on first use: the kernel imports ferry at start, and spawn
    # children import it for every task, so it must stay cheap.
    if name == "PicklingError":
        from . import _check
        return _check.PicklingError
    if name == "explain":
        from . import _explain
        return _explain.explain
    if name in ("timeline", "timelines"):
        from . import _timeline
        return getattr(_timeline, name)
    if name in ("Executor", "WorkerCrashed", "check"):
        from . import _pool
        return getattr(_pool, name)
    raise AttributeError(f"module 'ferry' has no attribute {name!r}")

__all__ = ["map", "submit", "workers", "Executor", "check", "explain", "timeline",
           "timelines", "PicklingError",
           "WorkerCrashed", "runtime_dir"]


def map(fn, iterable, *, chunksize=None):
    """Applies fn to each item in the kernel's shared worker pool; returns the
    results in order.

    chunksize=1 sends each item as its own task; None picks a size (about
    four chunks per worker) so that small tasks do not pay a round trip each.
    Before anything is sent, ferry.PicklingError says what cannot travel:
    an argument that cannot be pickled (where, what, why, and the fix), or
    a notebook global fn reads that workers do not have (a computed value
    such as `data = load()`; pass it as an argument instead).  What tasks
    print appears in this cell.  A task's exception is raised here as
    itself, with the worker's traceback; a worker that dies fails its task
    with ferry.WorkerCrashed.  An interrupt cancels the queued tasks and
    interrupts the running ones.  A map running longer than about a second
    shows a progress display."""
    from . import _pool
    return _pool.shared().map(fn, iterable, chunksize=chunksize)


def submit(fn, *args, **kwargs):
    """Runs fn(*args, **kwargs) in the shared pool; returns a
    concurrent.futures.Future (same checks and errors as map).  Interrupting
    the kernel while a cell waits on its result() interrupts the task too."""
    from . import _pool
    return _pool.shared().submit(fn, *args, **kwargs)


def workers(n=None):
    """The shared pool's size (usable CPUs by default); with n, resizes it.
    The pool starts on first use; a resize of a running pool starts workers,
    or retires idle ones (busy ones finish their task first)."""
    from . import _pool
    return _pool.shared().size(n)
