"""ferry: send what you define in notebook cells to worker processes.

    import ferry
    ferry.map(f, xs)            # ordered results from the kernel's shared pool
    ferry.submit(f, *args)      # a concurrent.futures.Future
    ferry.workers()             # size of the shared pool; ferry.workers(n) resizes
    with ferry.Executor(4) as ex: ...   # a pool of its own
    ferry.check(obj)            # why obj cannot be sent, if it cannot
    ferry.explain(obj)          # how pickle would send each part of obj
    ferry.timeline()            # the last map: which worker ran what, when
    ferry.use(client)           # map, submit, workers on a Dask cluster

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
    if name == "Executor":
        from . import _executor
        return _executor.Executor
    if name in ("WorkerCrashed", "check"):
        from . import _pool
        return getattr(_pool, name)
    raise AttributeError(f"module 'ferry' has no attribute {name!r}")

__all__ = ["map", "submit", "workers", "use", "Executor", "check", "explain", "timeline",
           "timelines", "PicklingError",
           "WorkerCrashed", "runtime_dir"]

# The shared pool's target: None for the kernel's local pool, else the Dask
# cluster (a ferry._dask.Cluster) that ferry.use chose.
_cluster = None


_shared = None  # ferry._pool.shared, once a call imported it


def _target():
    if _cluster is not None:
        return _cluster
    global _shared
    if _shared is None:  # an import statement per submit costs a Python call
        from . import _pool
        _shared = _pool.shared
    return _shared()


def use(target, *, timeout=None):
    """Sends ferry.map, ferry.submit and ferry.workers() to a Dask cluster:
    target is a distributed.Client, or a scheduler address such as
    "tcp://host:8786" (ferry then makes the Client, and closes it when you
    switch away or the kernel stops); None goes back to the local pool.
    Returns the previous target (None for the local pool).

    Differences from the local pool: an interrupt cancels the queued tasks
    but lets running ones finish; Dask reruns a task whose worker died (up
    to its allowed-failures), so a task may run more than once.

    An address that does not answer within timeout seconds (default
    ferry._dask.CONNECT_TIMEOUT, 10) raises ConnectionError, and a worker
    running another Python version raises RuntimeError; either way the
    target stays as it was."""
    global _cluster
    if target is None:
        previous, _cluster = _cluster, None
        return previous.release() if previous is not None else None
    from . import _dask
    cluster = _dask.Cluster.connect(target, timeout or _dask.CONNECT_TIMEOUT)
    previous, _cluster = _cluster, cluster
    return previous.release() if previous is not None else None


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
    shows a progress display.  After ferry.use(cluster) the tasks run on the
    Dask cluster, with the same behaviour (see ferry.use for what differs)."""
    return _target().map(fn, iterable, chunksize=chunksize)


def submit(fn, *args, **kwargs):
    """Runs fn(*args, **kwargs) in the shared pool; returns a
    concurrent.futures.Future (same checks and errors as map).  Interrupting
    the kernel while a cell waits on its result() interrupts the task too."""
    return _target().submit(fn, *args, **kwargs)


def workers(n=None):
    """The shared pool's size (usable CPUs by default); with n, resizes it.
    On a Dask cluster (ferry.use): the worker threads it has.
    The pool starts on first use; a resize of a running pool starts workers,
    or retires idle ones (busy ones finish their task first)."""
    return _target().size(n)
