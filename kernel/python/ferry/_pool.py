"""ferry's worker pools: map, submit and Executor on the C dispatcher.

Tasks are pickled here (protocol 5, buffers out of band) with the pickler
that the re-export hooks extend, so cell-defined functions travel as a
lookup in the current re-export module.  A collector thread turns the
dispatcher's results into futures; the cell waits on them with the GIL
released, so an interrupt lands as KeyboardInterrupt and cancels the rest.
"""
import concurrent.futures
import io
import itertools
import math
import os
import pickle
import sys
import threading
import time

from multiprocessing.reduction import ForkingPickler

from . import _check

try:
    import _ferry_pool
except ImportError:  # outside a ferry kernel (in a worker, or plain Python)
    _ferry_pool = None


class WorkerCrashed(RuntimeError):
    """The worker process running a task died (exit code or signal named)."""


class WorkerTraceback(Exception):
    """The traceback of an exception raised in a worker, as text."""

    def __init__(self, text):
        super().__init__(text)
        self.text = text

    def __str__(self):
        return "\n" + self.text.rstrip()


_ids = itertools.count(1)


def _context():
    return (os.getcwd(), tuple(sys.path))


def _dumps(obj):
    buf = io.BytesIO()
    buffers = []
    ForkingPickler(buf, 5, True, buffers.append).dump(obj)
    return [buf.getbuffer()] + [b.raw() for b in buffers]


def _refresh_reexport():
    """Makes sure the re-export module names every definition made so far."""
    from . import _kernel
    rec = getattr(_kernel.shell, "recorder", None)
    if rec is not None:
        rec.current()
        return rec
    return None


def _unexported_globals(fn, rec):
    """Names of __main__ globals fn reads that a worker would not have."""
    if rec is None or getattr(fn, "__module__", None) != "__main__":
        return []
    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    names, stack = set(), [code]
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack.extend(k for k in c.co_consts if hasattr(k, "co_names"))
    main = sys.modules["__main__"].__dict__
    exported = set(rec.exported_names())
    skip = {"In", "Out", "_", "__", "___", "_ih", "_oh", "_i", "_ii", "_iii"}
    return sorted(n for n in names if n in main and n not in exported and n not in skip
                  and not n.startswith("_i") and not hasattr(__builtins__, n)
                  and not isinstance(main[n], type(sys)))


def _preflight(fn, args=(), kwargs=None):
    rec = _refresh_reexport()
    missing = _unexported_globals(fn, rec)
    if missing:
        names = ", ".join(missing)
        raise _check.PicklingError(
            f"{fn.__qualname__} reads notebook global(s) {names}, computed at run time and "
            f"not re-exported to workers (only imports, definitions and literal constants "
            f"are). Fix: pass {names} as an argument, or compute it inside the function.")
    for obj, path in [(fn, "fn")] + [(a, f"args[{i}]") for i, a in enumerate(args)] + \
            [(v, f"kwargs[{k!r}]") for k, v in (kwargs or {}).items()]:
        message = _check.diagnose(obj, path)
        if message:
            raise _check.PicklingError(message)


class Pool:
    """A set of worker processes with one dispatcher; see map and submit."""

    def __init__(self, workers=None):
        if _ferry_pool is None:
            raise RuntimeError("ferry pools run inside the ferry kernel")
        self._n = workers or len(os.sched_getaffinity(0))
        self._handle = None
        self._lock = threading.Lock()
        self._pending = {}  # task id -> (future, on_result)
        self._collector = None

    # ------------------------------------------------------------- life

    def _start(self):
        with self._lock:
            if self._handle is None:
                self._handle = _ferry_pool.create(self._n)
                self._collector = threading.Thread(target=self._collect, name="ferry-collector",
                                                   daemon=True)
                self._collector.start()
            return self._handle

    def size(self, n=None):
        if n is not None:
            if int(n) < 1:
                raise ValueError("a pool needs at least one worker")
            self._n = int(n)
            if self._handle is not None:
                _ferry_pool.size(self._handle, self._n)
        return self._n

    def pids(self):
        return _ferry_pool.pids(self._handle) if self._handle is not None else []

    def shutdown(self):
        with self._lock:
            handle, self._handle = self._handle, None
        if handle is not None:
            _ferry_pool.close(handle)
            self._collector.join(timeout=5)
        for future, _ in list(self._pending.values()):
            future.cancel()
        self._pending.clear()

    # ------------------------------------------------------- collecting

    def _collect(self):
        handle = self._handle
        while True:
            try:
                item = _ferry_pool.next(handle, -1)
            except EOFError:
                return
            if item is None:
                continue
            task_id, status, frames, message = item
            entry = self._pending.pop(task_id, None)
            if entry is None:
                continue
            future, _ = entry
            if status == "ok":
                try:
                    future.set_result(pickle.loads(frames[0], buffers=frames[1:]))
                except BaseException as exc:
                    future.set_exception(exc)
            elif status == "error":
                future.set_exception(self._remote_error(frames))
            elif status == "crashed":
                future.set_exception(WorkerCrashed(message))
            else:
                future.cancel()

    @staticmethod
    def _remote_error(frames):
        try:
            exc, text = pickle.loads(frames[0], buffers=frames[1:])
        except BaseException as err:
            return RuntimeError(f"a task failed and its exception could not be read: {err}")
        if exc is None:
            exc = RuntimeError(text.split("\n", 1)[0])
        exc.__cause__ = WorkerTraceback(text)
        return exc

    # ------------------------------------------------------- submitting

    def _send(self, fn, kind, work):
        handle = self._start()
        future = concurrent.futures.Future()
        task_id = next(_ids)
        frames = _dumps((_context(), fn, kind, work))
        self._pending[task_id] = (future, None)
        future.task_id = task_id
        _ferry_pool.submit(handle, task_id, frames)
        return future

    def submit(self, fn, *args, **kwargs):
        _preflight(fn, args, kwargs)
        future = self._send(fn, "call", (args, kwargs))
        future.set_running_or_notify_cancel()
        return future

    def map(self, fn, iterable, *, chunksize=None):
        items = list(iterable)
        _preflight(fn)
        if not items:
            return []
        if chunksize is None:
            chunksize = max(1, math.ceil(len(items) / (4 * self._n)))
        elif chunksize < 1:
            raise ValueError("chunksize must be at least 1")
        futures = []
        try:
            for i in range(0, len(items), chunksize):
                chunk = items[i:i + chunksize]
                try:
                    futures.append(self._send(fn, "map", chunk))
                except Exception:
                    for j, item in enumerate(chunk):
                        _check.check(item, f"iterable[{i + j}]")
                    raise
            return self._gather(futures, len(items))
        except BaseException:
            self.cancel(futures)
            raise

    def _gather(self, futures, total):
        results = []
        progress = _Progress(total)
        for future in futures:
            part = future.result()
            results.extend(part)
            progress.update(len(results))
        progress.done()
        return results

    def cancel(self, futures):
        ids = [f.task_id for f in futures if not f.done()]
        if ids and self._handle is not None:
            _ferry_pool.cancel(self._handle, ids)


class _Progress:
    """An updating display for a map that runs longer than about a second."""

    DELAY = 1.0

    def __init__(self, total):
        self.total = total
        self.start = time.monotonic()
        self.handle = None

    def _show(self, done):
        from . import _display
        frac = done / self.total if self.total else 1.0
        bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
        text = f"ferry.map [{bar}] {done}/{self.total} ({frac:.0%})"
        html = (f"<progress value='{done}' max='{self.total}'></progress> "
                f"<code>ferry.map {done}/{self.total} ({frac:.0%})</code>")
        bundle = {"text/plain": text, "text/html": html}
        if self.handle is None:
            self.handle = _display.display(bundle, raw=True, display_id=True)
        else:
            self.handle.update(bundle, raw=True)

    def update(self, done):
        if self.handle is None and time.monotonic() - self.start < self.DELAY:
            return
        self._show(done)

    def done(self):
        if self.handle is not None:
            self._show(self.total)


class Executor(concurrent.futures.Executor):
    """A concurrent.futures.Executor with its own ferry workers."""

    def __init__(self, max_workers=None):
        self._pool = Pool(max_workers)
        self._shutdown = False

    def submit(self, fn, /, *args, **kwargs):
        if self._shutdown:
            raise RuntimeError("cannot submit after shutdown")
        return self._pool.submit(fn, *args, **kwargs)

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        if len(iterables) == 1:
            return iter(self._pool.map(fn, iterables[0], chunksize=chunksize))
        return super().map(fn, *iterables, timeout=timeout, chunksize=chunksize)

    def shutdown(self, wait=True, *, cancel_futures=False):
        self._shutdown = True
        if cancel_futures:
            self._pool.cancel(f for _, (f, _) in list(self._pool._pending.items()))
        if wait:
            for future, _ in list(self._pool._pending.values()):
                try:
                    future.exception()
                except concurrent.futures.CancelledError:
                    pass
        self._pool.shutdown()


_shared = None


def shared():
    global _shared
    if _shared is None:
        _shared = Pool()
    return _shared
