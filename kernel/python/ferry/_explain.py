"""ferry.explain(obj): what pickle would do with obj, part by part.

The seed tutorial's recipe - isolate each argument, pickle.dumps it, see
which part fails - done for the user.  Each part of obj gets exactly one
mark:

  by reference  pickle writes a module and a name; the worker imports it
  by value      pickle writes its contents (the size is what it adds)
  refused       it cannot travel: why, and the fix, as ferry.check says

A part is pickled on its own with the pool's task pickler (so ferry's
re-export hooks act as they do for a real task).  The result shows as a
table in notebooks and as one line per part in the REPL.
"""
import html
import importlib.machinery
import io
import pickle
import sys
import types

from . import _check, _globals

BY_REFERENCE = "by reference"
BY_VALUE = "by value"
REFUSED = "refused"

MAX_DEPTH = 5  # levels below obj that are opened
MAX_SHOWN = 12  # children listed per part; the rest are summed up in one line
MAX_PARTS = 300  # parts examined in all: explain stays quick on big objects

# Leaves: pickle writes these directly; nothing inside them is worth a line.
_ATOMS = (int, float, complex, bool, str, bytes, bytearray, type(None), range, slice)


class Part:
    """One part of the explained object: its path, mark, detail (module and
    name, or the reason it is refused), pickled size, and its own parts."""

    def __init__(self, path, mark, detail, size, what):
        self.path, self.mark, self.detail = path, mark, detail
        self.size, self.what = size, what
        self.children = []
        self.hidden = (0, 0)  # (parts not listed, their bytes)

    def walk(self, depth=0):
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)


def _size_text(n):
    if n is None:
        return ""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024


class Explanation:
    """The result of ferry.explain: the parts as a tree (`.root`), shown as
    an HTML table in notebooks and as text in the REPL."""

    def __init__(self, root):
        self.root = root

    def parts(self):
        """Every part, depth first: [(path, mark, detail, size), ...]."""
        return [(p.path, p.mark, p.detail, p.size) for _, p in self.root.walk()]

    def mark(self, path):
        """The mark of the part at path (e.g. "obj['lock']")."""
        for _, p in self.root.walk():
            if p.path == path:
                return p.mark
        raise KeyError(path)

    def _detail_text(self, p):
        if p.mark == BY_VALUE:
            return f"{_size_text(p.size)} ({p.what})" + (f"; {p.detail}" if p.detail else "")
        return p.detail

    def __repr__(self):
        rows = [(("  " * d) + p.path, p) for d, p in self.root.walk()]
        width = min(max(len(r[0]) for r in rows), 60)
        lines = []
        for label, p in rows:
            lines.append(f"{label:<{width}}  {p.mark:<12}  {self._detail_text(p)}")
            if p.hidden[0]:
                pad = " " * (len(label) - len(label.lstrip()) + 2)
                lines.append(f"{pad}... {p.hidden[0]} more parts, "
                             f"{_size_text(p.hidden[1])} in all")
        return "\n".join(lines)

    def _repr_html_(self):
        colours = {BY_REFERENCE: "#1f6feb", BY_VALUE: "#2da44e", REFUSED: "#cf222e"}
        rows = []
        for depth, p in self.root.walk():
            pad = 1.2 * depth
            mark = (f"<span style='color:white;background:{colours[p.mark]};"
                    f"border-radius:3px;padding:0 4px;white-space:nowrap'>{p.mark}</span>")
            size = _size_text(p.size) if p.mark == BY_VALUE else ""
            detail = html.escape(p.detail if p.mark != BY_VALUE else
                                 p.what + (f"; {p.detail}" if p.detail else ""))
            rows.append(
                f"<tr><td style='padding-left:{pad}em;text-align:left'><code>"
                f"{html.escape(p.path)}</code></td><td style='text-align:left'>{mark}</td>"
                f"<td style='text-align:right;white-space:nowrap'>{size}</td>"
                f"<td style='text-align:left'>{detail}</td></tr>")
            if p.hidden[0]:
                rows.append(
                    f"<tr><td style='padding-left:{pad + 1.2}em;text-align:left'>"
                    f"&hellip; {p.hidden[0]} more parts</td><td></td>"
                    f"<td style='text-align:right'>{_size_text(p.hidden[1])}</td>"
                    f"<td></td></tr>")
        th = "<th style='text-align:left'>"
        return ("<table class='ferry-explain'><thead><tr>" + th + "part</th>" + th +
                "pickle sends it</th><th style='text-align:right'>size</th>" + th +
                "module and name, contents, or why not</th></tr>"
                "</thead><tbody>" + "".join(rows) + "</tbody></table>")


# ------------------------------------------------------------ pickling

def _pickled_size(obj):
    """Bytes pickle writes for obj alone (out-of-band buffers included), or
    the exception it raises."""
    sizes = []
    buf = io.BytesIO()
    try:
        _check.TaskPickler(buf, 5, True, lambda b: sizes.append(b.raw().nbytes)).dump(obj)
    except Exception as exc:
        return exc
    return buf.tell() + sum(sizes)


def _global_name(obj):
    """(module, qualname) if pickle writes obj as a name, else None."""
    rec = _recorder()
    if rec is not None:
        try:
            reduced = rec.reducer_override(obj)
        except Exception:
            reduced = NotImplemented  # refused: _classify says why
        if isinstance(reduced, tuple) and getattr(reduced[0], "__name__", "") == "lookup":
            return ("__main__", reduced[1][1])
        if reduced is not NotImplemented:
            return None  # a cell lambda: its code travels
    if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
        module = getattr(obj, "__module__", None) or pickle.whichmodule(obj, None)
        return (module, getattr(obj, "__qualname__", obj.__name__))
    try:
        reduced = obj.__reduce_ex__(5)
    except Exception:
        return None
    if isinstance(reduced, str):
        return (pickle.whichmodule(obj, reduced), reduced)
    return None


def _recorder():
    try:
        from . import _pool
        return _pool._recorder() if _pool._ferry_pool is not None else None
    except Exception:
        return None


def _importable(module):
    """Whether a worker can import module: it follows the kernel's working
    directory and sys.path, so the kernel's own answer is the worker's."""
    if module == "__main__":
        return False
    # Found afresh on sys.path, as a worker would (importlib.util.find_spec
    # answers from sys.modules for a module loaded from anywhere).
    top = module.partition(".")[0]
    if top in sys.builtin_module_names:
        return True
    try:
        return (importlib.machinery.PathFinder.find_spec(top) or
                importlib.machinery.FrozenImporter.find_spec(top)) is not None
    except (ImportError, ValueError):
        return False


def _reference_detail(module, qualname):
    if module == "__main__":
        return (f"__main__.{qualname}: a worker imports it from ferry's re-export "
                f"module (yes)")
    can = "yes" if _importable(module) else "NO: no module of that name on sys.path"
    return f"{module}.{qualname}: a worker can import {module} ({can})"


def _what(obj):
    t = type(obj)
    if t.__module__ == "builtins":
        return t.__qualname__ if not isinstance(obj, (list, tuple, dict, set)) \
            else f"{t.__qualname__} of {len(obj)}"
    return f"{t.__module__}.{t.__qualname__}"


# ------------------------------------------------------------ the walk

class _Walk:
    def __init__(self):
        self.budget = MAX_PARTS

    def part(self, obj, path):
        """The part for obj alone: its mark, detail and size (not opened)."""
        self.budget -= 1
        size = _pickled_size(obj)
        if isinstance(obj, types.FunctionType):
            return self.function(obj, path, size)
        name = _global_name(obj) if not isinstance(size, Exception) else None
        if name is not None:
            return Part(path, BY_REFERENCE, _reference_detail(*name), size, _what(obj))
        if isinstance(size, Exception):
            return Part(path, REFUSED, self.reason(obj, path), None, _what(obj))
        return Part(path, BY_VALUE, self.how(obj), size, _what(obj))

    def open(self, p, obj, depth):
        """Lists the parts of obj under p, refused ones first, then the
        biggest, and opens those in turn (breadth first, within budget)."""
        if depth >= MAX_DEPTH or p.mark == BY_REFERENCE and not \
                isinstance(obj, types.FunctionType):
            return
        if isinstance(obj, types.FunctionType):
            pairs = self.closure(obj, p.path)
        elif isinstance(obj, _ATOMS):
            return
        else:
            try:
                pairs = self.children(obj, p.path)
            except Exception:  # a key whose repr fails, a broken __getstate__
                return
            # A big container that pickles fine is one part: its items
            # would be a thousand lines of "by value".
            if p.mark == BY_VALUE and len(pairs) > MAX_SHOWN:
                return
        kids = []
        for i, (path, child) in enumerate(pairs):
            if self.budget <= 0:
                p.hidden = (len(pairs) - i, 0)
                break
            kids.append((self.part(child, path), child))
        kids.sort(key=lambda k: (k[0].mark != REFUSED, -(k[0].size or 0)))
        if len(kids) > MAX_SHOWN:
            rest = kids[MAX_SHOWN:]
            kids = kids[:MAX_SHOWN]
            p.hidden = (p.hidden[0] + len(rest),
                        p.hidden[1] + sum(k.size or 0 for k, _ in rest))
        p.children = [k for k, _ in kids]
        if isinstance(obj, types.FunctionType):
            p.children += [self.global_part(obj, n, v, p.path) for n, v in _globals_of(obj)]
        refused = [k for k, _ in kids if k.mark == REFUSED]
        if p.mark == REFUSED and refused and not isinstance(obj, types.FunctionType):
            p.detail = (f"it holds {refused[0].path}, which cannot be pickled (below)")
        for k, child in kids:
            self.open(k, child, depth + 1)

    def reason(self, obj, path):
        return _check.diagnose(obj, path) or f"{path} cannot be pickled"

    def how(self, obj):
        cls = type(obj)
        if getattr(cls, "__getstate__", object.__getstate__) is not object.__getstate__ \
                and cls.__module__ != "builtins":
            return "its class's __getstate__ chooses what travels"
        return ""

    def children(self, obj, path):
        """(path, child) pairs of what pickle writes for obj."""
        if isinstance(obj, dict):
            return [(f"{path}[{k!r}]", v) for k, v in obj.items()]
        if isinstance(obj, (list, tuple)):
            return [(f"{path}[{i}]", v) for i, v in enumerate(obj)]
        if isinstance(obj, (set, frozenset)):
            return [(f"{path}{{{v!r}}}", v) for v in obj]
        cls = type(obj)
        if cls.__module__ == "builtins" or not hasattr(obj, "__dict__"):
            return []
        try:
            state = obj.__getstate__() if hasattr(obj, "__getstate__") else obj.__dict__
        except Exception:
            state = obj.__dict__
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = {**(state[0] or {}), **(state[1] or {})}  # (dict, slots)
        found = [(f"type({path})", cls)]
        if isinstance(state, dict):
            found += [(f"{path}.{k}", v) for k, v in state.items()]
        return found

    # -- functions

    def function(self, fn, path, size):
        refusal = _function_refusal(fn, path)
        name = None if isinstance(size, Exception) else _global_name(fn)
        if refusal:
            return Part(path, REFUSED, refusal, None, "function")
        if isinstance(size, Exception):
            return Part(path, REFUSED, self.reason(fn, path), None, "function")
        if name is not None:
            return Part(path, BY_REFERENCE, _reference_detail(*name), size, "function")
        return Part(path, BY_VALUE, "a lambda made in a cell: its code travels, with "
                    "the variables it closes over", size, "function")

    def closure(self, fn, path):
        pairs = []
        if fn.__name__ == "<lambda>" or "<locals>" in fn.__qualname__:
            for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
                try:
                    pairs.append((f"{path} (closure variable {name!r})", cell.cell_contents))
                except ValueError:
                    pass
            for i, v in enumerate(fn.__defaults__ or ()):
                pairs.append((f"{path} (default argument {i})", v))
        return pairs

    def global_part(self, fn, name, value, path):
        """How the notebook global name, read by fn, reaches a worker."""
        self.budget -= 1
        gpath = f"{path}.__globals__[{name!r}]"
        what = _what(value)
        if isinstance(value, types.ModuleType):
            return Part(gpath, BY_REFERENCE,
                        f"module {value.__name__}: a worker imports it "
                        f"({'yes' if _importable(value.__name__) else 'NO'})", None, what)
        rec = _recorder()
        exported = rec.latest[1] if rec is not None else ()
        if name in exported and not _globals._holds_mutable(value):
            return Part(gpath, BY_REFERENCE,
                        f"__main__.{name}: re-created in the worker by ferry's re-export "
                        f"module (yes)", None, what)
        size = _pickled_size(value)
        if isinstance(size, Exception):
            return Part(gpath, REFUSED, self.reason(value, gpath), None, what)
        return Part(gpath, BY_VALUE, "its value when the task is sent travels with "
                    "it (once to each of ferry's workers)", size, what)


def _function_refusal(fn, path):
    """What ferry.check says of fn as a task's function, or None."""
    try:
        from . import _pool
        _pool._preflight(fn, path)
    except pickle.PicklingError as err:
        return str(err)
    except Exception:
        return None
    return None


def _globals_of(fn):
    """[(name, value)]: the notebook globals fn reads (not builtins, not the
    kernel's own names), for a function of __main__."""
    main = sys.modules.get("__main__")
    if main is None or getattr(fn, "__globals__", None) is not main.__dict__:
        return []
    names = sorted(n for n in _globals._global_reads(fn.__code__)
                   if n in main.__dict__ and n not in _globals._SKIP
                   and not _globals._HISTORY.match(n))
    return [(n, main.__dict__[n]) for n in names]


def explain(obj, name="obj"):
    """What pickle would do with obj to send it to a worker, part by part:
    each part is sent *by reference* (a module and a name the worker
    imports), *by value* (its contents; the size is shown), or is *refused*
    (why, and the fix).  Biggest parts first.  For a function, the notebook
    globals it reads and how each reaches a worker.  Shows as a table in a
    notebook and as text in the REPL; returns an Explanation."""
    walk = _Walk()
    root = walk.part(obj, name)
    walk.open(root, obj, 0)
    return Explanation(root)
