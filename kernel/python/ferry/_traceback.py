"""Tracebacks as notebook users know them from IPython.

Frames of cells read `Cell In[3], line 2, in f` with the source around the
failing line; frames of the kernel's own runner are hidden.
"""
import linecache
import os
import traceback

_HERE = os.path.dirname(os.path.abspath(__file__))
RED, GREEN, CYAN, BOLD, RESET = "\x1b[0;31m", "\x1b[0;32m", "\x1b[0;36m", "\x1b[1m", "\x1b[0m"
_RULE = RED + "-" * 75 + RESET
_CONTEXT = 2


def is_cell(filename):
    return filename.startswith("Cell In[") or filename.startswith("<ferry-")


def _hidden(filename):
    # ferry's own frames (the runner, the pool's plumbing) say nothing about
    # the user's code; the error message itself names what went wrong.
    return filename.startswith(_HERE + os.sep)


def _location(frame):
    if is_cell(frame.filename):
        where = f"{GREEN}{frame.filename}, line {frame.lineno}{RESET}"
    else:
        where = f"File {GREEN}{frame.filename}:{frame.lineno}{RESET}"
    if frame.name != "<module>":
        where += f", in {CYAN}{frame.name}(){RESET}"
    return where


def _source(frame):
    lines = []
    first = max(1, frame.lineno - _CONTEXT) if is_cell(frame.filename) else frame.lineno
    for n in range(first, frame.lineno + 1):
        text = linecache.getline(frame.filename, n).rstrip("\n")
        if not text and n != frame.lineno:
            continue
        if n == frame.lineno:
            lines.append(f"{GREEN}---->{RESET} {n} {text}" if text else "")
        else:
            lines.append(f"      {n} {text}")
    return [line for line in lines if line]


def _frames(tb):
    out = []
    for frame in traceback.extract_tb(tb):
        if _hidden(frame.filename):
            continue
        # Each frame ends with a newline, as IPython's do: tools comparing
        # outputs join them as they are.
        out.append(_location(frame) + "\n" + "\n".join(_source(frame)) + "\n")
    return out


def _syntax_error(exc):
    lines = []
    filename = exc.filename or "<unknown>"
    where = f"{filename}, line {exc.lineno}" if is_cell(filename) else f"File {filename}:{exc.lineno}"
    lines.append(f"  {GREEN}{where}{RESET}")
    if exc.text:
        text = exc.text.rstrip("\n")
        stripped = text.lstrip()
        lines.append(f"    {stripped}")
        if exc.offset:
            caret = max(0, exc.offset - 1 - (len(text) - len(stripped)))
            lines.append("    " + " " * caret + f"{RED}^{RESET}")
    return "\n".join(lines)


def safe_str(exc):
    """str(exc), or what the stdlib's traceback prints when __str__ raises."""
    try:
        return str(exc)
    except BaseException:  # a broken __str__ must not hide the exception itself
        return "<exception str() failed>"


def _one(exc):
    ename = type(exc).__name__
    if isinstance(exc, SyntaxError):
        return [_syntax_error(exc), f"{RED}{ename}{RESET}: {exc.msg}"]
    if getattr(exc, "_ferry_brief", False):  # a misused magic: the message says it all
        return [f"{RED}{ename}{RESET}: {safe_str(exc)}"]
    header = f"{RED}{ename}{RESET}" + " " * max(1, 42 - len(ename)) + "Traceback (most recent call last)"
    try:
        remote = exc.__dict__.get("_ferry_remote")
    except Exception:  # no __dict__, or a hostile __getattribute__
        remote = None
    if remote is not None:
        return [_RULE, header] + _frames(exc.__traceback__) + _remote(*remote)
    return [_RULE, header] + _frames(exc.__traceback__) + [f"{RED}{ename}{RESET}: {safe_str(exc)}"]


def _remote(pid, lines):
    """The traceback a pool worker sent (ferry._worker), under the frames of
    the cell that waited for it; it ends with the exception line itself."""
    lines = list(lines)
    if len(lines) >= 2 and lines[0] == _RULE:
        lines = lines[2:]  # its rule and header repeat ours
    return [f"{BOLD}In worker process {pid}:{RESET}"] + lines


def format_exception(exc):
    """Returns the traceback lines (with ANSI colour) for exc and its chain."""
    chain = []
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        if exc.__cause__ is not None:
            exc = exc.__cause__
        elif exc.__context__ is not None and not exc.__suppress_context__:
            exc = exc.__context__
        else:
            exc = None
    lines = []
    for i, e in enumerate(reversed(chain)):
        if i:
            nxt = list(reversed(chain))[i]
            cause = nxt.__cause__ is list(reversed(chain))[i - 1]
            lines.append("\n" + ("The above exception was the direct cause of the following exception:"
                                 if cause else
                                 "During handling of the above exception, another exception occurred:") + "\n")
        lines.extend(_one(e))
    return lines
