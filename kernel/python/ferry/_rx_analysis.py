"""Statement analysis for ferry's re-export (private to ferry._reexport).

Decides, from a top-level statement's syntax tree alone (plus, for
``from m import *``, the module's names), whether the statement is exported
to worker processes and what it binds: ``import``/``from ... import``;
``def``, ``async def`` and ``class`` with their decorators; assignments
(plain or annotated, to names or tuples of names) whose value is a literal
or a lambda.  Also what a statement reads while it runs (so the recorder can
keep what it depends on) and what any other statement may bind (so an error
can say how a name that is not exported was bound).
"""

import ast
import sys

from ._rx_rt import Kind

__all__ = ["Definition", "analyse", "bound_names", "first_line", "is_main_guard",
           "loads_at_definition", "name_ids", "STATEMENT_WORDS"]


def _is_name(node, name):
    return isinstance(node, ast.Name) and node.id == name


def _is_str(node, value):
    return isinstance(node, ast.Constant) and node.value == value \
        and isinstance(node.value, str)


def is_main_guard(node):
    """True for ``if __name__ == "__main__":`` (or ``"__main__" == __name__``).

    The ``else`` branch, if any, never runs in a kernel, where ``__name__`` is
    ``"__main__"``; the runner hoists the body only.
    """
    if not isinstance(node, ast.If):
        return False
    test = node.test
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Eq)):
        return False
    left, right = test.left, test.comparators[0]
    return ((_is_name(left, "__name__") and _is_str(right, "__main__"))
            or (_is_str(left, "__main__") and _is_name(right, "__name__")))


def _is_literal(node):
    """Literal in the sense of the re-export contract (lambdas allowed inside
    containers: re-creating one is as cheap and as faithful as a literal)."""
    if isinstance(node, (ast.Constant, ast.Lambda)):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _is_number(node.operand)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        # complex literals: 1 + 2j, -1.5 - 3j
        return _is_number(node.left) and _is_number(node.right)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_is_literal(elt) for elt in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and _is_literal(k) for k in node.keys) \
            and all(_is_literal(v) for v in node.values)
    return False


def _is_number(node):
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _is_number(node.operand)
    return isinstance(node, ast.Constant) and type(node.value) in (int, float, complex)


def _target_names(target, out):
    """Names bound by an assignment target; False if it is not made only of
    names (attribute or subscript targets mutate other objects)."""
    if isinstance(target, ast.Name):
        out.append(target.id)
        return True
    if isinstance(target, ast.Starred):
        return _target_names(target.value, out)
    if isinstance(target, (ast.Tuple, ast.List)):
        return all(_target_names(elt, out) for elt in target.elts)
    return False


def _lambda_names(target, value, out):
    """Names that a lambda is bound to directly (f = lambda ..., or pairwise
    in f, g = lambda ..., lambda ...)."""
    if isinstance(target, ast.Name) and isinstance(value, ast.Lambda):
        out.append(target.id)
    elif (isinstance(target, (ast.Tuple, ast.List))
          and isinstance(value, (ast.Tuple, ast.List))
          and len(target.elts) == len(value.elts)
          and not any(isinstance(t, ast.Starred) for t in target.elts)):
        for t, v in zip(target.elts, value.elts):
            _lambda_names(t, v, out)


def _shorten(text):
    lines = text.strip().splitlines()
    line = lines[0] if lines else ""
    return line if len(line) <= 60 else line[:57] + "..."


def first_line(node, lines):
    """The statement's first source line, for messages.  `lines` is its
    cell's source split as the parser counts lines (\\n, \\r\\n, \\r): split
    once per cell, as ast.get_source_segment would split it for every call."""
    try:
        line = lines[node.lineno - 1].encode()
        end = node.end_col_offset if node.end_lineno == node.lineno else None
        text = line[node.col_offset:end].decode()  # offsets count UTF-8 bytes
    except (AttributeError, IndexError, TypeError, UnicodeDecodeError):
        text = None
    return _shorten(text or ast.unparse(node))


class Definition:
    """What an exported statement binds (the recorder's view of it)."""
    __slots__ = ("kind", "label", "names", "lambdas", "pinned")

    def __init__(self, kind, label, names, lambdas=(), pinned=False):
        self.kind = kind          # a _rx_rt.Kind tag: what the statement is
        self.label = label        # short description for messages: "def f"
        self.names = names        # names it binds, in order
        self.lambdas = lambdas    # names bound directly to a lambda
        self.pinned = pinned      # kept even when all its names are dead


def analyse(node, main_ns):
    """Definition for an exported statement, else None."""
    if isinstance(node, ast.Import):
        names, pinned = [], False
        for alias in node.names:
            if alias.asname:
                names.append(alias.asname)
            else:
                names.append(alias.name.partition(".")[0])
                # `import a.b` also makes a.b importable as an attribute;
                # dropping it would lose that when `a` is rebound later.
                pinned = pinned or "." in alias.name
        return Definition(Kind.IMPORT, _shorten(ast.unparse(node)), names,
                          pinned=pinned)
    if isinstance(node, ast.ImportFrom):
        names = []
        for alias in node.names:
            if alias.name == "*":
                names.extend(_star_names(node, main_ns))
            else:
                names.append(alias.asname or alias.name)
        if node.module == "__future__":
            return Definition(Kind.FUTURE, _shorten(ast.unparse(node)), names,
                              pinned=True)
        return Definition(Kind.IMPORT, _shorten(ast.unparse(node)), names)
    if isinstance(node, ast.FunctionDef):
        return Definition(Kind.DEF, "def " + node.name, [node.name])
    if isinstance(node, ast.AsyncFunctionDef):
        return Definition(Kind.DEF, "async def " + node.name, [node.name])
    if isinstance(node, ast.ClassDef):
        return Definition(Kind.CLASS, "class " + node.name, [node.name])
    if isinstance(node, ast.Assign):
        names, lambdas = [], []
        if not _is_literal(node.value):
            return None
        for target in node.targets:
            if not _target_names(target, names):
                return None
            _lambda_names(target, node.value, lambdas)
        names = _unique(names)
        return Definition(Kind.ASSIGN, "%s = ..." % ", ".join(names), names,
                          _unique(lambdas))
    if isinstance(node, ast.AnnAssign):
        if node.value is None or not isinstance(node.target, ast.Name) \
                or not _is_literal(node.value):
            return None
        lambdas = []
        _lambda_names(node.target, node.value, lambdas)
        return Definition(Kind.ASSIGN, "%s = ..." % node.target.id, [node.target.id],
                          lambdas)
    return None


def _unique(names):
    return list(dict.fromkeys(names))


def _star_names(node, main_ns):
    mod = sys.modules.get(node.module or "")
    if mod is None:
        return []
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n in vars(mod) if not n.startswith("_")]
    return [n for n in names if n in main_ns]


def loads_at_definition(node):
    """Names a statement reads while it runs (decorators, bases, default
    values, annotations, class bodies) - not what its functions read later."""
    out = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            stack.extend(n.args.defaults)
            stack.extend(d for d in n.args.kw_defaults if d is not None)
            if not isinstance(n, ast.Lambda):
                stack.extend(n.decorator_list)
                args = n.args
                for a in args.posonlyargs + args.args + args.kwonlyargs + [
                        args.vararg, args.kwarg]:
                    if a is not None and a.annotation is not None:
                        stack.append(a.annotation)
                if n.returns is not None:
                    stack.append(n.returns)
            continue
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
            out.add(n.id)
        stack.extend(ast.iter_child_nodes(n))
    return out


def name_ids(node):
    """Every name a statement mentions (its functions' locals too), as a
    frozenset.  Called for every exported statement, so written as one loop
    over the fields rather than ast.walk's generators: three times faster."""
    out = set()
    stack = [node]
    pop, push = stack.pop, stack.append
    while stack:
        n = pop()
        if type(n) is ast.Name:
            out.add(n.id)
            continue
        for field in n._fields:
            value = getattr(n, field, None)
            if type(value) is list:
                for item in value:
                    if isinstance(item, ast.AST):
                        push(item)
            elif isinstance(value, ast.AST):
                push(value)
    return frozenset(out)


def bound_names(node):
    """Names a (non-exported) statement may bind or delete at module level."""
    out = []
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.append(n.name)
            continue
        if isinstance(n, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
                          ast.GeneratorExp)):
            continue
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            out.append(n.id)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            out.extend(a.asname or a.name.partition(".")[0] for a in n.names
                       if a.name != "*")
        elif isinstance(n, ast.ExceptHandler) and n.name:
            out.append(n.name)
        elif isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name:
            out.append(n.name)
        elif isinstance(n, ast.MatchMapping) and n.rest:
            out.append(n.rest)
        stack.extend(ast.iter_child_nodes(n))
    return out


STATEMENT_WORDS = {
    ast.Assign: "an assignment of a computed value",
    ast.AnnAssign: "an assignment of a computed value",
    ast.AugAssign: "an augmented assignment",
    ast.For: "a `for` loop",
    ast.AsyncFor: "an `async for` loop",
    ast.While: "a `while` loop",
    ast.With: "a `with` statement",
    ast.AsyncWith: "an `async with` statement",
    ast.Try: "a `try` statement",
    ast.If: "an `if` statement",
    ast.Match: "a `match` statement",
    ast.Delete: "a `del` statement",
    ast.Expr: "an expression",
}
