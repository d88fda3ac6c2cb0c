"""ferry.timeline(): which worker ran which task, when - as a picture.

Every map records, for each of its tasks, what the C pool reports with the
result (pool.h's pool_result): the worker's pid, when the task was sent to
it, when the result came back and how long the task ran there.  Together
with when the map was submitted that is the whole story: time in the pool's
queue (submitted -> sent), time waiting in the worker behind the tasks sent
ahead of it (sent -> started), running (started -> ended), and the gaps in a
worker's lane, idle.  Recording is a tuple per task, kept on the map's own
bookkeeping; the picture is drawn only when asked for.

The last few maps are kept (`ferry.timelines()`), and each pool keeps the
recent tasks of its own (submits and maps), so `ferry.timeline(executor)`
shows an Executor's work.
"""
import collections
import html
import threading
import time

KEEP_MAPS = 8  # maps whose timelines ferry.timelines() returns
KEEP_TASKS = 4096  # recent submits each pool remembers for ferry.timeline(pool)
# A bigger map keeps every k-th task only (sliced, at C speed), so that
# keeping the last few maps never holds much memory.
KEEP_DETAIL = 20000

_maps = collections.deque(maxlen=KEEP_MAPS)
_lock = threading.Lock()

_COLOURS = {"ok": "#4c8bf5", "error": "#f0883e", "crashed": "#d73a49",
            "cancelled": "#9aa0a6"}


class Task:
    """One task (a chunk of a map, or a submit) as it went: times in
    microseconds since the timeline's start; sent/started/ended are None
    for a task that never reached a worker."""

    __slots__ = ("label", "items", "status", "pid", "submitted", "sent", "started",
                 "ended")

    def __init__(self, label, items, status, pid, submitted, sent, started, ended):
        self.label, self.items, self.status, self.pid = label, items, status, pid
        self.submitted, self.sent, self.started, self.ended = (submitted, sent, started,
                                                               ended)

    def __repr__(self):
        return (f"Task({self.label}, {self.status}, pid={self.pid}, "
                f"run={self.started}..{self.ended} us)")


def _tasks_from(records, t0):
    """Task objects from (label, items, submitted, (status, pid, sent, ended,
    run_us) or None) records, with crashed tasks (no run time) starting
    when their worker was last free."""
    tasks = []
    for label, items, submitted, where in records:
        if where is None or len(where) < 5 or not where[1]:
            status = where[0] if where else "cancelled"
            tasks.append(Task(label, items, status, None, submitted - t0, None, None,
                              None))
            continue
        status, pid, sent, ended, run_us = where[:5]
        started = max(sent, ended - run_us) if run_us else None
        tasks.append(Task(label, items, status, pid, submitted - t0, sent - t0,
                          None if started is None else started - t0, ended - t0))
    # A crashed task did not report how long it ran: it started once its
    # worker finished the task before it (or when it was sent).
    last_end = {}
    for t in sorted((t for t in tasks if t.pid), key=lambda t: t.ended):
        if t.started is None:
            t.started = max(t.sent, last_end.get(t.pid, t.sent))
        last_end[t.pid] = t.ended
    return tasks


class Timeline:
    """Where and when the tasks of one map (or of a pool's recent work)
    ran: one lane per worker.  Shows as an SVG picture in notebooks and as
    text in the REPL; `.tasks`, `.lanes()` and `.summary()` for code."""

    def __init__(self, kind, tasks, wall_us, workers, step=1):
        self.kind = kind  # "ferry.map", "Executor", ...
        self.tasks = tasks
        self.step = step  # 1, or k when only every k-th task was kept
        self.wall_us = max(wall_us, 1)
        self.workers = workers  # the pool's size at the time

    # ------------------------------------------------------------ figures

    def lanes(self):
        """{pid: [Task, ...]} in the order the workers first ran a task."""
        lanes = {}
        for t in sorted((t for t in self.tasks if t.pid), key=lambda t: t.started):
            lanes.setdefault(t.pid, []).append(t)
        return lanes

    def busy(self):
        """The share of the workers' time spent running tasks, over the wall
        time of the map (0..1)."""
        ran = self.step * sum(t.ended - t.started for t in self.tasks if t.pid)
        return ran / (self.wall_us * max(self.workers, len(self.lanes()), 1))

    def summary(self):
        by = collections.Counter(t.status for t in self.tasks)
        extra = "".join(f", {by[s]} {s}" for s in ("error", "crashed", "cancelled")
                        if by[s])
        items = sum(t.items for t in self.tasks)
        chunks = f" ({items} items)" if items != len(self.tasks) else ""
        lanes = len(self.lanes())
        workers = f"{self.workers} workers"
        if lanes < self.workers:
            workers += f" ({lanes} ran tasks)"
        elif lanes > self.workers:
            workers += f" ({lanes} processes: replacements)"
        if self.step > 1:
            return (f"{self.kind}: {len(self.tasks)} of its tasks drawn (1 in {self.step})"
                    f" on {workers}, {_seconds(self.wall_us)} wall, busy "
                    f"{self.busy():.0%}{extra}")
        return (f"{self.kind}: {len(self.tasks)} tasks{chunks} on {workers}, "
                f"{_seconds(self.wall_us)} wall, busy {self.busy():.0%}{extra}")

    # ------------------------------------------------------------ pictures

    def __repr__(self):
        width = 60
        scale = width / self.wall_us
        lines = [self.summary()]
        dead = self._dead()
        for n, (pid, tasks) in enumerate(self.lanes().items(), 1):
            row = [" "] * width
            for t in tasks:
                a = min(int(t.sent * scale), width - 1)
                b = min(int(t.started * scale), width - 1)
                c = min(max(int(t.ended * scale), b + 1), width)
                for i in range(a, b):
                    row[i] = row[i] if row[i] != " " else "."
                mark = {"ok": "#", "error": "E", "crashed": "X"}.get(t.status, "-")
                for i in range(b, c):
                    row[i] = mark
            label = f"w{n} pid {pid}" + (" died" if pid in dead else "")
            plural = "s" if len(tasks) != 1 else ""
            lines.append(f"{label:<18}|{''.join(row)}| {len(tasks)} task{plural}")
        lines.append(f"{'':<18} 0{_seconds(self.wall_us):>{width}}")
        lines.append("# running  . sent ahead, waiting  E error  X worker died  "
                     "(blank: idle)")
        return "\n".join(lines)

    def _dead(self):
        return {t.pid for t in self.tasks if t.status == "crashed"}

    def _repr_svg_(self):
        return _svg(self)


def _seconds(us):
    return f"{us / 1e6:.3g} s" if us >= 1e5 else f"{us / 1e3:.3g} ms"


def _ticks(wall_us):
    """About six round tick positions (us) across wall_us."""
    raw = wall_us / 6
    step = 1
    while step * 10 <= raw:
        step *= 10
    for m in (1, 2, 5, 10):
        if step * m >= raw:
            step *= m
            break
    return list(range(0, int(wall_us) + 1, int(step)))


def _svg(tl):
    lanes = tl.lanes()
    dead = tl._dead()
    left, right, top, lane_h, gap = 190, 16, 44, 22, 6
    width = 800
    plot = width - left - right
    x = (lambda us: left + plot * us / tl.wall_us)
    queued = [t for t in tl.tasks if t.sent is not None]
    queue_h = 24
    height = top + queue_h + gap + len(lanes) * (lane_h + gap) + 34
    # Scoped styles: a classic notebook puts the SVG inline in its page.
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' class='ferry-timeline' "
           f"width='{width}' height='{height}' viewBox='0 0 {width} {height}' "
           f"font-family='sans-serif' font-size='12'>",
           "<style>.ferry-timeline .task{stroke:#fff;stroke-width:0.5}"
           ".ferry-timeline .waiting{fill:#c8d6f0}.ferry-timeline .lane{fill:#f3f4f6}"
           ".ferry-timeline .label{fill:#333}.ferry-timeline .axis{stroke:#999}</style>",
           f"<text x='8' y='18' font-size='14' class='summary'>"
           f"{html.escape(tl.summary())}</text>"]
    # The pool's queue: how many tasks were submitted and not yet sent.
    y = top
    out.append(f"<text x='8' y='{y + 16}' class='label'>queued in the pool</text>")
    out.append(f"<rect class='lane' x='{left}' y='{y}' width='{plot}' height='{queue_h}'/>")
    events = sorted([(t.submitted, 1) for t in queued] + [(t.sent, -1) for t in queued])
    depth, peak, pts = 0, max(1, len(queued)), [(x(0), y + queue_h)]
    for when, step in events:
        pts.append((x(when), y + queue_h - queue_h * depth / peak))
        depth += step
        pts.append((x(when), y + queue_h - queue_h * depth / peak))
    pts.append((x(tl.wall_us), y + queue_h))
    out.append("<polygon class='queue' fill='#c8d6f0' stroke='#7a99d6' points='" +
               " ".join(f"{a:.1f},{b:.1f}" for a, b in pts) + "'/>")
    y += queue_h + gap
    for n, (pid, tasks) in enumerate(lanes.items(), 1):
        label = f"worker {n} (pid {pid})" + (" died" if pid in dead else "")
        colour = "#d73a49" if pid in dead else "#333"
        out.append(f"<g class='worker' data-pid='{pid}'>")
        out.append(f"<text x='8' y='{y + 15}' fill='{colour}'>{html.escape(label)}</text>")
        out.append(f"<rect class='lane' x='{left}' y='{y}' width='{plot}' "
                   f"height='{lane_h}'/>")
        for t in tasks:
            if t.started > t.sent:
                out.append(f"<rect class='waiting' x='{x(t.sent):.1f}' y='{y + 6}' "
                           f"width='{max(x(t.started) - x(t.sent), 0.5):.1f}' "
                           f"height='{lane_h - 12}'><title>{t.label}: sent ahead, "
                           f"waiting {_seconds(t.started - t.sent)}</title></rect>")
            out.append(
                f"<rect class='task {t.status}' x='{x(t.started):.1f}' y='{y + 2}' "
                f"width='{max(x(t.ended) - x(t.started), 1):.1f}' height='{lane_h - 4}' "
                f"fill='{_COLOURS.get(t.status, '#888')}'><title>{t.label} "
                f"({t.items} item{'s' if t.items != 1 else ''}): {t.status}, ran "
                f"{_seconds(t.ended - t.started)}</title></rect>")
        out.append("</g>")
        y += lane_h + gap
    out.append(f"<line class='axis' x1='{left}' y1='{y}' x2='{left + plot}' y2='{y}'/>")
    for tick in _ticks(tl.wall_us):
        out.append(f"<line class='axis' x1='{x(tick):.1f}' y1='{y}' x2='{x(tick):.1f}' "
                   f"y2='{y + 4}'/><text x='{x(tick):.1f}' y='{y + 16}' "
                   f"text-anchor='middle' fill='#555'>{_seconds(tick) if tick else '0'}"
                   f"</text>")
    legend = [("ok", "ran"), ("error", "raised"), ("crashed", "worker died")]
    lx = left
    for status, text in legend:
        out.append(f"<rect x='{lx}' y='{y + 22}' width='10' height='10' "
                   f"fill='{_COLOURS[status]}'/><text x='{lx + 14}' y='{y + 31}' "
                   f"fill='#555'>{text}</text>")
        lx += 110
    out.append(f"<rect x='{lx}' y='{y + 22}' width='10' height='10' fill='#c8d6f0'/>"
               f"<text x='{lx + 14}' y='{y + 31}' fill='#555'>sent ahead or queued, "
               f"waiting</text><text x='{width - right}' y='{y + 31}' text-anchor='end' "
               f"fill='#555'>grey: idle</text>")
    out.append("</svg>")
    return "".join(out)


# ---------------------------------------------------------------- recording

def _map_timeline(kept):
    """A Timeline from what keep() kept of a finished map."""
    kind, sizes, where, submitted, finished, workers, step = kept
    records = [(f"chunk {i * step}" if sizes[i] > 1 else f"task {i * step}", sizes[i],
                submitted, where[i]) for i in range(len(sizes))]
    return Timeline(kind, _tasks_from(records, submitted), finished - submitted, workers,
                    step)


class PoolLog:
    """A pool's recent tasks, maps and submits alike, for
    ferry.timeline(pool or executor)."""

    def __init__(self):
        self.records = collections.deque(maxlen=KEEP_TASKS)  # submits
        self.maps = collections.deque(maxlen=KEEP_MAPS)  # as keep() keeps them

    def note(self, future, where):
        """The collector thread: a submitted task ended; where is
        (status, pid, sent, ended, run_us), as _ferry_pool.next gives it."""
        # Not the future: it holds the result.
        self.records.append((future.task_id, getattr(future, "submitted", 0), where))

    def timeline(self, kind, workers):
        records = [(f"submit {task_id}", 1, submitted, where)
                   for task_id, submitted, where in list(self.records)]
        for _, sizes, where, submitted, _, _, step in list(self.maps):
            records += [(f"map chunk {i * step}", sizes[i], submitted, where[i])
                        for i in range(len(sizes)) if where[i] is not None]
        if not records:
            raise LookupError(f"no task of this {kind} has finished yet")
        t0 = min(r[2] for r in records)
        tasks = _tasks_from(records, t0)
        end = max((t.ended for t in tasks if t.ended is not None), default=1)
        return Timeline(kind, tasks, end, workers)


def keep(run, pool):
    """Pool.map, as the map returns or raises: keeps its timeline (drawn
    only when asked for)."""
    # Only the timing lists: the run itself holds the results.
    finished = time.monotonic_ns() // 1000
    kind = "ferry.map" if pool is _shared_pool() else "Executor.map"
    sizes, where, step = run.sizes, run.where, 1
    if len(sizes) > KEEP_DETAIL:
        step = -(-len(sizes) // KEEP_DETAIL)
        sizes, where = sizes[::step], where[::step]
    kept = (kind, sizes, where, run.submitted, finished, run.workers, step)
    pool._submits.maps.append(kept)
    with _lock:
        _maps.append(kept)


def _shared_pool():
    from . import _pool
    return _pool._shared


def timelines():
    """The timelines of the last few maps (oldest first)."""
    with _lock:
        kept = list(_maps)
    return [_map_timeline(k) for k in kept]


def timeline(of=None):
    """Where and when tasks ran, one lane per worker: the last map's by
    default; or of a Timeline from ferry.timelines(); or of an Executor
    (its recent tasks, submits and maps).  Shows as a picture (SVG) in
    notebooks and as text in the REPL."""
    if of is None:
        with _lock:
            if not _maps:
                raise LookupError("no map has run yet in this kernel: run ferry.map "
                                  "first, then call ferry.timeline()")
            kept = _maps[-1]
        return _map_timeline(kept)
    if isinstance(of, Timeline):
        return of
    pool = getattr(of, "_pool", of)
    log = getattr(pool, "_submits", None)
    if log is None:
        raise TypeError(f"ferry.timeline() takes a ferry.Executor or a timeline from "
                        f"ferry.timelines(), not {type(of).__name__}")
    return log.timeline(type(of).__name__, pool.size())
