"""ferry's worker pools: map, submit and Executor on the C dispatcher.

Tasks are pickled here (protocol 5, buffers out of band) with the pickler
that the re-export hooks extend, so cell-defined functions travel as a
lookup in the current re-export module - a function defined or redefined
after the pool started is the one that runs.  A collector thread turns the
dispatcher's results into futures; the cell waits on them with the GIL
released, so an interrupt lands as KeyboardInterrupt and cancels the rest.
"""
import atexit
import concurrent.futures
import io
import itertools
import math
import os
import pickle
import sys
import threading
import time
import types
import weakref

from . import _check, _globals, _lone, _session, _timeline
from ._maprun import _MapRun
from ._task_labels import _fn_name, _remote_error, _task_label

try:
    import _ferry_pool
except ImportError:  # outside a ferry kernel (in a worker, or plain Python)
    _ferry_pool = None


class WorkerCrashed(RuntimeError):
    """The worker process running a task died; the message names the exit
    code or signal.  The pool replaces the worker; other tasks go on."""


MAX_WORKERS = 256  # the C pool's limit (kernel/pool/sched.h)
_RUNNING, _FINISHED = concurrent.futures._base.RUNNING, concurrent.futures._base.FINISHED
_next_id = 1
_ids_lock = threading.Lock()


def _take_ids(n):
    """The first of n consecutive task ids (submits may come from threads)."""
    global _next_id
    with _ids_lock:
        first, _next_id = _next_id, _next_id + n
    return first
_pools = weakref.WeakSet()
# A thread waiting on a lone task's result comes back to Python this often,
# so that an interrupt lands (the wait itself is in C, the GIL released).
_DIRECT_SLICE = 0.05
_DIRECT_SLICE_MS = int(_DIRECT_SLICE * 1000)
# A forked child (multiprocessing's fork) has no dispatchers: a flag the
# fork sets, not a getpid() (a system call) at every submit and result.
_forked = False


def _note_fork():
    global _forked
    _forked = True


os.register_at_fork(after_in_child=_note_fork)


def _context():
    """What a worker follows at each task: the kernel's cwd and sys.path."""
    return (os.getcwd(), tuple(sys.path))


def _dumps(obj):
    """[payload, buffer...]: obj pickled for a worker."""
    # Most task bodies (numbers, strings, arrays) need none of the task
    # pickler's hooks, which only act on what belongs to __main__; plain
    # pickling is several times cheaper per task.  Anything that names
    # __main__ (or fails) goes through the task pickler.
    buffers = []
    try:
        payload = pickle.dumps(obj, 5, buffer_callback=buffers.append)
    except Exception:
        payload = None
    if payload is None or b"__main__" in payload:
        buf = io.BytesIO()
        buffers = []
        _check.TaskPickler(buf, 5, True, buffers.append).dump(obj)
        payload = buf.getbuffer()
    if not buffers:  # most bodies: no list to build and join per task
        return [payload]
    return [payload] + [b.raw() for b in buffers]


# Where a range's chunk, pickled, becomes cheaper as a range than as a list
# (measured round trip, dumps and loads: 2.5 us either way at 64 items; 4.5
# against 0.8 us at one).
_RANGE_AS_LIST = 64

_last_head = (None, None)  # (key, bytes) of the last head of a cell function


def _head(fn, spec=None, context=None):
    """What every task of one dispatch shares: (context, fn), or (context,
    fn, spec) when it sends notebook globals (ferry._globals), in band;
    context is _context() unless given."""
    if context is None:
        context = _context()
    # A function defined in a cell travels as a lookup in the current
    # re-export version: the same bytes until the definitions, the kernel's
    # directory or its sys.path change.
    global _last_head
    key = None
    rec = _recorder()
    path, exported = rec.latest if rec is not None else (None, ())
    if (isinstance(fn, types.FunctionType) and fn.__module__ == "__main__"
            and fn.__name__ in exported
            and sys.modules["__main__"].__dict__.get(fn.__name__) is fn):
        key = (fn, path, context, spec)
        if _last_head[0] == key:
            return _last_head[1]
    buf = io.BytesIO()
    pickler = _check.TaskPickler(buf, 5, True)
    pickler.ferry_globals_elsewhere = True  # they are in spec
    pickler.dump((context, fn) if spec is None else (context, fn, spec))
    head = buf.getbuffer()
    if key is not None:
        _last_head = (key, head)
    return head


def _flush():
    """Publishes the worker output forwarded so far, so that it comes before
    whatever the cell prints next."""
    if _ferry_pool is not None and not _forked:  # a fork has no publisher
        _ferry_pool.flush()


# --------------------------------------------------------------- preflight

def _recorder():
    """The kernel's re-export recorder, or None (no shell yet), as the
    kernel handed it down."""
    return _session.recorder


def _preflight(fn, path="fn", diagnose=True):
    """Checks, before anything is pickled, what fn needs in a worker; returns
    the re-export recorder.  Map and submit pass diagnose=False: they pickle
    fn and the globals it reads next anyway, and diagnose only if that
    fails."""
    rec = _session.recorder if _ferry_pool is not None else None
    if rec is not None:
        rec.current()  # the re-export module names every definition so far
    if diagnose:
        _globals.check(fn, rec)
        message = _check.diagnose(fn, path)
        if message:
            raise _check.PicklingError(message)
    return rec


def check(obj):
    """ferry.check: the diagnosis map and submit run before dispatch - a
    notebook global the function reads that cannot be pickled, or anything
    else that cannot - raising ferry.PicklingError, else returning None."""
    _preflight(obj, "obj")


def _explain(exc, parts):
    """Pickling a task failed with exc: raises ferry.PicklingError naming the
    first of parts [(obj, path)] that cannot be pickled, else exc itself.
    Arguments are diagnosed only after a failure, so a large array is not
    pickled twice."""
    for obj, path in parts:
        message = _check.diagnose(obj, path)
        if message:
            raise _check.PicklingError(message) from None
    raise exc.with_traceback(None) from None


# ------------------------------------------------------------------ futures

class InterruptibleFuture(concurrent.futures.Future):
    """A Future whose wait, when interrupted, interrupts its task too (as in
    map): subclasses say how (_interrupted) and what follows a wait (_waited).
    The cluster's futures share it."""

    def _interrupted(self):
        pass

    def _waited(self):
        pass

    def _wait(self, timeout):
        """A wait of the subclass's own before the ordinary one; returns the
        timeout left for that."""
        return timeout

    def result(self, timeout=None):
        try:
            return super().result(self._wait(timeout))
        except KeyboardInterrupt:
            self._interrupted()
            raise
        finally:
            self._waited()

    def exception(self, timeout=None):
        try:
            return super().exception(self._wait(timeout))
        except KeyboardInterrupt:
            self._interrupted()
            raise
        finally:
            self._waited()


class _Future(InterruptibleFuture):
    """A task of a local pool: result() also publishes the task's output
    first."""

    _ferry_pool = None  # the Pool that runs the task

    def __init__(self, pool, task_id, call):
        super().__init__()
        # Running from the start, without set_running_or_notify_cancel: its
        # lock and checks guard against other threads, and no other thread
        # holds this future yet.
        self._state = _RUNNING
        self._ferry_pool = pool
        self.task_id = task_id
        self.submitted = time.monotonic_ns() // 1000
        self._ferry_call = call  # its label, made only if it crashes

    def result(self, timeout=None):
        # The usual end of a lone task: its result taken from the dispatcher
        # here (_wait_direct), then returned as it is, without the ordinary
        # wait's second look under the future's lock.
        if timeout is None and self._state is _RUNNING:
            try:
                self._ferry_pool._wait_direct(self, None)
                if self._state is _FINISHED and self._exception is None:
                    return self._result
            except KeyboardInterrupt:
                self._interrupted()
                raise
            finally:
                _flush()
        return super().result(timeout)

    def _interrupted(self):
        pool = self._ferry_pool
        if pool is not None:
            pool.cancel([self], interrupt=True)

    def _waited(self):
        _flush()

    def _wait(self, timeout):
        pool = self._ferry_pool
        if pool is None or self.done():
            return timeout
        return pool._wait_direct(self, timeout)


def _settle(future, how, value=None):
    """Ends future unless the user already cancelled it."""
    try:
        if how == "result":
            future.set_result(value)
        elif how == "exception":
            future.set_exception(value)
        elif not future.cancel():
            future.set_exception(concurrent.futures.CancelledError())
    except concurrent.futures.InvalidStateError:
        pass


class Pool:
    """A set of worker processes with one dispatcher; see map and submit."""

    def __init__(self, workers=None):
        if _ferry_pool is None:
            raise RuntimeError("ferry pools run inside the ferry kernel")
        if workers is not None and not 1 <= int(workers) <= MAX_WORKERS:
            raise ValueError(f"a pool has 1 to {MAX_WORKERS} workers, not {workers}")
        self._n = int(workers) if workers else min(len(os.sched_getaffinity(0)), MAX_WORKERS)
        self._handle = None
        self._lock = threading.Lock()
        self._pending = {}  # task id -> future, or (map run, index)
        self._runs = set()  # maps in progress
        self._submits = _timeline.PoolLog()  # where and when submits ran
        self._collector = None
        _pools.add(self)

    # ------------------------------------------------------------- life

    def _start(self):
        handle = self._handle
        if handle is not None and not _forked:  # running: no lock to take
            return handle
        if _forked:
            raise RuntimeError("ferry pools run in the kernel process, not in a forked "
                               "child of it")
        with self._lock:
            if self._handle is None:
                # Workers the template forks get the environment as it is
                # now, as exec'd ones would (this cell may have changed it).
                _ferry_pool.template_environment()
                self._handle = _ferry_pool.create(self._n)
                self._collector = threading.Thread(
                    target=self._collect, args=(self._handle,), name="ferry-collector",
                    daemon=True)
                self._collector.start()
            return self._handle

    def size(self, n=None):
        if n is not None:
            if not 1 <= int(n) <= MAX_WORKERS:
                raise ValueError(f"a pool has 1 to {MAX_WORKERS} workers, not {n}")
            self._n = int(n)
            if self._handle is not None:
                _ferry_pool.template_environment()
                _ferry_pool.size(self._handle, self._n)
        return self._n

    def pids(self):
        """Process ids of the live workers (empty before the first task)."""
        return _ferry_pool.pids(self._handle) if self._handle is not None else []

    def shutdown(self):
        with self._lock:
            handle, self._handle = self._handle, None
            collector, self._collector = self._collector, None
        if handle is not None:
            _ferry_pool.close(handle)  # kills the workers, ends the collector
            collector.join(timeout=5)
        for waiter in list(self._pending.values()):
            if isinstance(waiter, tuple):
                waiter[0].settle(waiter[1], "cancel", None)
                waiter[0].wake()
            else:
                _settle(waiter, "cancel")
        self._pending.clear()

    # ------------------------------------------------------- collecting

    def _collect(self, handle):
        while True:
            try:
                batch = _ferry_pool.next(handle, -1)
            except EOFError:
                return
            self._settle_batch(batch)

    def _wait_direct(self, future, timeout):
        """Waits for future's result by taking it from the dispatcher itself:
        the result then wakes this thread alone, not the collector thread and
        then this one.  In slices, so that an interrupt lands within one.
        Returns the timeout left for the ordinary wait (which follows when
        this thread cannot wait directly)."""
        handle = self._handle
        if handle is None or _forked:
            return timeout
        if timeout is None:
            return self._wait_lone(future, handle)
        deadline = time.monotonic() + timeout
        # next_one appends a result it took to got itself: an interrupt
        # raised as the call returns must not lose it.
        got = []
        try:
            while not future.done():
                left = min(_DIRECT_SLICE, deadline - time.monotonic())
                if left <= 0:
                    break
                try:
                    n = _ferry_pool.next_one(handle, future.task_id,
                                             max(1, int(left * 1000)), got)
                except EOFError:
                    break
                if n is None:  # too many threads wait directly: the collector's
                    break
                if got:  # settling twice is harmless: the second finds no waiter
                    self._settle_batch(got)
                    got.clear()
        finally:
            if got:  # interrupted after taking it: it must not be lost
                self._settle_batch(got)
        return max(0.0, deadline - time.monotonic())

    def _wait_lone(self, future, handle):
        """_wait_direct without a timeout: the way of result()."""
        got = []
        try:
            while future._state is _RUNNING:
                try:
                    n = _ferry_pool.next_one(handle, future.task_id, _DIRECT_SLICE_MS, got)
                except EOFError:
                    break
                if n is None:  # too many threads wait directly: the collector's
                    break
                if got:
                    if len(got) != 1 or not self._settle_lone(future, got[0]):
                        self._settle_batch(got)
                    got.clear()
        finally:
            if got:  # interrupted after taking it: it must not be lost
                self._settle_batch(got)

    def _settle_lone(self, future, item):
        """_settle_batch for future's own successful result (the usual case of
        a lone task); False, having done nothing, for anything else."""
        task_id, status, frames, _, where = item
        if status != "ok" or task_id != future.task_id or \
                self._pending.get(task_id) is not future:
            return False
        try:
            how, value = "result", pickle.loads(frames[0], buffers=frames[1:])
        except BaseException as exc:
            how, value = "exception", exc
        self._submits.note(future, where)
        future._ferry_call = None
        _settle(future, how, value)
        # Forgotten once settled: an interrupt before this line leaves it
        # pending, and the caller's finally settles it again, harmlessly.
        self._pending.pop(task_id, None)
        return True

    def _settle_batch(self, batch):
        runs = set()
        for task_id, status, frames, message, where in batch:
            waiter = self._pending.pop(task_id, None)
            if waiter is None:
                continue
            if status == "ok":
                try:
                    how, value = "result", pickle.loads(frames[0], buffers=frames[1:])
                except BaseException as exc:
                    how, value = "exception", exc
            elif status == "error":
                how, value = "exception", _remote_error(frames[0], frames[1:])
            elif status == "crashed":
                how, value = "exception", WorkerCrashed(
                    f"{_task_label(waiter)}: {message}")
            else:
                how, value = "cancel", None
            if isinstance(waiter, tuple):  # (map run, index)
                waiter[0].where[waiter[1]] = where
                waiter[0].settle(waiter[1], how, value)
                runs.add(waiter[0])
            else:
                self._submits.note(waiter, where)
                waiter._ferry_call = None  # the call's arguments are not kept alive
                _settle(waiter, how, value)
        for run in runs:
            run.wake()

    # ------------------------------------------------------- submitting

    def submit(self, fn, *args, **kwargs):
        rec = _preflight(fn, diagnose=False)
        plan = _lone.plan(fn, rec)  # what submits of fn keep between calls
        # the globals fn reads, as they are now
        sent = plan.sent(rec) if plan is not None else _globals.capture(fn, rec)
        try:
            if plan is not None:
                head = plan.task_head(sent.spec, _context(), _head)
            else:
                head = _head(fn, sent.spec)
            body = _dumps(("call", (args, kwargs)))
            handle = self._start()  # after pickling: a bad argument starts no worker
        except BaseException as exc:
            sent.release()
            if not isinstance(exc, Exception):
                raise
            _explain(exc, [(fn, "fn")] + [(a, f"args[{i}]") for i, a in enumerate(args)] +
                     [(v, f"kwargs[{k!r}]") for k, v in kwargs.items()])
        future = _Future(self, _take_ids(1), (fn, args, kwargs))
        if sent is not _globals.NOTHING_SENT:  # the globals' files are held until it ends
            future.add_done_callback(sent.release)
        self._pending[future.task_id] = future
        _ferry_pool.submit(handle, future.task_id, head, [body])
        return future

    def map(self, fn, iterable, *, chunksize=None):
        # A range or a tuple cannot change under the map: sliced, not copied
        # (a range's chunks travel as ranges: 40 bytes an item less).
        items = iterable if type(iterable) in (range, tuple) else list(iterable)
        rec = _preflight(fn, diagnose=False)
        if chunksize is None:
            # About four chunks per worker: small tasks do not pay a round
            # trip each, and uneven ones still balance.
            chunksize = max(1, math.ceil(len(items) / (4 * self._n)))
        elif int(chunksize) < 1:
            raise ValueError("chunksize must be at least 1")
        chunksize = int(chunksize)
        if not items:
            return []
        # Every chunk is pickled before the first is sent: an item that
        # cannot travel stops the map before any work starts.
        sent = _globals.capture(fn, rec)  # the globals fn reads, as they are now
        try:
            return self._map(fn, items, chunksize, sent)
        finally:
            sent.release()

    def _map(self, fn, items, chunksize, sent):
        try:
            head = _head(fn, sent.spec)
        except Exception as exc:
            _explain(exc, [(fn, "fn")])
        bodies, sizes = [], []
        # A range pickles by reduce (range, (start, stop, step)), several
        # times the cost of a short list of ints, on both ends: a chunk of
        # fewer than _RANGE_AS_LIST items travels as a list (chunksize=1
        # over a range: 15 -> 3 ms of pickling per 10,000 tasks).
        as_list = type(items) is range and chunksize < _RANGE_AS_LIST
        for i in range(0, len(items), chunksize):
            chunk = items[i:i + chunksize]
            if as_list:
                chunk = list(chunk)
            try:
                bodies.append(_dumps(("map", chunk)))
            except Exception as exc:
                _explain(exc, [(item, f"iterable[{i + j}]") for j, item in enumerate(chunk)])
            sizes.append(len(chunk))
        handle = self._start()
        run = _MapRun(sizes, _take_ids(len(bodies)))
        run.fn_name = _fn_name(fn)
        run.workers = self._n
        n = len(bodies)  # id -> (run, index), built in C: no Python frame per task
        self._pending.update(zip(range(run.first, run.first + n),
                                 zip(itertools.repeat(run), range(n))))
        self._runs.add(run)
        try:
            _ferry_pool.submit(handle, run.first, head, bodies)
            del bodies
            return run.gather()
        except KeyboardInterrupt:
            self._cancel_ids(run.unfinished(self._pending), interrupt=True)
            raise
        except BaseException:
            self._cancel_ids(run.unfinished(self._pending), interrupt=False)
            raise
        finally:
            self._runs.discard(run)
            run.over.set()
            _timeline.keep(run, self)
            _flush()

    def running_maps(self):
        """The maps in progress (from other threads), for a shutdown to wait on."""
        return list(self._runs)

    def futures(self):
        """The futures of the submitted tasks that have not ended."""
        return [f for f in list(self._pending.values()) if isinstance(f, _Future)]

    def cancel(self, futures, interrupt=True):
        """Drops the queued tasks among futures; with interrupt, running ones
        get SIGINT (KeyboardInterrupt in the task)."""
        self._cancel_ids([f.task_id for f in futures if not f.done()], interrupt)

    def _cancel_ids(self, ids, interrupt):
        if ids and self._handle is not None:
            _ferry_pool.cancel(self._handle, ids, interrupt)


_shared = None
_shared_lock = threading.Lock()


def shared():
    """The kernel's shared pool (used by ferry.map, submit and workers)."""
    global _shared
    pool = _shared
    if pool is not None:  # made: no lock to take
        return pool
    with _shared_lock:
        if _shared is None:
            _shared = Pool()
        return _shared


@atexit.register
def _stop_all():
    # At kernel shutdown and restart: the workers go before the interpreter
    # (the parent-death signal would get them too, only later).  Not in a
    # forked child: its copies of the pools have no dispatcher to stop.
    if _forked:
        return
    for pool in list(_pools):
        try:
            pool.shutdown()
        except Exception:
            pass
