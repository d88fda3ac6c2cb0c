"""Re-export of the notebook's ``__main__`` definitions to worker processes.

Pickle sends functions and classes *by reference* (module + qualified name).
A notebook's definitions live in ``__main__``, which a ``multiprocessing``
child cannot import, so ferry keeps an importable copy: after each top-level
statement that defines something, the definition is recorded, and when a child
or a task needs it, a *version* of the module is written to the kernel's
runtime directory.  Children load that file; pickles of cell functions and
classes name it.  docs/reexport.md describes it for users.

Where each part lives:

* ferry._reexport (this module): the Recorder - what is exported now, and
  the version files.
* ferry._rx_analysis: what a statement exports, reads and binds (syntax only).
* ferry._rx_hooks: the multiprocessing hooks (preparation data, pickler).
* ferry._rx_rt: what runs in children - a version's statements
  (``Statement``, tagged by ``Kind``), stand-ins and lookups.

Interface used by the cell runner (one Recorder per kernel)::

    from ferry import _reexport
    rec = _reexport.Recorder(runtime_dir, main_module)
    _reexport.is_main_guard(node) -> bool
        # `if __name__ == "__main__":` (either operand order, any quotes).
        # The runner runs such a block's body one statement at a time itself
        # and calls record() for each statement.
    rec.begin_cell(cell_source, filename, tree) -> None
        # Optional: the cell's parse, whose statements record() gets next.
    rec.record(node, cell_source, filename) -> None
        # After `node` (a top-level statement, or one hoisted out of a main
        # guard) ran WITHOUT raising.  `filename` is what the statement was
        # compiled with ("Cell In[3]"); `cell_source` is the whole cell;
        # node line numbers are relative to cell_source.  Call it for every
        # statement, exported or not: the others tell it which names were
        # rebound to something a child cannot re-create.
    rec.current() -> str
        # Path of the current version's file.  Written lazily (only when the
        # exported state changed since the last write), atomically, under a
        # lock; call it before a dispatch.  Safe from any thread.
    rec.install_hooks() -> None
        # The two multiprocessing hooks; idempotent.
    rec.exported_names() -> list[str]
        # Names the current version exports, in order (diagnostics, tests).
    rec.reducer_override(obj)
        # The pickler hook's logic, for ferry's own picklers.

Call install_hooks() after main_module is sys.modules['__main__'].  The
package's ``ferry/__init__.py`` must import cleanly (and cheaply) in a plain
``/usr/bin/python3``: every spawn or forkserver child imports ferry._rx_rt
through it, while loading its main module and while unpickling a task.

What is exported: ``import``/``from ... import``; ``def``, ``async def`` and
``class`` with their decorators; assignments (plain or annotated, to names or
tuples of names) whose value is a literal or a lambda.  A lambda bound to a
name gets that name as ``__name__`` and ``__qualname__``, in the kernel (done
by record()) and in children.  Everything else is not exported and never runs
in a child.  A later binding of a name, exported or not, replaces the earlier
one; ``del`` removes it.

How the pieces fit:

* Versions.  ``ferry_main_<N>.py`` in the runtime directory (0700), written to
  a temporary file and renamed.  Each statement is stored as its cell's source
  plus its position and compiled in the child from that source under the cell
  filename, so child tracebacks read ``File "Cell In[3]", line 2, in f`` and
  show the line (the file registers the cells in ``linecache``).  Each
  statement runs guarded: one that fails in the child leaves stand-ins (see
  ferry._rx_rt) instead of breaking the import.  Old versions are pruned,
  keeping the newest few and any written in the last minute, since a child may
  still be loading one.
* Liveness.  When a statement is recorded, the objects it bound are
  remembered.  A name is exported while ``__main__`` still holds exactly that
  object - so a rebinding ferry cannot see statically (a computed value, a
  ``global`` assignment in a function, a ``def`` inside a loop) also ends the
  export.  A statement whose names all died is dropped, unless a later
  exported statement used one of them while it was defined (``class D(Base)``
  keeps the ``class Base`` it inherited from, so the child replays the
  kernel's history) or it imports a submodule (``import a.b``).
* Preparation data hook.  ``multiprocessing.spawn.get_preparation_data`` (also
  used by the forkserver) gets ``init_main_from_path`` = the current version,
  so spawn and forkserver children run it as their ``__mp_main__``;
  ``__main__.__file__`` is never set and ``__main__.__spec__`` stays None.
  ``sys.modules['__mp_main__']`` is the notebook's ``__main__``, so results
  whose classes a child knows as ``__mp_main__.C`` unpickle to the live class.
* Pickler hook.  ``ForkingPickler.reducer_override`` sends a function or
  class of ``__main__`` as ``ferry._rx_rt.lookup(<current version>,
  qualname)``, which works under fork, spawn and forkserver without sys.path
  changes and reaches pools created before the definition.  The kernel
  registers each version's module name in ``sys.modules`` as an alias of
  ``__main__``, so results come back as the live classes.  An anonymous
  lambda travels by value (its code, with the current version as globals).
  A ``__main__`` object that is not exported raises ``pickle.PicklingError``
  in the kernel, naming the object and why - never a hang in a child.
  Everything else gets ``NotImplemented`` (ordinary pickling).  Both hooks act
  only in the kernel process itself, not in a forked child that inherited
  them.
* Failures in children.  A statement that worked in the kernel can fail when
  a child re-runs it (its decorator or base class reads a computed value).
  The child then binds stand-ins (ferry._rx_rt) that unpickle fine and raise
  ``ReexportError`` - naming the name, the statement, the cell and line, and
  the original exception - when a task uses them, so a stdlib pool reports a
  task error instead of losing workers to unpickling errors and hanging.
* Names that are not exported.  A version also binds, for each name its
  statements mention that the kernel holds as something not exported (a
  computed value, a loop variable), an ``Unavailable`` stand-in whose every
  use raises ReexportError saying how the notebook bound it - instead of a
  bare NameError for a name the user can see.  Only mentioned names count,
  so binding computed values that no definition reads makes no new version.
* Signals.  Frontends send SIGINT to the kernel's whole process group;
  workers of Pool and ProcessPoolExecutor started from the kernel ignore it,
  so an interrupt cannot kill one while it holds its task queue's lock; and
  children unblock SIGTERM if they inherited it blocked, so terminate()
  stops them (``_rx_rt.setup_child``: spawn and forkserver
  children when they run a version as ``__mp_main__``, fork children
  through an at-fork hook).
"""

import ast
import itertools
import operator
import os
import re
import sys
import threading
import time
import types

from . import _rx_hooks
from ._rx_analysis import (STATEMENT_WORDS, analyse, bound_names, first_line,
                           is_main_guard, loads_at_definition, name_ids)
from ._rx_rt import Kind, Statement, statement_index

__all__ = ["Recorder", "is_main_guard"]

# How many versions to keep on disk, and for how long a version stays however
# many were written after it (a queued task or a starting child may name it).
KEEP_VERSIONS = 8
KEEP_SECONDS = 60.0
# Module-name aliases kept in the kernel's sys.modules: a result pickled by a
# child against an older version must still resolve.
KEEP_ALIASES = 256

_PREFIX = "ferry_main_"
_VERSION_RE = re.compile(r"^ferry_main_(\d+)\.py$")
_MISSING = object()


# ---------------------------------------------------------------------------
# The recorder
# ---------------------------------------------------------------------------

class _Entry:
    """One exported statement, in execution order."""
    __slots__ = ("seq", "filename", "source", "pos", "first_line", "text", "info",
                 "live", "refs")

    def __init__(self, seq, filename, source, pos, first_line, text, info, refs):
        self.seq = seq            # unique, increasing: the entry's key
        self.filename = filename  # the cell's filename ("Cell In[3]")
        self.source = source      # the cell's source (a filename may be reused)
        self.pos = pos            # (lineno, col, end_lineno, end_col) in the cell
        self.first_line = first_line  # where it starts, decorators included
        self.text = text          # source, only when pos cannot find it
        self.info = info          # _rx_analysis.Definition
        self.live = {}            # names this entry still provides (ordered set)
        self.refs = refs          # every name it mentions (its functions' too)


class _Cell:
    """What the recorder derives from one cell's source, once per cell."""
    __slots__ = ("filename", "source", "positions", "_lines")

    def __init__(self, filename, source, tree=None):
        self.filename = filename
        self.source = source
        if tree is None:  # the caller did not say: parse it as a child will
            try:
                tree = ast.parse(source, filename)
            except SyntaxError:
                tree = ast.Module(body=[], type_ignores=[])
        self.positions = frozenset(statement_index(tree))  # not the nodes
        self._lines = None

    @property
    def lines(self):
        """The source's lines as the parser counts them (for messages)."""
        if self._lines is None:
            self._lines = _LINE_BREAK.split(self.source)
        return self._lines


_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_REBOUND = "rebound after its definition to a value ferry cannot re-create"


class Recorder:
    """Records a kernel's exported definitions and writes module versions.

    One per kernel.  All methods are safe to call from any thread of the
    kernel process; record() is meant for the thread that runs cells.

    Cost: record() is O(the statement) - the cell's source is parsed once
    per cell - whatever the session's history, because every name maps to
    the entry that provides it.  current() compares the objects of every
    exported name with __main__'s only when a statement ran since it last
    did (so a loop of dispatches in one statement does not walk the
    definitions); it writes a version, O(the definitions), only when the
    exported state changed.
    """

    def __init__(self, runtime_dir, main_module):
        os.makedirs(runtime_dir, mode=0o700, exist_ok=True)
        os.chmod(runtime_dir, 0o700)
        self.runtime_dir = os.path.abspath(runtime_dir)
        self.main = main_module
        self.pid = os.getpid()
        self._lock = threading.RLock()
        self._entries = {}        # seq -> _Entry, in execution order
        self._providers = {}      # exported name -> the _Entry providing it
        self._objects = {}        # exported name -> the object its entry bound
        self._mentions = {}       # name -> how many entries mention it
        self._wanted = set()      # names entries mention that none provides
        self._cell = None         # _Cell of the cell being recorded
        self._bound_by = {}       # name -> why it is not exported (for errors)
        self._seq = 0
        self._generation = 0      # bumped whenever what a version holds changes
        self._stale = True        # statements ran since _check_objects()
        self._snapshot = (-1, (), ())  # (generation, _objects' names, values)
        self._unavailable = ()    # as of the last _check_objects()
        self._version = self._highest_version()
        self._key = None          # what the current version file holds
        self._path = None         # the current version file
        self._written = []        # [(path, monotonic time)] oldest first
        self._aliases = []        # module names aliased to __main__
        self._exported = frozenset()  # names the current version exports
        self._latest_names = _LatestNames(self)

    # -- recording ---------------------------------------------------------

    def begin_cell(self, cell_source, filename, tree):
        """Optional, before the statements of a cell are recorded: `tree` is
        ast.parse(cell_source), whose statements record() will be given.
        Saves record() parsing the cell again to check that a child finds
        them by position (as long as the cell's own parse)."""
        with self._lock:
            self._cell = _Cell(filename, cell_source, tree)

    def record(self, node, cell_source, filename):
        """Note that top-level statement `node` of cell `filename` ran."""
        ns = self.main.__dict__
        with self._lock:
            self._stale = True
            cell = self._cell_of(filename, cell_source)
            info = analyse(node, ns)
            if info is None:
                self._note_unexported(node, cell)
                return
            if info.lambdas:
                for name in info.lambdas:
                    fn = ns.get(name)
                    if isinstance(fn, types.FunctionType) and fn.__name__ == "<lambda>":
                        fn.__name__ = fn.__qualname__ = name
            # Pin the statements this one reads while being defined: the child
            # must replay them before it, even if their names are rebound later.
            for name in loads_at_definition(node):
                provider = self._providers.get(name)
                if provider is not None:
                    provider.info.pinned = True
            for name in info.names:
                self._forget(name)
                self._bound_by.pop(name, None)
            self._add(node, cell, info)

    def _cell_of(self, filename, source):
        cell = self._cell
        if cell is None or cell.filename != filename or cell.source != source:
            cell = self._cell = _Cell(filename, source)
        return cell

    def _add(self, node, cell, info):
        pos = (node.lineno, node.col_offset, node.end_lineno, node.end_col_offset)
        text = None if pos in cell.positions else ast.unparse(node)
        start = min([node.lineno] + [d.lineno for d in
                                     getattr(node, "decorator_list", ())])
        refs = name_ids(node)
        self._seq += 1
        entry = _Entry(self._seq, cell.filename, cell.source, pos, start, text,
                       info, refs)
        self._entries[entry.seq] = entry
        self._generation += 1
        ns = self.main.__dict__
        for name in info.names:
            value = ns.get(name, _MISSING)
            if value is _MISSING:  # the statement did not bind it after all
                self._bound_by.setdefault(name, _REBOUND)
                continue
            entry.live[name] = None
            self._providers[name] = entry
            self._objects[name] = value
            self._wanted.discard(name)
        for name in refs:
            count = self._mentions.get(name, 0)
            self._mentions[name] = count + 1
            if count == 0 and name not in self._providers:
                self._wanted.add(name)
        self._drop_if_dead(entry)

    def _note_unexported(self, node, cell):
        names = bound_names(node)
        if not names:
            return
        if isinstance(node, ast.Delete):
            why = "deleted by `%s` (%s, line %d)" % (
                first_line(node, cell.lines), cell.filename, node.lineno)
        else:
            what = STATEMENT_WORDS.get(type(node), "a `%s` statement"
                                        % type(node).__name__.lower())
            why = ("bound by %s (%s, line %d: `%s`), which ferry does not "
                   "re-export" % (what, cell.filename, node.lineno,
                                  first_line(node, cell.lines)))
        for name in names:
            self._bound_by[name] = why
        if isinstance(node, (ast.Delete, ast.Assign)) or (
                isinstance(node, ast.AnnAssign) and node.value is not None):
            for name in names:  # surely unbound or rebound: drop it now
                self._forget(name)
        # Other statements may or may not have rebound their names (`if`,
        # `try`); _check_objects() compares the objects before a version.

    def _forget(self, name):
        """A later binding of `name` replaces the one recorded so far."""
        entry = self._providers.pop(name, None)
        if entry is None:
            return
        del self._objects[name]
        del entry.live[name]
        if name in self._mentions:
            self._wanted.add(name)
        self._generation += 1
        # Nor does the snapshot keep it: a list the notebook filled and
        # deleted must give its memory back now, not at the next dispatch.
        self._snapshot = (-1, (), ())
        self._drop_if_dead(entry)

    def _drop_if_dead(self, entry):
        """Drops an entry that provides nothing and nothing depends on."""
        if entry.live or entry.info.pinned:
            return
        del self._entries[entry.seq]
        self._generation += 1
        for name in entry.refs:
            count = self._mentions[name] - 1
            if count:
                self._mentions[name] = count
            else:
                del self._mentions[name]
                self._wanted.discard(name)

    def _is_live(self, name):
        """True if `name` is exported and __main__ still holds the object its
        statement bound; notes a rebinding ferry could not see.  O(1)."""
        with self._lock:
            value = self._objects.get(name, _MISSING)
            if value is _MISSING:
                return False
            if self.main.__dict__.get(name, _MISSING) is value:
                return True
            self._bound_by.setdefault(name, _REBOUND)
            self._forget(name)
            self._stale = True  # a definition may read it: a stand-in is due
            return False

    def _check_objects(self):
        """Ends the export of every name rebound behind ferry's back (a
        computed value, a `global` assignment in a function, exec): O(the
        exported names), so done only when statements ran since last time.
        Also works out the stand-ins for names definitions read."""
        get = self.main.__dict__.get
        if self._snapshot[0] != self._generation:
            self._snapshot = (self._generation, tuple(self._objects),
                              tuple(self._objects.values()))
        _, names, objects = self._snapshot
        # The common case - nothing rebound - compared in C: a cell that
        # dispatches after 1,000 definitions pays ~25 microseconds.
        if not all(map(operator.is_, map(get, names, itertools.repeat(_MISSING)),
                       objects)):
            for name in [n for n, value in self._objects.items()
                         if get(n, _MISSING) is not value]:
                self._bound_by.setdefault(name, _REBOUND)
                self._forget(name)
        self._unavailable = self._stand_ins()
        self._stale = False

    def statements_since(self, seq):
        """(last seq, cells, statements): the exported statements recorded
        after seq, as a version will compile them, for the template process
        to compile ahead (ferry._template).  cells: [[filename, source],
        ...], each once; statements: [[cell index, pos, text, __future__
        names or None], ...] in order.  O(what is new): the entries are
        kept in seq order, and only the newest are read."""
        with self._lock:
            new = []
            for s, entry in reversed(self._entries.items()):
                if s <= seq:
                    break
                new.append(entry)
            cells, statements = {}, []
            for e in reversed(new):
                cell = cells.setdefault((e.filename, e.source), len(cells))
                statements.append([cell, e.pos, e.text,
                                   e.info.names if e.info.kind == Kind.FUTURE else None])
            return self._seq, [list(c) for c in cells], statements

    # -- versions ----------------------------------------------------------

    def current(self):
        """Path of the version file holding the current definitions."""
        with self._lock:
            if self._stale:
                self._check_objects()
            key = (self._generation, self._unavailable)
            if key == self._key and self._path is not None:
                return self._path
            live = [(entry, tuple(entry.live)) for entry in self._entries.values()]
            self._version += 1
            path = os.path.join(self.runtime_dir, "%s%d.py" % (_PREFIX, self._version))
            self._write(path, self._render(live, self._unavailable))
            name = _PREFIX + str(self._version)
            sys.modules[name] = self.main
            self._aliases.append(name)
            while len(self._aliases) > KEEP_ALIASES:
                sys.modules.pop(self._aliases.pop(0), None)
            self._key, self._path = key, path
            self._exported = frozenset(self._providers)
            self._written.append((path, time.monotonic()))
            self._prune()
            return path

    @property
    def latest(self):
        """(path, exported names) of the version the last current() made or
        found; cheap, for a dispatch that has just called current().  A name
        tests as exported only while __main__ still holds its object."""
        return self._path, self._latest_names

    def exported_names(self):
        """Names exported by the current state, in definition order."""
        with self._lock:
            self._check_objects()
            return [n for entry in self._entries.values() for n in entry.live]

    def _stand_ins(self):
        """((name, message), ...) for the names that exported statements
        mention but that the kernel holds as something not re-exported: the
        child binds stand-ins that say why, instead of a bare NameError.
        Only mentioned names count, so that binding computed values which
        no definition reads does not make a new version."""
        ns = self.main.__dict__
        out = []
        for name in sorted(n for n in self._wanted if n in self._bound_by):
            if name not in ns or (name.startswith("__") and name.endswith("__")):
                continue  # a builtin, a local, or never bound in the notebook
            out.append((name, (
                "ferry did not re-export %r to this worker process: in the "
                "notebook it was %s. Pass its value to the task as an argument, "
                "or bind it with a top-level def, class or import statement or "
                "an assignment of a literal." % (name, self._bound_by[name]))))
        return tuple(out)

    def _render(self, live, unavailable=()):
        cells = {}  # (filename, source) -> index in _ferry_cells
        statements = []
        provided = set()
        for entry, names in live:
            cell = cells.setdefault((entry.filename, entry.source), len(cells))
            provided.update(names)
            statements.append(tuple(Statement(
                cell=cell, pos=entry.pos, text=entry.text,
                names=tuple(entry.info.names), lambdas=tuple(entry.info.lambdas),
                kind=entry.info.kind, label=entry.info.label,
                first_line=entry.first_line)))
        drop = sorted({n for entry, _ in live for n in entry.info.names} - provided)
        lines = [
            "# ferry: definitions re-exported from the notebook's __main__,",
            "# version %d.  Generated by ferry._reexport; do not edit." % self._version,
            "# Worker processes run this file as their main module, or load it",
            "# when a task names it.  Each statement is compiled from its cell's",
            "# source, so tracebacks point into the cell, and runs guarded: one",
            "# that fails leaves stand-ins raising a clear error when used.",
            "",
            "# Only dunder names are used here, so no cell name is clobbered.",
            "try:",
            "    from ferry._rx_rt import run as __ferry_run__",
            "except Exception as __ferry_error__:",
            "    __import__('sys').stderr.write(",
            "        \"ferry: cannot load the notebook's definitions in this \"",
            "        \"process: importing ferry._rx_rt failed: %r\\n\" % (__ferry_error__,))",
            "else:",
            "    __ferry_run__(globals(), (",
        ]
        lines.extend("        %r," % (cell,) for cell in cells)
        lines.append("    ), (")
        lines.extend("        %r," % (stmt,) for stmt in statements)
        lines.append("    ), %r, %r)" % (tuple(drop), unavailable))
        lines.append("    del __ferry_run__")
        lines.append("")
        return "\n".join(lines)

    def _write(self, path, text):
        # Not tempfile.mkstemp: importing tempfile (shutil, bz2, lzma, random
        # behind it) took 3 ms of the first submit.  Each version has a path
        # of its own in the kernel's private directory: so has its temporary.
        tmp = os.path.join(self.runtime_dir, ".%s.tmp" % os.path.basename(path))
        try:
            os.unlink(tmp)  # left by a write that failed
        except OSError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def _prune(self):
        now = time.monotonic()
        while len(self._written) > KEEP_VERSIONS:
            path, when = self._written[0]
            if now - when < KEEP_SECONDS:
                break
            self._written.pop(0)
            try:
                os.unlink(path)
            except OSError:
                pass

    def _highest_version(self):
        """Start above any version already in the directory, so a file a
        child is still reading is never replaced by different content."""
        highest = 0
        try:
            for name in os.listdir(self.runtime_dir):
                m = _VERSION_RE.match(name)
                if m:
                    highest = max(highest, int(m.group(1)))
        except OSError:
            pass
        return highest

    def version_exporting(self, name):
        """Path of the current version if it exports `name`, else None."""
        with self._lock:
            path = self.current()
            return path if name in self._exported and self._is_live(name) else None

    def why_not_exported(self, name):
        """How the notebook bound `name`, if ferry saw it and did not export
        it (for error messages); None if ferry never saw it bound."""
        return self._bound_by.get(name)

    # -- hooks -------------------------------------------------------------

    def install_hooks(self):
        """Install the preparation-data and pickler hooks (idempotent)."""
        _rx_hooks.install(self)

    def reducer_override(self, obj):
        """The pickler hook's logic, for ferry's own picklers (_rx_hooks)."""
        return _rx_hooks.reducer_override(self, obj)


class _LatestNames:
    """The names the latest version exports, as Recorder.latest gives them:
    `name in` it is O(1) and false once __main__ rebinds the name."""
    __slots__ = ("_rec",)

    def __init__(self, rec):
        self._rec = rec

    def __contains__(self, name):
        rec = self._rec
        return name in rec._exported and rec._is_live(name)
