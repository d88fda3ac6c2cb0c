"""ferry: send what you define in notebook cells to worker processes.

    import ferry
    ferry.map(f, xs)            # ordered results from the kernel's shared pool
    ferry.submit(f, *args)      # a concurrent.futures.Future
    ferry.workers()             # size of the shared pool; ferry.workers(n) resizes
    with ferry.Executor(4) as ex: ...   # a pool of its own
    ferry.check(obj)            # why obj cannot be sent, if it cannot

`ferry.runtime_dir` names the kernel's private runtime directory (mode
0700), where the re-exported definitions live.
"""
__version__ = "0.1.0"

# Set by the kernel at start; None outside a ferry kernel.
runtime_dir = None


def __getattr__(name):
    # Imported on first use: the kernel imports ferry at start, and spawn
    # children import it for every task, so it must stay cheap.
    if name in ("PicklingError", "check"):
        from . import _check
        return getattr(_check, name)
    if name in ("Executor", "WorkerCrashed"):
        from . import _pool
        return getattr(_pool, name)
    raise AttributeError(f"module 'ferry' has no attribute {name!r}")

__all__ = ["map", "submit", "workers", "Executor", "check", "PicklingError",
           "WorkerCrashed", "runtime_dir"]


def map(fn, iterable, *, chunksize=None):
    """Applies fn to each item in the kernel's shared worker pool; returns the
    results in order.  chunksize=1 sends each item as its own task; None
    picks a size so that small tasks do not pay a round trip each."""
    from . import _pool
    return _pool.shared().map(fn, iterable, chunksize=chunksize)


def submit(fn, *args, **kwargs):
    """Runs fn(*args, **kwargs) in the shared pool; returns a Future."""
    from . import _pool
    return _pool.shared().submit(fn, *args, **kwargs)


def workers(n=None):
    """The shared pool's size (usable CPUs by default); with n, resizes it."""
    from . import _pool
    return _pool.shared().size(n)
