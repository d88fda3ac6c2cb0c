"""ferry on a Dask cluster, how its work ends: the Future of a submitted
task, the tally of a map's ended tasks, cancelling without waiting, Dask's
own failures, and closing the Clients ferry made (private to ferry._dask).
Imported only with ferry._dask; `distributed` only inside functions.
"""
import atexit
import collections
import threading

from . import _pool

_owned = []  # the Clients ferry made: closed at kernel exit


class _Ended:
    """The tasks of one map that ended, filed by the client's event loop
    and taken by the cell's thread; the event is set when all ended or one
    did not finish (failed, cancelled)."""

    def __init__(self, n):
        self.left = n
        self.indexes = collections.deque()
        self.event = threading.Event()

    def add(self, index, failed):
        self.indexes.append(index)
        self.left -= 1
        if failed or self.left == 0:
            self.event.set()

    def take(self):
        out = []
        while self.indexes:
            out.append(self.indexes.popleft())
        return out


def _dask_error(exc):
    """What a Dask-level failure (not the task's own exception) means here."""
    from distributed.scheduler import KilledWorker
    if isinstance(exc, KilledWorker):
        return _pool.WorkerCrashed(
            f"Dask gave up on the task after the workers running it died "
            f"(KilledWorker: {exc}); "
            f"Dask reruns a task whose worker dies up to its allowed-failures "
            f"setting, so a task may have run more than once")
    return exc


def _cancel(client, futures):
    """Cancels Dask futures without waiting for the scheduler's answer (a
    cell that was interrupted must not wait on a scheduler that is gone)."""
    if client.status != "running":
        return
    threading.Thread(target=_cancel_now, args=(client, futures), daemon=True,
                     name="ferry-dask-cancel").start()


def _cancel_now(client, futures):
    try:
        client.cancel(futures)
    except Exception:
        pass


class ClusterFuture(_pool.InterruptibleFuture):
    """A Future of a task on the cluster; an interrupted wait on it cancels
    the task if it has not started."""

    _dask = None

    def _interrupted(self):
        if self._dask is not None:
            _cancel(self._dask.client, [self._dask])

    def cancel(self):
        if self._dask is not None and not self.done():
            _cancel(self._dask.client, [self._dask])
        return super().cancel()



def close_client(client):
    try:
        client.close(timeout=5)
    except Exception:
        pass
    if client in _owned:
        _owned.remove(client)


@atexit.register
def _close_owned():
    # At kernel shutdown and restart: the Clients ferry made go (never the
    # user's own, which the user's code owns).
    for client in list(_owned):
        close_client(client)
