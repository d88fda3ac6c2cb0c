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
_IDENT_TAIL = re.compile(r"[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*\.?$|$")
_MAGIC = re.compile(r"(?:^|\n)[ \t]*(%%?)(\w*)$")
_DICT_KEY = re.compile(r"([A-Za-z_][\w.]*)\[\s*(['\"])([^'\"]*)$")


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
    m = _DICT_KEY.search(text)
    if m:
        try:
            obj = _resolve(m.group(1), ns)
        except Exception:
            return None
        if isinstance(obj, dict):
            quote, prefix = m.group(2), m.group(3)
            keys = [k for k in obj if isinstance(k, str) and k.startswith(prefix)]
            return [f"{k}{quote}]" for k in keys], len(text) - len(prefix)
        return None
    m = _IDENT_TAIL.search(text)
    word = m.group(0) if m else ""
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


def _jedi_matches(code, cursor, ns):
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
    m = _IDENT_TAIL.search(text)
    word = m.group(0) if m else ""
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
    left = re.search(r"[A-Za-z_][\w.]*$", before)
    right = re.match(r"\w*", code[cursor:])
    name = (left.group(0) if left else "") + (right.group(0) if right else "")
    if not name:
        # Inside a call's parentheses: inspect the callee, as IPython does.
        m = re.search(r"([A-Za-z_][\w.]*)\([^()]*$", code[:cursor])
        name = m.group(1) if m else ""
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
