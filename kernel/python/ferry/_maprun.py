"""A map's tasks as they come back (ferry.map and ferry.Executor.map, via
ferry._pool): filed without a future each, gathered by the cell's thread,
with a progress display once a map runs longer than about a second (the
Dask backend, ferry._dask, shows the same)."""
import concurrent.futures
import threading
import time


class _MapRun:
    """The tasks of one map, without a future each: the collector thread
    files their results here and wakes the cell's thread once all are in
    or one failed."""

    def __init__(self, sizes, first):
        self.sizes = sizes
        self.first = first  # task ids first, first + 1, ...
        self.values = [None] * len(sizes)
        self.failures = {}  # index -> exception
        self.left = len(sizes)
        self.items_done = 0
        self.settled = bytearray(len(sizes))  # a task ends once, whoever says so
        self.cond = threading.Condition(threading.Lock())
        self.over = threading.Event()  # the map returned or raised
        # For ferry.timeline: when the map was submitted (monotonic us, as
        # the C pool's times), and each task's (status, pid, sent, ended,
        # run_us) as its result came.
        self.submitted = time.monotonic_ns() // 1000
        self.where = [None] * len(sizes)
        self.workers = 0

    def settle(self, index, how, value):
        """Collector thread (or a shutdown): the task at index ended."""
        if self.settled[index]:
            return
        self.settled[index] = 1
        if how == "result":
            self.values[index] = value
        else:
            self.failures[index] = (value if how == "exception"
                                    else concurrent.futures.CancelledError())
        self.left -= 1
        self.items_done += self.sizes[index]

    def wake(self):
        """Wakes the cell's thread if it has something to do: all in, or a
        failure (progress it reads on its own clock)."""
        if self.left == 0 or self.failures:
            with self.cond:
                self.cond.notify_all()

    def unfinished(self, pending):
        """Ids of the tasks whose result has not come."""
        return [i for i in range(self.first, self.first + len(self.sizes)) if i in pending]

    def gather(self):
        progress = _Progress(sum(self.sizes))
        with self.cond:
            while self.left and not self.failures:
                self.cond.wait(_Progress.TICK)
                progress.update(self.items_done)
        if self.failures:
            # Raised from here, so the cell's traceback shows the cell, then
            # the worker: the failure of the earliest task among those in.
            raise self.failures[min(self.failures)].with_traceback(None)
        progress.done()
        results = []
        for chunk in self.values:
            results.extend(chunk)
        return results


class _Progress:
    """An updating display for a map that runs longer than about a second:
    one display_data with a display_id, then update_display_data in place,
    ending at 100%."""

    DELAY = 1.0
    TICK = 0.25

    def __init__(self, total):
        self.total = total
        self.start = time.monotonic()
        self.handle = None
        self.shown = None

    def _show(self, done):
        if done == self.shown:
            return
        from . import _display
        self.shown = done
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
