"""The template process from the kernel's side (kernel/pool/template.h):
when it starts, and what it imports.

The template forks the pool's workers with the notebook's modules already
imported, so it imports what the cells import, while they import it:
before a cell runs, the top-level modules its import statements name go
to the template, which imports them at the same time as the kernel.

FERRY_POOL_TEMPLATE says when it starts: "idle" (the default: once the
kernel first goes idle after start-up, so that even the first pool finds
it ready), "import" (when a cell first imports ferry, multiprocessing or
concurrent.futures), or "off" (no template: workers start by exec).
bench/README.md has the figures behind the default.
"""
import json
import os
import sys

import _ferry_pool

_POOL_MODULES = ("ferry", "multiprocessing", "concurrent")

_mode = os.environ.get("FERRY_POOL_TEMPLATE", "idle")
_modules = []      # top-level modules the cells imported, in order
_known = set()     # the same, for lookups
_wanted = False    # the template should run (started once, restarted if it died)
_cell_imports = ()  # the modules the running cell's import statements name
_sent_seq = 0      # the recorder's last statement the template has compiled
# The template's messages are at most 256 KiB (kernel/pool/template.h): a
# plan over this goes without its statements, which workers then compile.
_PLAN_MAX = 200 * 1024


def at_idle():
    """The kernel is idle for the first time."""
    if _mode == "idle":
        _start()


def before_cell(code):
    """Before a cell runs: the modules it imports go to the template now,
    to be imported while the kernel imports them."""
    global _cell_imports
    _cell_imports = ()
    if _mode == "off":
        return
    _cell_imports = _imports(code)
    if not _cell_imports:
        return
    if not _wanted and _mode == "import" and \
            any(n in _POOL_MODULES for n in _cell_imports):
        _start()
    elif _wanted:
        _send(_cell_imports)


def after_cell():
    """After a cell: its imports that worked here go again, with sys.path
    as the cell left it (a cell that extends sys.path before an import:
    the template's first try failed), and are kept for a template started
    later; so do the definitions it recorded, for the template to compile
    (a new worker's first task then runs them without compiling).  A
    template that died is started again (with all of them); one given up
    on (a thread ran in it) stays so."""
    if not _wanted and not _cell_imports:
        return
    _ferry_pool.template_environment()  # for workers forked before the next cell
    done = [n for n in _cell_imports if n in sys.modules]
    new = [n for n in done if n not in _known]
    _known.update(new)
    _modules.extend(new)
    if _wanted and _ferry_pool.template_state()[0] == "off":
        _start()
        return
    code = _new_statements() if _wanted else None
    if done or code:
        _send(done, code)


def _start():
    global _wanted, _sent_seq
    _wanted = True
    _sent_seq = 0  # a new template has compiled nothing
    if _ferry_pool.template_start():
        code = _new_statements()
        if _modules or code:
            _send(_modules, code)


def _new_statements():
    """The statements recorded since the last call, for the template:
    {"cells", "statements"} (Recorder.statements_since), or None."""
    global _sent_seq
    from . import _session
    if _session.recorder is None:
        return None
    _sent_seq, cells, statements = _session.recorder.statements_since(_sent_seq)
    return {"cells": cells, "statements": statements} if statements else None


def _send(names, code=None):
    plan = {"cwd": os.getcwd(), "path": list(sys.path), "modules": list(names)}
    text = json.dumps(dict(plan, code=code)) if code else json.dumps(plan)
    if len(text) > _PLAN_MAX:
        text = json.dumps(plan)
    _ferry_pool.template_preload(text)


def _imports(code):
    """The top-level modules code's import statements name (absolute
    imports only).  A substring test first: most cells import nothing."""
    if "import" not in code:
        return ()
    import ast
    from . import _transform
    try:
        # As the shell will run it: a line magic (%matplotlib inline) would
        # make the raw cell a syntax error and hide its imports.
        tree = ast.parse(_transform.transform(code))
    except (SyntaxError, ValueError):  # a cell that will fail
        return ()
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module.split(".")[0])
    return list(dict.fromkeys(names))
