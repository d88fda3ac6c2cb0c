"""The re-export through a real kernel: what must not reach children, and how
failures surface.

A standard pool must never hang because of a cell (the stdlib's pool
respawns a worker that cannot unpickle its task forever), statements
that are not definitions must never run in a child, and a child's traceback
must point into the cell.  Every wait inside a cell has a timeout (T), and
each cell has a kernel-side timeout too, so a regression fails, not hangs.
"""

import re

import pytest

import harness

pytestmark = pytest.mark.skipif(harness.is_ipykernel(),
                                reason="ipykernel does not re-export cell definitions")

METHODS = ["spawn", "forkserver", "fork"]
POOL_TIMEOUT = 30

PRELUDE = ("import multiprocessing as mp, concurrent.futures as cf, os\n"
           "ctx = mp.get_context({method!r})\n"
           "T = 20\n")


def run(kernel, code, method=None, ok=True):
    if method is not None:
        code = PRELUDE.format(method=method) + code
    x = kernel.execute(code, timeout=POOL_TIMEOUT, stop_on_error=False)
    return x.ok() if ok else x


def result(kernel, code, method=None):
    return eval(run(kernel, code, method).text)


def error_text(x):
    """ename: evalue, then the traceback, without colours."""
    assert x.status == "error", f"expected an error, got {x.describe()}"
    return f"{x.content['ename']}: {x.content['evalue']}\n{x.traceback_text()}"


@pytest.mark.parametrize("method", METHODS)
def test_unexported_class_fails_in_the_parent_naming_it_and_why(kernel, method):
    run(kernel, "Dyn = type('Dyn', (), {'v': 1})")
    for use in ("pool.map(Dyn, [1])",
                "pool.apply_async(len, ([Dyn()],)).get(T)",
                "pool.map(print, [Dyn])"):
        x = run(kernel, f"with ctx.Pool(1) as pool:\n    {use}", method, ok=False)
        text = error_text(x)
        assert x.content["ename"] == "PicklingError", text
        assert "Dyn" in x.content["evalue"], text
        assert "Dyn = type('Dyn', (), {'v': 1})" in x.content["evalue"], text
        assert "computed value" in x.content["evalue"], text
    x = run(kernel, "with cf.ProcessPoolExecutor(1, mp_context=ctx) as ex:\n"
                    "    ex.submit(Dyn).result(T)", method, ok=False)
    assert "Dyn" in x.content["evalue"], error_text(x)


@pytest.mark.parametrize("method", METHODS)
def test_global_that_was_not_exported_travels_by_value(kernel, method):
    run(kernel, "import os\nSTARTED_BY = os.getpid()\n")
    run(kernel, "def started_by(_):\n    return STARTED_BY, os.getpid() == STARTED_BY\n")
    got = result(kernel, "with ctx.Pool(1) as pool:\n    r = pool.map(started_by, [1])\n"
                         "r, os.getpid()", method)
    assert got == ([(got[1], False)], got[1])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", ["decorator", "base", "default"])
def test_definition_that_fails_in_a_child_is_a_task_error_naming_it(kernel, method, case):
    setup = {
        # Each statement works in the kernel, and cannot work in a child: it
        # reads a computed value while being defined.
        "decorator": ("registry = dict(kind='computed')\n"
                      "def register(f):\n"
                      "    registry[f.__name__] = f\n"
                      "    return f\n"
                      "@register\n"
                      "def broken(x):\n"
                      "    return x\n"),
        "base": ("Base = type('Base', (), {})\n"
                 "class broken(Base):\n"
                 "    def __init__(self, x):\n"
                 "        self.x = x\n"),
        "default": ("import os\n"
                    "DEFAULT = os.getpid()\n"
                    "def broken(x, d=DEFAULT + 1):\n"
                    "    return x\n"),
    }[case]
    run(kernel, setup)
    for use in ("pool.map(broken, [1, 2], chunksize=1)",
                "pool.apply_async(broken, (1,)).get(T)"):
        x = run(kernel, f"with ctx.Pool(1) as pool:\n    {use}", method, ok=False)
        text = error_text(x)
        assert x.content["ename"] == "ReexportError", text
        assert "'broken'" in x.content["evalue"], text
        assert re.search(r"Cell In\[\d+\], line \d+", x.content["evalue"]), text
    # The pool still works after such a task: nothing was lost or respawned
    # forever.
    got = result(kernel, "def fine(x):\n    return -x\n"
                         "with ctx.Pool(1) as pool:\n"
                         "    try:\n"
                         "        pool.apply_async(broken, (1,)).get(T)\n"
                         "    except Exception as e:\n"
                         "        first = type(e).__name__\n"
                         "    then = pool.map(fine, [1, 2])\n"
                         "first, then", method)
    assert got == ("ReexportError", [-1, -2])


@pytest.mark.parametrize("method", METHODS)
def test_statements_that_are_not_definitions_never_run_in_a_child(kernel, method):
    marker = kernel.cwd / f"side-effects-{method}.txt"
    run(kernel, f"""
MARK = {str(marker)!r}
print('side effect: print')
with open(MARK, 'a') as f:
    f.write('with;')
for i in range(2):
    open(MARK, 'a').write('loop;')
early = ctx.Pool(1)
if __name__ == '__main__':
    open(MARK, 'a').write('guarded;')
    def child_only(x):
        return x + 1
""", method)
    try:
        got = result(kernel, """
open(MARK, 'a').write('same-cell;')
def also(x):
    return child_only(x) * 10
with ctx.Pool(2) as pool:
    a = pool.map(also, range(4), chunksize=1)
    b = early.map(child_only, [1])
with cf.ProcessPoolExecutor(1, mp_context=ctx) as ex:
    c = ex.submit(also, 1).result(T)
a, b, c
""", method)
        # The children ran everything they were given; give any stray writer
        # a moment before reading what the file says.
        content = result(kernel, "import time\ntime.sleep(0.2)\nopen(MARK).read()")
    finally:
        run(kernel, "early.terminate(); early.join()")
    assert got == ([10, 20, 30, 40], [2], 20)
    assert content == "with;loop;loop;guarded;same-cell;"
    assert marker.read_text() == content


@pytest.mark.parametrize("method", METHODS)
def test_child_traceback_names_the_cell_and_shows_its_line(kernel, method):
    run(kernel, "def inner(x):\n"
                "    limit = 3\n"
                "    raise ValueError(f'too big: {x} > {limit}')\n")
    run(kernel, "", method)  # the prelude in a cell of its own: line numbers below
    x = run(kernel, "def outer(x):\n"
                    "    return inner(x * 2)\n"
                    "with ctx.Pool(1) as pool:\n"
                    "    pool.map(outer, [5])", ok=False)
    text = error_text(x)
    assert x.content["ename"] == "ValueError", text
    assert x.content["evalue"] == "too big: 10 > 3", text
    outer_cell = x.execution_count
    inner_cell = outer_cell - 2  # the prelude cell ran in between
    # The child's frames, as the stdlib's RemoteTraceback shows them.
    assert f'File "Cell In[{outer_cell}]", line 2, in outer' in text, text
    assert "return inner(x * 2)" in text, text
    assert f'File "Cell In[{inner_cell}]", line 3, in inner' in text, text
    assert "raise ValueError(f'too big: {x} > {limit}')" in text, text


@pytest.mark.parametrize("method", METHODS)
def test_process_pool_executor_traceback_names_the_cell(kernel, method):
    run(kernel, "", method)
    x = run(kernel, "def fails(x):\n"
                    "    return {}[x]\n"
                    "with cf.ProcessPoolExecutor(1, mp_context=ctx) as ex:\n"
                    "    ex.submit(fails, 'missing').result(T)", ok=False)
    text = error_text(x)
    assert x.content["ename"] == "KeyError", text
    assert f'File "Cell In[{x.execution_count}]", line 2, in fails' in text, text
    assert "return {}[x]" in text, text
