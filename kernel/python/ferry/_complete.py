"""Completion, inspection and is_complete for the live namespace.

Names and attributes of live objects come straight from the namespace,
which is fast and exact; jedi (imported on first need) answers the rest.
"""
import ast
import builtins
import codeop
import inspect
import keyword
import linecache
import re
import types
import warnings

_DOTTED = re.compile(r"[A-Za-z_][\w.]*$")
_MAGIC = re.compile(r"(?:^|\n)[ \t]*(%%?)(\w*)$")

# What is left of the cursor is read with patterns anchored at the end
# ("[A-Za-z_][\w.]*$" and kin).  A search for those retries at every start
# position of a run of word characters, each retry scanning the run again:
# quadratic, 37 s for a 100k-character identifier.  These helpers find the
# same tails in linear time: only the start of the run is tried (the
# look-behind fails at once inside a run), and the tail is cut from there.
_RUN = re.compile(r"(?<![\w.])[\w.]*\Z")
_NAME_START = re.compile(r"[A-Za-z_]")


def _dotted_tail(text):
    r"""The match of `[A-Za-z_][\w.]*$` in text (its leftmost start), or None."""
    start = _RUN.search(text).start()
    m = _NAME_START.search(text, start)
    return text[m.start():] if m else None


def _ident_tail(text):
    r"""The match of `[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*\.?$` in text, or "": a
    dotted name, each part starting with a letter or _, maybe a final dot."""
    run = text[_RUN.search(text).start():]
    body = run[:-1] if run.endswith(".") else run
    parts = body.split(".")
    keep = len(parts)  # parts[keep:] are whole parts of the name
    while keep > 0 and _NAME_START.match(parts[keep - 1]):
        keep -= 1
    if keep == 0:
        return run
    partial = _NAME_START.search(parts[keep - 1])  # a name may start mid-part
    if partial is None and keep == len(parts):
        return ""
    head = parts[keep - 1][partial.start():] if partial else None
    tail = parts[keep:] if head is None else [head] + parts[keep:]
    return ".".join(tail) + run[len(body):]


def _dict_key(text):
    r"""(name, quote, prefix) for `name['prefix` at the end of text, or None:
    what `([A-Za-z_][\w.]*)\[\s*(['"])([^'"]*)$` finds."""
    q = max(text.rfind("'"), text.rfind('"'))
    if q < 0:
        return None
    before = text[:q].rstrip()
    if not before.endswith("["):
        return None
    name = _dotted_tail(before[:-1])
    if not name or len(before) - 1 - len(name) < 0:
        return None
    return name, text[q], text[q + 1:]


def _callee(text):
    r"""The name in `name(args` at the end of text (no parentheses in args),
    or None: what `([A-Za-z_][\w.]*)\([^()]*$` finds."""
    p = text.rfind("(")
    if p < 0 or ")" in text[p:]:
        return None
    return _dotted_tail(text[:p])


def _resolve(expr, ns):
    """Evaluates a dotted name without calling anything; None if it fails."""
    obj = None
    for i, part in enumerate(expr.split(".")):
        if i == 0:
            if part in ns:
                obj = ns[part]
            elif hasattr(builtins, part):
                obj = getattr(builtins, part)
            else:
                raise LookupError(part)
        else:
            obj = getattr(obj, part)
    return obj


def _namespace_matches(text, ns):
    """(matches, start) from the namespace, or None to defer to jedi."""
    key = _dict_key(text)
    if key:
        try:
            obj = _resolve(key[0], ns)
        except Exception:
            return None
        if isinstance(obj, dict):
            quote, prefix = key[1], key[2]
            keys = [k for k in obj if isinstance(k, str) and k.startswith(prefix)]
            return [f"{k}{quote}]" for k in keys], len(text) - len(prefix)
        return None
    word = _ident_tail(text)
    before = text[: len(text) - len(word)]
    if before.endswith("."):
        return None  # an attribute of a call's or subscript's result: jedi infers it
    if before.rstrip().endswith(("import", "from")) or re.search(r"\bimport\s", before):
        return None  # module names: jedi knows the import system
    if "." in word:
        head, _, prefix = word.rpartition(".")
        try:
            obj = _resolve(head, ns)
        except Exception:
            return None
        names = dir(obj)
        start = len(text) - len(prefix)
    else:
        if not word:
            return None
        prefix = word
        names = list(ns) + dir(builtins) + keyword.kwlist
        start = len(text) - len(prefix)
    matches = sorted({n for n in names if n.startswith(prefix)},
                     key=lambda n: (n.startswith("_"), n.lower()))
    if not prefix.startswith("_"):
        matches = [n for n in matches if not n.startswith("_")] + \
                  [n for n in matches if n.startswith("_")]
    return matches, start


def _kernel_builtins():
    # Built-ins the kernel adds at run time, which jedi's static view of the
    # builtins module does not know.
    names = ("get_ipython", "display", "update_display", "clear_output")
    return {n: getattr(builtins, n) for n in names if hasattr(builtins, n)}


# jedi (parso) is slow on absurd lines, quadratic in a long chain of
# attributes (`a.a.a...`): 12 s for 40k characters.  No line or dotted name
# a person completes on is this long; past them the namespace answers alone.
_JEDI_LINE_LIMIT = 10_000
_JEDI_NAME_LIMIT = 500


def _cursor_line_length(code, cursor):
    start = code.rfind("\n", 0, cursor) + 1
    end = code.find("\n", cursor)
    return (len(code) if end < 0 else end) - start


def _jedi_matches(code, cursor, ns):
    if _cursor_line_length(code, cursor) > _JEDI_LINE_LIMIT or \
            cursor - _RUN.search(code, 0, cursor).start() > _JEDI_NAME_LIMIT:
        return [], cursor, []
    try:
        import jedi
    except ImportError:
        return [], cursor, []
    before = code[:cursor]
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            completions = jedi.Interpreter(code, [ns, _kernel_builtins()]).complete(line, column)
        except Exception:
            return [], cursor, []
    if not completions:
        return [], cursor, []
    prefix_len = len(completions[0].name) - len(completions[0].complete)
    start = cursor - prefix_len
    types = [{"start": start, "end": cursor, "text": c.name, "type": c.type, "signature": ""}
             for c in completions]
    return [c.name for c in completions], start, types


def _magic_matches(percent, prefix):
    shell = getattr(builtins, "get_ipython", lambda: None)()
    if shell is None:
        return []
    line, cell = shell.magic_names()
    names = [] if percent == "%%" else ["%" + n for n in line if not n.startswith("pinfo")]
    names += ["%%" + n for n in cell]
    return sorted(n for n in names if n.lstrip("%").startswith(prefix))


_TYPED_LIMIT = 300  # matches beyond this get no type: a frontend shows a few


def _kind(value):
    """The completion type JupyterLab draws an icon for."""
    if inspect.ismodule(value):
        return "module"
    if isinstance(value, type):
        return "class"
    if isinstance(value, property):
        return "property"
    if callable(value) or isinstance(value, (staticmethod, classmethod)):
        return "function"
    return "instance"


def _types(matches, start, cursor, text, ns):
    """IPython's metadata["_jupyter_types_experimental"], from the live
    objects, read statically (no property runs for a completion)."""
    head = None
    word = _ident_tail(text)
    if "." in word:
        try:
            head = _resolve(word.rpartition(".")[0], ns)
        except Exception:
            return []
    out = []
    for name in matches[:_TYPED_LIMIT]:
        kind = "instance"
        try:
            if head is not None:
                kind = _kind(inspect.getattr_static(head, name))
            elif name in ns:
                kind = _kind(ns[name])
            elif keyword.iskeyword(name):
                kind = "keyword"
            elif hasattr(builtins, name):
                kind = _kind(getattr(builtins, name))
        except Exception:
            pass
        out.append({"start": start, "end": cursor, "text": name, "type": kind,
                    "signature": ""})
    return out


def complete(code, cursor, ns):
    if cursor is None:
        cursor = len(code)
    text = code[:cursor]
    m = _MAGIC.search(text)
    if m:
        matches = _magic_matches(m.group(1), m.group(2))
        types = [{"start": m.start(1), "end": cursor, "text": t, "type": "magic",
                  "signature": ""} for t in matches]
        return {"status": "ok", "matches": matches, "cursor_start": m.start(1),
                "cursor_end": cursor, "metadata": {"_jupyter_types_experimental": types}}
    found = _namespace_matches(text, ns)
    types = None
    if found is None or not found[0]:
        matches, start, types = _jedi_matches(code, cursor, ns)
        if not matches and found is not None:
            matches, start = found
            types = None
    else:
        matches, start = found
    if types is None:
        types = _types(matches, start, cursor, text, ns)
    return {"status": "ok", "matches": matches, "cursor_start": start,
            "cursor_end": cursor, "metadata": {"_jupyter_types_experimental": types}}


def _name_at(code, cursor):
    before = code[:cursor].rstrip("?")  # zip? and zip?? inspect zip
    left = _dotted_tail(before)
    right = re.match(r"\w*", code[cursor:])
    name = (left or "") + (right.group(0) if right else "")
    if not name:
        # Inside a call's parentheses: inspect the callee, as IPython does.
        name = _callee(code[:cursor]) or ""
    return name.rstrip(".")


def _cell_class_source(cls):
    """Source of a class defined in a cell: Python 3.11's inspect looks for
    the file of __main__, which a notebook does not have, so find the class
    through the cell its methods were compiled from."""
    for value in vars(cls).values():
        func = inspect.unwrap(getattr(value, "__func__", value))
        code = getattr(func, "__code__", None)
        if code is None:
            continue
        source = "".join(linecache.getlines(code.co_filename))
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == cls.__name__ \
                    and node.lineno <= code.co_firstlineno <= node.end_lineno:
                first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
                return "".join(source.splitlines(True)[first - 1:node.end_lineno])
    return None


def _source(obj):
    try:
        return inspect.getsource(obj)
    except Exception:  # OSError, TypeError, and whatever a proxy object raises
        return _cell_class_source(obj) if isinstance(obj, type) else None


def _file(obj):
    try:
        return inspect.getfile(obj)
    except Exception:
        return None


# Signatures of functions and methods written in C, by id (the entry holds
# the object, so the id stays its own).  inspect builds them by tokenising
# and parsing __text_signature__, 0.1-0.2 ms and most of an inspect_request
# for `print`; they cannot change, and a frontend's contextual help asks for
# the same few names again and again as the cursor moves.
_C_CALLABLES = (types.BuiltinFunctionType, types.MethodDescriptorType,
                types.WrapperDescriptorType, types.ClassMethodDescriptorType)
_C_SIGNATURES_MAX = 512
_c_signatures = {}


def _signature(obj):
    """str(inspect.signature(obj)), or None when obj has no signature."""
    # Not a method bound to an instance: the entry would keep it alive.
    cached = isinstance(obj, _C_CALLABLES) and (
        getattr(obj, "__self__", None) is None or inspect.ismodule(obj.__self__))
    hit = _c_signatures.get(id(obj)) if cached else None
    if hit is not None and hit[0] is obj:
        return hit[1]
    try:
        text = str(inspect.signature(obj))
    except (TypeError, ValueError):
        text = None
    if cached:
        if len(_c_signatures) >= _C_SIGNATURES_MAX:
            _c_signatures.clear()
        _c_signatures[id(obj)] = (obj, text)
    return text


def describe(obj, name, detail=0):
    """Text for obj? (detail 0) and obj?? (detail 1), laid out as IPython's."""
    lines = [f"Type:      {type(obj).__name__}"]
    signature = _signature(obj) if callable(obj) else None
    if signature is not None:
        label = "Init signature" if isinstance(obj, type) else "Signature"
        lines.append(f"{label}: {name}{signature}")
    if not callable(obj) or isinstance(obj, (int, float, str, list, dict, tuple, set)):
        try:
            text = repr(obj)
        except Exception as e:
            text = f"<repr failed: {e!r}>"
        lines.append("Value:     " + (text if len(text) < 200 else text[:200] + "..."))
    source = _source(obj) if detail else None
    if source:
        lines.append("Source:\n" + source.rstrip("\n"))
    else:
        try:
            doc = inspect.getdoc(obj)
        except Exception:
            doc = None
        if doc:
            lines.append("Docstring:\n" + doc)
    where = _file(obj)
    if where:
        lines.append(f"File:      {where}")
    return "\n".join(lines)


def inspect_request(code, cursor, detail, ns):
    if cursor is None:
        cursor = len(code)
    name = _name_at(code, cursor)
    try:
        obj = _resolve(name, ns) if name and _DOTTED.match(name) else None
        found = bool(name) and _DOTTED.match(name) is not None
    except Exception:
        found = False
    if not found:
        return {"status": "ok", "found": False, "data": {}, "metadata": {}}
    return {"status": "ok", "found": True, "data": {"text/plain": describe(obj, name, detail)},
            "metadata": {}}


def is_complete(code):
    """IPython's rule: an open block needs a blank line to end."""
    if not code.strip():
        return {"status": "complete"}
    lines = code.split("\n")
    if len(lines) > 1 and lines[-1] and not lines[-1].strip():
        # A last line of only the auto-indent (what jupyter console sends when
        # Enter is pressed on an empty continuation line) is the blank line
        # that ends an open block, if ending it there makes a whole cell.
        ended = is_complete(code[: len(code) - len(lines[-1])] + "\n")
        if ended["status"] == "complete":
            return ended
    last = lines[-1] if lines[-1].strip() else (lines[-2] if len(lines) > 1 else "")
    indent = last[: len(last) - len(last.lstrip())]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled = codeop.compile_command(code, "<input>", "exec")
    except (SyntaxError, OverflowError, ValueError):
        if code.rstrip().endswith(":") and not code.endswith("\n\n"):
            return {"status": "incomplete", "indent": indent + "    "}
        return {"status": "invalid"}
    if compiled is None:
        if last.rstrip().endswith(":"):
            indent += "    "
        return {"status": "incomplete", "indent": indent}
    if indent and not code.endswith("\n"):
        return {"status": "incomplete", "indent": indent}
    return {"status": "complete"}
