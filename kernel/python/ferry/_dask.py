"""ferry on a Dask cluster: ferry.use(client), and map, submit and
Executor(client=...) with the local pool's behaviour.

Imported only once a cluster is used (ferry.use, Executor(client=...)),
and `distributed` only from here: a kernel that never uses a cluster pays
nothing for it.

How a task travels.  ferry pickles each task itself, with the task
pickler of the local pool (ferry._check.TaskPickler) whose lookups of cell
functions and classes are re-pointed at module names a Dask worker can
import: the re-export version N of this kernel is module
`ferry_<kernel id>_vN` there.  Two worker plugins (Dask's UploadFile)
carry the code: `ferry-runtime-<digest>`, the worker runtime (ferry's
_rx_rt, _traceback and _cluster_rt sources as one module, so workers need
no ferry), and `ferry-defs-<kernel id>`, the current version module.  The
second is registered under one name per kernel, so each new version
replaces the last in the scheduler, which replays only what it holds to a
worker that joins later, before that worker takes a task.  The kernel
aliases every such module name to its __main__, so instances of cell
classes come back as the live classes.  The Dask task is the runtime's
run_task(head, body, python, shared, names, payloads): head is fn, body a
chunk of items or one call's arguments; what the task prints comes back
with its result, and a task's exception comes back with its traceback
formatted on the worker.

What a dispatch sends once rather than with each task - large arrays and
bytes among its arguments, and the notebook globals fn reads, by value -
is ferry._dask_data's.  The runtime and version files and the pickling
are ferry._dask_ship's; the Future of a submit, cancelling, and closing
the Clients ferry made are ferry._dask_futures'.
"""
import asyncio
import concurrent.futures
import itertools
import math
import os
import pickle
import platform
import queue
import sys
import threading
import time

from . import _maprun, _pool, _timeline
from ._dask_data import Scattered, _Shared
from ._dask_futures import ClusterFuture, _cancel, _dask_error, _Ended, _owned, close_client
from ._dask_ship import (_KERNEL_ID, _PYTHON, _ClusterPickler, _Dumper, _files_dir,
                         _version_module, _write, _write_output, runtime)
from ._task_labels import _remote_error

CONNECT_TIMEOUT = 10.0  # seconds ferry.use waits for a scheduler address
KEEP_VERSIONS = 8  # re-export versions a worker keeps loaded

_keys = itertools.count(1)


# ---------------------------------------------------------------- target

class Cluster:
    """The shared pool's target after ferry.use(client or address): map,
    submit and size on the cluster."""

    def __init__(self, client, given, owned):
        self.client = client
        self.given = given  # what ferry.use was passed
        self.owned = owned  # ferry made the Client: ferry closes it
        self.address = client.scheduler.address
        self._lock = threading.Lock()
        self._runtime_registered = False
        self._installed = None  # the re-export file the workers hold
        self._checked = set()  # workers whose Python version was checked
        self._checked_at = None  # when the scheduler was last asked
        self._workers = {}  # what it said: address -> worker info
        self._inbox = queue.SimpleQueue()  # (future, Dask future) of ended submits
        self._collector = None
        self._sent = Scattered(client)  # large values and globals sent once
        self._submits = _timeline.PoolLog()  # its recent maps, for ferry.timeline(ex)
        self.check_python()

    @classmethod
    def connect(cls, target, timeout=CONNECT_TIMEOUT):
        """A Cluster for a distributed.Client or a scheduler address."""
        import distributed
        if isinstance(target, distributed.Client):
            if target.status not in ("running", "newly-created"):
                raise RuntimeError(f"the Dask client is {target.status}, not running")
            return cls(target, target, owned=False)
        if not isinstance(target, str):
            raise TypeError("ferry.use takes a distributed.Client, a scheduler address "
                            f"such as 'tcp://host:8786', or None; not {type(target).__name__}")
        try:
            client = distributed.Client(target, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(
                f"no Dask scheduler answered at {target} within {timeout:g} s ({exc}); "
                f"ferry stays on its previous target") from None
        _owned.append(client)
        try:
            return cls(client, target, owned=True)
        except BaseException:
            close_client(client)
            raise

    def release(self):
        """Stops using the cluster; returns what ferry.use was given.  The
        futures of submitted tasks still end: with their results on a
        user's Client, with an error on the Client ferry made and closes."""
        if self.owned:
            close_client(self.client)
        return self.given

    # ------------------------------------------------------ checks

    def _running(self):
        if self.client.status != "running":
            raise ConnectionError(
                f"the Dask client lost its scheduler at {self.address} (client status: "
                f"{self.client.status}); the tasks sent to it are lost")

    def check_python(self, every=0.0):
        """Raises, before any task is sent, if a worker runs another Python
        (major.minor) than the kernel: pickles would not load there.  Asks
        the scheduler for its workers unless it did less than `every`
        seconds ago (a submit does not pay a round trip each; a worker of
        another Python that gets a task in between fails it with the same
        message, as run_task checks too)."""
        now = time.monotonic()
        if self._checked_at is not None and now - self._checked_at < every:
            return
        self._workers = self.client.scheduler_info().get("workers", {})
        self._checked_at = now
        new = set(self._workers) - self._checked
        if not new:
            return
        versions = self.client.run(platform.python_version, workers=sorted(new))
        mine = _PYTHON
        for address, version in sorted(versions.items()):
            if version.split(".")[:2] != mine.split(".")[:2]:
                raise RuntimeError(
                    f"the Dask worker {address} runs Python {version}, this kernel runs "
                    f"Python {mine}: ferry's tasks only load in the same Python version "
                    f"(major.minor). Start the workers with Python "
                    f"{'.'.join(mine.split('.')[:2])}.")
        self._checked |= set(versions)

    # ------------------------------------------------- installation

    def _install(self, versions):
        """Makes sure the workers hold the runtime and the newest re-export
        version among `versions`."""
        from distributed.diagnostics.plugin import UploadFile
        name, path, _ = runtime()
        with self._lock:
            if not self._runtime_registered:
                self.client.register_worker_plugin(UploadFile(path),
                                                   name="ferry-runtime-" + name[10:])
                self._runtime_registered = True
            if not versions:
                return
            latest = max(versions, key=lambda p: (len(p), p))
            if latest == self._installed:
                return
            module = _version_module(latest)
            with open(latest, encoding="utf-8") as f:
                text = f.read()
            if "ferry._rx_rt" not in text:
                raise RuntimeError(f"ferry cannot adapt the re-export file {latest} for "
                                   f"Dask workers (no reference to ferry._rx_rt in it)")
            # The module's last line registers it with the runtime; if the
            # runtime is not there yet (a joining worker sets its plugins
            # up concurrently) it fails, so the worker imports it afresh
            # when a task first needs it.
            text = (text.replace("ferry._rx_rt", name) +
                    f"\n__import__({name!r}).installed(__name__, {KEEP_VERSIONS})\n")
            file = os.path.join(_files_dir(), module + ".py")
            _write(file, text)
            sys.modules.setdefault(module, sys.modules["__main__"])
            self.client.register_worker_plugin(UploadFile(file),
                                               name="ferry-defs-" + _KERNEL_ID)
            self._installed = latest

    def _prepare(self, fn, calls, where, every):
        """(head, bodies, shared futures, globals): fn and each call's work
        pickled, checked, and what they need installed.  Nothing reaches
        the scheduler before all of it pickled."""
        rec = _pool._preflight(fn, diagnose=False)
        shared = _Shared()
        dumper = _Dumper(runtime()[2], shared)
        try:
            head = dumper.dumps(fn)
        except Exception as exc:
            _pool._explain(exc, [(fn, "fn")])
        bodies = []
        for work in calls:
            try:
                bodies.append(dumper.dumps(work))
            except Exception as exc:
                _pool._explain(exc, where(work))
        versions = set(dumper.versions)
        pickled = self._sent.pickle_globals(fn, rec, self._pickler, versions)
        self._running()
        self.check_python(every)
        self._install(versions)
        return head, bodies, self._sent.share(shared), self._sent.send_globals(pickled)

    @staticmethod
    def _pickler(file):
        """A cluster pickler that shares nothing: a global's value whole."""
        return _ClusterPickler(file, runtime()[2], None)

    @staticmethod
    def _extra(n, shared, sent_globals):
        """The optional arguments of run_task for n tasks, as lists for
        client.map: none when unused (each costs Dask time per task)."""
        names, futures = sent_globals
        if names:
            return ([shared] * n, [names] * n, [futures] * n)
        return ([shared] * n,) if shared else ()

    def _keys(self, n):
        first = next(_keys)
        for _ in range(n - 1):
            next(_keys)
        return [f"ferry-{_KERNEL_ID}-{first + i}" for i in range(n)]

    # ---------------------------------------------------------- api

    def size(self, n=None):
        """Threads of the cluster's workers (ferry.workers())."""
        if n is not None:
            cluster = getattr(self.client, "cluster", None)
            if cluster is None or not hasattr(cluster, "scale"):
                raise ValueError("ferry.workers(n) cannot resize a Dask cluster that this "
                                 "client did not start: add or stop dask-worker processes")
            cluster.scale(int(n))
            self.client.wait_for_workers(int(n), timeout=60)
        info = self.client.scheduler_info().get("workers", {})
        return sum(w.get("nthreads", 1) for w in info.values())

    def submit(self, fn, *args, **kwargs):
        def where(work):
            args, kwargs = work[1]
            return ([(a, f"args[{i}]") for i, a in enumerate(args)] +
                    [(v, f"kwargs[{k!r}]") for k, v in kwargs.items()])
        head, (body,), shared, sent_globals = self._prepare(
            fn, [("call", (args, kwargs))], where, 1.0)
        future = ClusterFuture()
        future.set_running_or_notify_cancel()
        extra = tuple(x[0] for x in self._extra(1, shared, sent_globals))
        dask_future = self.client.submit(runtime()[2].run_task, head, body, _PYTHON, *extra,
                                         key=self._keys(1)[0], pure=False)
        future._dask = dask_future
        self._start_collector()

        async def ended():  # on the client's loop: no thread woken per task
            try:
                await dask_future._state.wait()
            finally:
                self._inbox.put((future, dask_future))

        self.client.loop.add_callback(ended)
        return future

    def _start_collector(self):
        with self._lock:
            if self._collector is None:
                self._collector = threading.Thread(target=self._collect, daemon=True,
                                                   name="ferry-dask-collector")
                self._collector.start()

    def _collect(self):
        """Ends the futures of submitted tasks as Dask reports them done,
        fetching the results of those that finished together in one
        request (a request per task would cost a round trip each)."""
        while True:
            batch = [self._inbox.get()]
            while True:
                try:
                    batch.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            if None in batch:
                return
            try:
                answers = self._fetch([d for _, d in batch])
            except BaseException as exc:
                for future, _ in batch:
                    _pool._settle(future, "exception", exc)
                continue
            for future, dask_future in batch:
                try:
                    how, value = self._outcome(dask_future, answers.get(dask_future.key))
                except BaseException as exc:
                    how, value = "exception", exc
                _pool._settle(future, how, value)

    def _fetch(self, dask_futures):
        """{key: (result payload, output, ran)} of those of dask_futures that
        finished, in one request to the cluster."""
        # A result lost with its worker ("lost", then "pending") is being
        # computed again: gather waits for it.
        finished = [d for d in dask_futures if d.status in ("finished", "lost", "pending")]
        if not finished:
            return {}
        try:
            return dict(zip([d.key for d in finished], self.client.gather(finished)))
        except Exception:
            self._running()  # a scheduler that went away says so
            raise

    def _outcome(self, dask_future, answer, note=None):
        """("result" | "exception" | "cancel", value) of a task that ended,
        its output written to the cell's streams; answer is what _fetch got
        for it.  note(status, ran), if given, hears where and when the task
        ran (run_task's report, or None) for ferry.timeline()."""
        note = note or (lambda status, ran: None)
        status = dask_future.status
        if answer is not None:  # fetched: it finished, whatever it says now
            payload, output, ran = answer
            note("ok", ran)
            _write_output(output)
            return "result", pickle.loads(payload)
        if status == "error":
            exc = dask_future.exception()
            if isinstance(exc, runtime()[2].TaskFailed):
                payload, output, ran = exc.args
                note("error", ran)
                _write_output(output)
                return "exception", _remote_error(payload)
            error = _dask_error(exc)
            note("crashed" if isinstance(error, _pool.WorkerCrashed) else "error", None)
            return "exception", error
        if self.client.status != "running":
            return "exception", ConnectionError(
                f"the Dask client lost its scheduler at {self.address} (client status: "
                f"{self.client.status}); the task is lost")
        return "cancel", None

    def map(self, fn, iterable, *, chunksize=None):
        items = list(iterable)
        self.check_python()  # and learn the workers, for the chunk size
        if chunksize is None:
            threads = sum(w.get("nthreads", 1) for w in self._workers.values())
            chunksize = max(1, math.ceil(len(items) / (4 * max(1, threads))))
        elif int(chunksize) < 1:
            raise ValueError("chunksize must be at least 1")
        chunksize = int(chunksize)
        if not items:
            rec = _pool._preflight(fn, diagnose=False)
            self._sent.pickle_globals(fn, rec, self._pickler, set())  # refused as ever
            return []
        starts = range(0, len(items), chunksize)
        calls = [("map", items[i:i + chunksize]) for i in starts]
        first = {id(call): i for call, i in zip(calls, starts)}

        def where(work):
            return [(item, f"iterable[{first[id(work)] + j}]")
                    for j, item in enumerate(work[1])]
        head, bodies, shared, sent_globals = self._prepare(fn, calls, where, 1.0)
        run_task = runtime()[2].run_task
        # Positional arguments only.
        n = len(bodies)
        extra = self._extra(n, shared, sent_globals)
        futures = self.client.map(run_task, [head] * n, bodies, [_PYTHON] * n, *extra,
                                  key=self._keys(n), pure=False)
        threads = sum(w.get("nthreads", 1) for w in self._workers.values())
        run = _timeline.ClusterRun([len(c[1]) for c in calls], threads)
        try:
            return self._gather(futures, run)
        except BaseException:
            _cancel(self.client, futures)
            raise
        finally:
            kind = "ferry.map" if sys.modules["ferry"]._cluster is self else "Executor.map"
            _timeline.keep(run, self, kind)

    def _gather(self, futures, run):
        """The results of one map in order, or its first failure.  Waits in
        steps of a tick, so an interrupt lands at once; woken early only
        when all tasks ended or one failed (waking the cell's thread per
        task costs the event loop's thread the GIL each time).  Dask tells
        which tasks ended without a request; results are fetched once a
        tick (with the output of those tasks, written to the cell) and at
        the end, not per task.  A task that failed says so at once (its
        exception travels with Dask's report).  run hears where and when
        each task ran."""
        sizes = run.sizes
        ended = _Ended(len(futures))
        self._watch(futures, ended)
        values = [None] * len(futures)
        seen, unfetched, items = 0, [], 0
        progress = _maprun._Progress(sum(sizes))
        last_fetch = time.monotonic()
        while seen < len(futures) or unfetched:
            if seen < len(futures):
                if not ended.event.wait(_maprun._Progress.TICK):
                    self._running()
                ended.event.clear()
            batch = ended.take()
            seen += len(batch)
            failed = [i for i in batch if futures[i].status != "finished"]
            if failed:
                self._fetch_into(futures, sorted(unfetched), values, run)  # prints first
                how, value = self._outcome(futures[min(failed)], None,
                                           run.noter(min(failed)))
                if how == "exception":
                    raise value.with_traceback(None)
                raise concurrent.futures.CancelledError(
                    "a task of this map was cancelled on the Dask cluster")
            unfetched += batch
            items += sum(sizes[i] for i in batch)
            now = time.monotonic()
            if unfetched and (seen == len(futures) or now - last_fetch >= _maprun._Progress.TICK):
                self._fetch_into(futures, sorted(unfetched), values, run)
                unfetched, last_fetch = [], now
            progress.update(items)
        progress.done()
        return [x for chunk in values for x in chunk]

    def _watch(self, futures, ended):
        """Files the index of each of futures in ended once it ended: one
        coroutine on the client's event loop for the whole map (a done
        callback per future wakes that loop, and a thread, once each: the
        largest cost of a small task, measured)."""
        async def one(i, future):
            try:
                await future._state.wait()
            finally:
                ended.add(i, future.status != "finished")

        async def every():
            await asyncio.gather(*(one(i, f) for i, f in enumerate(futures)),
                                 return_exceptions=True)

        self.client.loop.add_callback(every)

    def _fetch_into(self, futures, indexes, values, run):
        answers = self._fetch([futures[i] for i in indexes])
        for i in indexes:
            how, value = self._outcome(futures[i], answers.get(futures[i].key),
                                       run.noter(i))
            if how == "exception":
                raise value.with_traceback(None)
            if how == "cancel":
                raise concurrent.futures.CancelledError(
                    "a task of this map was cancelled on the Dask cluster")
            values[i] = value



class ClusterExecutor(concurrent.futures.Executor):
    """ferry.Executor(client=...): a concurrent.futures.Executor whose tasks
    run on a Dask cluster, as ferry.map and submit do after ferry.use."""

    def __init__(self, client):
        self._cluster = Cluster.connect(client)
        self._shutdown = False
        self._futures = []

    @property
    def client(self):
        return self._cluster.client

    @property
    def _pool(self):  # what ferry.timeline(executor) reads
        return self._cluster

    def submit(self, fn, /, *args, **kwargs):
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        future = self._cluster.submit(fn, *args, **kwargs)
        self._futures = [f for f in self._futures if not f.done()] + [future]
        return future

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if len(iterables) == 1 and timeout is None:
            return iter(self._cluster.map(fn, iterables[0], chunksize=chunksize))
        return super().map(fn, *iterables, timeout=timeout, chunksize=chunksize)

    def shutdown(self, wait=True, *, cancel_futures=False):
        self._shutdown = True
        if cancel_futures:
            for f in self._futures:
                f.cancel()
        if wait:
            concurrent.futures.wait(self._futures)
        self._cluster.release()

