"""ferry.Executor: the concurrent.futures interface to a ferry pool of its
own (kernel/python/ferry/_pool.py), or to a Dask cluster (ferry._dask)."""
import concurrent.futures
import threading

from ._pool import Pool


class Executor(concurrent.futures.Executor):
    """A concurrent.futures.Executor with ferry workers of its own (started
    on first use), stopped by shutdown() or at the end of its with block.
    Executor(client=...) runs its tasks on a Dask cluster instead (a
    distributed.Client or a scheduler address; see ferry._dask)."""

    def __new__(cls, max_workers=None, *, client=None):
        if client is not None:
            from . import _dask
            return _dask.ClusterExecutor(client)
        return super().__new__(cls)

    def __init__(self, max_workers=None, *, client=None):
        self._pool = Pool(max_workers)
        self._shutdown = False

    @property
    def _max_workers(self):
        return self._pool.size()

    def submit(self, fn, /, *args, **kwargs):
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        return self._pool.submit(fn, *args, **kwargs)

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if len(iterables) == 1 and timeout is None:
            return iter(self._pool.map(fn, iterables[0], chunksize=chunksize))
        return super().map(fn, *iterables, timeout=timeout, chunksize=chunksize)

    def shutdown(self, wait=True, *, cancel_futures=False):
        self._shutdown = True
        if cancel_futures:
            self._pool.cancel(self._pool.futures(), interrupt=False)
        pending = self._pool.futures()
        maps = self._pool.running_maps()

        def finish():
            concurrent.futures.wait(pending)
            for run in maps:  # maps other threads run on this executor
                run.over.wait()
            self._pool.shutdown()

        if wait:
            finish()
        else:
            # Return now; the workers go once the tasks already sent are done.
            threading.Thread(target=finish, name="ferry-executor-shutdown",
                             daemon=True).start()
