"""What submits of one cell function keep between calls.

A loop of `ferry.submit(f, x)` in one statement asks the same questions of
f at every call: which notebook globals it reads (a walk of its code and of
the cell functions it calls), and the task head (f pickled as a lookup in
the current re-export version, with the kernel's directory and sys.path).
Both answers stay the same while nothing they depend on changes, so a Plan
keeps them, for cell functions (def in a cell, exported, still bound to
their name):

- the globals walk, when it found nothing to send by value: it holds while
  the re-export version is the same and every name it looked up is bound to
  the same object (ferry._globals.Reads says exactly what it checks).  A
  function that reads a computed global is walked and captured at every
  submit, as before: a value mutated in place must travel as it is now.
- the head, while the version, the working directory and sys.path are the
  same and the function still sends no globals.

A function redefined in a later cell is a new object, so it gets a new
Plan; a new definition anywhere makes a new re-export version, which ends
every Plan made before it.
"""
import types

from . import _globals

_KEEP = 16  # plans of this many functions at most; all dropped when full
_plans = {}  # id(fn) -> Plan (which holds fn, so the id is not reused)


class Plan:
    """The kept parts of one cell function's submits."""

    __slots__ = ("fn", "name", "qualname", "path", "reads", "head")

    def __init__(self, fn, path):
        self.fn = fn                  # the function (kept alive: its id is the key)
        self.name = fn.__name__       # __main__'s name for it
        self.qualname = fn.__qualname__  # what its head looks up
        self.path = path              # the re-export version it was made for
        self.reads = None             # a globals walk that holds, or None
        self.head = None              # (context, head bytes) with no globals

    def holds(self, fn, rec):
        """True if fn is this plan's function, as it was, in rec's version."""
        return (self.fn is fn and rec.latest[0] is self.path
                and fn.__qualname__ is self.qualname and fn.__module__ == "__main__"
                and rec.main.__dict__.get(self.name) is fn)

    def sent(self, rec):
        """The globals this submit sends (ferry._globals.capture)."""
        reads = self.reads
        if reads is not None and reads.hold(rec):
            return reads.dispatch(self.fn, rec)
        sent, self.reads = _globals.capture_reads(self.fn, rec)
        return sent

    def task_head(self, spec, context, make_head):
        """The head for this submit in context: kept when no globals travel
        and the context is the same, else make_head(fn, spec, context)
        (kept when spec is None)."""
        if spec is not None:
            return make_head(self.fn, spec, context)
        kept = self.head  # one attribute: threads submitting fn see a pair
        if kept is not None and kept[0] == context:
            return kept[1]
        head = make_head(self.fn, None, context)
        self.head = (context, head)
        return head


def plan(fn, rec):
    """fn's Plan (a kept one if it still holds), or None when fn is not a
    cell function that pickles as a lookup (its submits take the general
    way).  rec is the re-export recorder, after its current()."""
    if rec is None:
        return None
    kept = _plans.get(id(fn))
    if kept is not None and kept.holds(fn, rec):
        return kept
    path, exported = rec.latest
    if not (isinstance(fn, types.FunctionType) and fn.__module__ == "__main__"
            and fn.__name__ in exported and fn.__qualname__ == fn.__name__
            and rec.main.__dict__.get(fn.__name__) is fn):
        return None
    if len(_plans) >= _KEEP:
        _plans.clear()
    new = _plans[id(fn)] = Plan(fn, path)
    return new
