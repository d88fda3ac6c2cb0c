"""IPython syntax in cells, turned into Python before a cell is parsed.

A cell is rewritten line for line, the way IPython's input transformers do
it:

    %time f(x)          ->  get_ipython().run_line_magic('time', 'f(x)')
    files = !ls         ->  files = get_ipython().getoutput('ls')
    !make               ->  get_ipython().system('make')
    zip?  / zip??       ->  get_ipython().run_line_magic('pinfo', 'zip')  (pinfo2)
    %%time  (first line) -> get_ipython().run_cell_magic('time', '', <the rest>)

Only cells that do not parse as Python are rewritten, and only lines that
start a logical line (not inside a string or brackets), so valid Python is
never touched.  Each rewritten line stays one line, so line numbers in
tracebacks and inspect.getsource still match the cell as typed.  The body of
a cell magic keeps its line numbers too: it is run with the blank lines
above it put back.  is_complete applies IPython's rules to the same syntax.
"""
import ast
import io
import re

_HELP = re.compile(r"^(\s*)(\?\??)?([A-Za-z_][\w.]*)(\?\??)?\s*$")
_ASSIGN = re.compile(r"^(\s*)([A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*)\s*=\s*([%!])(.*)$")



def _is_candidate(line):
    s = line.strip()
    if not s:
        return False
    if s[0] in "%!" or _ASSIGN.match(line):
        return True
    return s.endswith("?") or s.startswith("?")


def _logical_starts(lines, candidates):
    """Line numbers (0-based) that begin a logical line.  Candidate lines are
    read as `pass` so a shell command's quotes or brackets cannot hide the
    lines after it."""
    scan = []
    for i, line in enumerate(lines):
        if i in candidates:
            indent = line[: len(line) - len(line.lstrip())]
            scan.append(indent + "pass\n")
        else:
            scan.append(line if line.endswith("\n") else line + "\n")
    import tokenize
    starts, depth, at_start = set(), 0, True
    skip = (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.COMMENT, tokenize.ENDMARKER)
    try:
        for tok in tokenize.generate_tokens(io.StringIO("".join(scan)).readline):
            if tok.type == tokenize.NEWLINE or (tok.type == tokenize.NL and depth == 0):
                at_start = True
                continue
            if tok.type == tokenize.OP:
                if tok.string in "([{":
                    depth += 1
                elif tok.string in ")]}":
                    depth = max(0, depth - 1)
            if at_start and tok.type not in skip:
                starts.add(tok.start[0] - 1)
                at_start = False
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass  # the cell is broken further down; what was read still counts
    return starts


def _rewrite_line(line):
    """The Python line for one magic line, or None if it is not one."""
    indent = line[: len(line) - len(line.lstrip())]
    s = line.strip()
    m = _ASSIGN.match(line)
    if m and not s.startswith(("%", "!")):
        target, kind, rest = m.group(2), m.group(3), m.group(4).strip()
        if kind == "!":
            return f"{indent}{target} = get_ipython().getoutput({rest!r})"
        name, _, arg = rest.partition(" ")
        return f"{indent}{target} = get_ipython().run_line_magic({name!r}, {arg.strip()!r})"
    if s.startswith("!!"):
        return f"{indent}get_ipython().getoutput({s[2:].strip()!r})"
    if s.startswith("!"):
        return f"{indent}get_ipython().system({s[1:].strip()!r})"
    if s.startswith("%%"):
        return f"{indent}get_ipython().run_line_magic({s[:2]!r} + {s[2:].split(' ')[0]!r}, '')"
    if s.startswith("%"):
        name, _, arg = s[1:].partition(" ")
        return f"{indent}get_ipython().run_line_magic({name!r}, {arg.strip()!r})"
    m = _HELP.match(line)
    if m and (m.group(2) or m.group(4)):
        marks = (m.group(2) or "") + (m.group(4) or "")
        magic = "pinfo2" if len(marks) >= 2 else "pinfo"
        return f"{indent}get_ipython().run_line_magic({magic!r}, {m.group(3)!r})"
    return None


def transform(code):
    """Returns code with IPython syntax turned into Python calls."""
    if "%" not in code and "!" not in code and "?" not in code:
        return code
    try:
        ast.parse(code)
        return code
    except (SyntaxError, ValueError):
        pass
    lines = code.splitlines(True)
    first = 0
    while first < len(lines) and not lines[first].strip():
        first += 1
    if first < len(lines) and lines[first].startswith("%%"):
        head = lines[first].rstrip("\n")
        name, _, arg = head[2:].partition(" ")
        body = "\n" * (first + 1) + "".join(lines[first + 1:])
        return f"get_ipython().run_cell_magic({name!r}, {arg.strip()!r}, {body!r})\n"
    candidates = {i for i, line in enumerate(lines) if _is_candidate(line)}
    if not candidates:
        return code
    starts = _logical_starts(lines, candidates)
    out = []
    for i, line in enumerate(lines):
        new = _rewrite_line(line) if i in candidates and i in starts else None
        if new is None:
            out.append(line)
        else:
            out.append(new + ("\n" if line.endswith("\n") else ""))
    return "".join(out)


def is_complete(code):
    """is_complete_request with IPython's rules for magics."""
    from . import _complete
    lines = code.splitlines()
    first = next((line for line in lines if line.strip()), "")
    if first.startswith("%%"):
        # A cell magic's body ends with a blank line, as IPython says.
        if len(lines) > 1 and (code.endswith("\n\n") or not lines[-1].strip()):
            return {"status": "complete"}
        if len(lines) == 1 and not code.endswith("\n"):
            return {"status": "incomplete", "indent": ""}
        last = lines[-1]
        return {"status": "incomplete", "indent": last[: len(last) - len(last.lstrip())]}
    return _complete.is_complete(transform(code))

