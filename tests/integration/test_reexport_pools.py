"""The re-export through a real kernel: stdlib pools run what cells define.

docs/reexport.md says what children see.  Each test runs ordinary notebook code -
nothing ferry-specific in it - under each start method of `multiprocessing`
and checks that the child really ran it (its pid is not the kernel's).  Every
wait inside a cell has a timeout, so a broken re-export fails a test instead
of hanging it.
"""

import pytest

import harness

pytestmark = pytest.mark.skipif(harness.is_ipykernel(),
                                reason="ipykernel does not re-export cell definitions")

METHODS = ["spawn", "forkserver", "fork"]
# A cell that starts pools: spawn children take ~0.1 s each on a loaded machine.
POOL_TIMEOUT = 30

# Every cell that uses a pool starts with this; `T` bounds every wait in it.
PRELUDE = ("import multiprocessing as mp, concurrent.futures as cf, os\n"
           "ctx = mp.get_context({method!r})\n"
           "T = 20\n"
           "KERNEL_PID = os.getpid()\n")


def run(kernel, code, method=None, timeout=POOL_TIMEOUT):
    """Run CODE (after the prelude when METHOD is given); assert it succeeded."""
    if method is not None:
        code = PRELUDE.format(method=method) + code
    return kernel.execute(code, timeout=timeout).ok()


def result(kernel, code, method=None):
    """The value of CODE's trailing expression, as the kernel's repr, eval'd."""
    return eval(run(kernel, code, method).text)


@pytest.mark.parametrize("method", METHODS)
def test_pool_runs_every_kind_of_cell_definition(kernel, method):
    run(kernel, """
import dataclasses, enum, functools, math

OFFSET = 1000
NAMES = ('a', 'b')

def plain(x):
    return x * 2

class Scaler:
    def __init__(self, k):
        self.k = k
    def __call__(self, x):
        return x * self.k

@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int = 0

class Color(enum.Enum):
    RED = 1
    BLUE = 2

def shifted(f):
    @functools.wraps(f)
    def wrapper(x):
        return f(x) + OFFSET
    return wrapper

@shifted
def decorated(x):
    return x

cube = lambda x: x ** 3

def point(x):
    return Point(x, int(math.sqrt(x * x)))

def color(x):
    return Color.RED if x % 2 else Color.BLUE

def pid(_):
    return os.getpid()
""")
    got = result(kernel, """
with ctx.Pool(2) as pool:
    out = {
        'plain': pool.map(plain, [1, 2]),
        'instance': pool.map(Scaler(3), [1, 2]),
        'decorated': pool.map(decorated, [1]),
        'lambda': pool.map(cube, [2]),
        'point': pool.map(point, [3]),
        'color': pool.map(color, [1, 2]),
        'class': pool.apply_async(Point, (5, 6)).get(T),
        'pids': set(pool.map(pid, range(4), chunksize=1)),
    }
{'plain': out['plain'], 'instance': out['instance'], 'decorated': out['decorated'],
 'lambda': out['lambda'],
 'types_are_live': (type(out['point'][0]) is Point, type(out['color'][0]) is Color,
                    type(out['class']) is Point),
 'in_children': KERNEL_PID not in out['pids'],
 'repr': repr(out['point'][0]) + ' ' + repr(out['color']) + ' ' + repr(out['class'])}
""", method)
    assert got["plain"] == [2, 4]
    assert got["instance"] == [3, 6]
    assert got["decorated"] == [1001]
    assert got["lambda"] == [8]
    assert got["types_are_live"] == (True, True, True)
    assert got["in_children"]
    assert got["repr"] == ("Point(x=3, y=3) [<Color.RED: 1>, <Color.BLUE: 2>] "
                           "Point(x=5, y=6)")


@pytest.mark.parametrize("method", METHODS)
def test_process_and_queue_carry_cell_objects(kernel, method):
    got = result(kernel, """
from dataclasses import dataclass

@dataclass
class Msg:
    text: str
    pid: int = 0

def reply(q_in, q_out):
    m = q_in.get(timeout=T)
    q_out.put(Msg(m.text.upper(), os.getpid()))

q_in, q_out = ctx.Queue(), ctx.Queue()
p = ctx.Process(target=reply, args=(q_in, q_out))
p.start()
q_in.put(Msg('hello'))
m = q_out.get(timeout=T)
p.join(T)
(type(m) is Msg, m.text, m.pid not in (0, KERNEL_PID), p.exitcode)
""", method)
    assert got == (True, "HELLO", True, 0)


@pytest.mark.parametrize("method", METHODS)
def test_process_pool_executor_runs_cell_definitions(kernel, method):
    got = result(kernel, """
import enum

class Size(enum.IntEnum):
    S = 1
    L = 2

def label(x):
    return (Size(x).name, os.getpid())

square = lambda x: x * x

with cf.ProcessPoolExecutor(2, mp_context=ctx) as ex:
    labels = list(ex.map(label, [1, 2], timeout=T))
    fut = ex.submit(square, 7)
    sq = fut.result(timeout=T)
([n for n, _ in labels], sq, all(pid != KERNEL_PID for _, pid in labels))
""", method)
    assert got == (["S", "L"], 49, True)


@pytest.mark.parametrize("method", METHODS)
def test_main_guard_definitions_work_in_children(kernel, method):
    got = result(kernel, """
if __name__ == '__main__':
    def guarded(x):
        return Guarded(x).double()

    class Guarded:
        def __init__(self, v):
            self.v = v
        def double(self):
            return 2 * self.v

    with ctx.Pool(2) as pool:
        guarded_out = pool.map(guarded, [1, 2, 3])
guarded_out
""", method)
    assert got == [2, 4, 6]


@pytest.mark.parametrize("method", METHODS)
def test_cell_uses_a_definition_a_few_lines_later(kernel, method):
    got = result(kernel, """
def inc(x):
    return x + 1
with ctx.Pool(1) as pool:
    first = pool.map(inc, [1])
class Box:
    def __init__(self, v):
        self.v = v
def boxed(x):
    return Box(inc(x)).v
with ctx.Pool(1) as pool:
    second = pool.map(boxed, [1])
first, second
""", method)
    assert got == ([2], [2])


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_redefinition_between_pools_is_what_the_second_pool_runs(kernel, method):
    run(kernel, """
def version(_):
    return 'v1 ' + helper()
def helper():
    return 'h1'
with ctx.Pool(1) as pool:
    before = pool.map(version, [0])
""", method)
    got = result(kernel, """
def helper():
    return 'h2'
with ctx.Pool(1) as pool:
    after = pool.map(version, [0])
def version(_):
    return 'v2 ' + helper()
with ctx.Pool(1) as pool:
    last = pool.map(version, [0])
before, after, last
""", method)
    assert got == (["v1 h1"], ["v1 h2"], ["v2 h2"])


@pytest.mark.parametrize("method", METHODS)
def test_pool_created_before_a_definition_runs_the_current_one(kernel, method):
    run(kernel, "early_pool = ctx.Pool(1)\nearly_exec = cf.ProcessPoolExecutor(1, mp_context=ctx)",
        method)
    try:
        run(kernel, """
class Later:
    tag = 'later'
def defined_later(x):
    return (Later.tag, x)
got_pool = early_pool.apply_async(defined_later, (1,)).get(T)
got_exec = early_exec.submit(defined_later, 2).result(T)
""")
        got = result(kernel, """
class Later:
    tag = 'redefined'
got_pool2 = early_pool.apply_async(defined_later, (3,)).get(T)
def defined_later(x):
    return ('again', Later.tag, x)
got_exec2 = early_exec.submit(defined_later, 4).result(T)
got_pool, got_exec, got_pool2, got_exec2
""")
    finally:
        run(kernel, "early_pool.terminate(); early_pool.join()\n"
                    "early_exec.shutdown(cancel_futures=True)")
    assert got == (("later", 1), ("later", 2), ("redefined", 3),
                   ("again", "redefined", 4))


@pytest.mark.parametrize("method", METHODS)
def test_functions_use_imports_and_literals_from_earlier_cells(kernel, method):
    run(kernel, "import json\nfrom collections import Counter as Tally\n"
                "import os.path\n")
    run(kernel, "RATE = 2.5\nLABELS = {'a': [1, 2], 'b': (3, -4)}\nGREETING = 'hi'\n"
                "FLAGS = {True, None}\nNEG = -3\n")
    run(kernel, "def use_earlier(k):\n"
                "    return (json.dumps(LABELS[k]), RATE * 2, GREETING, NEG,\n"
                "            sorted(Tally('aab').items()), os.path.basename('/x/y'),\n"
                "            None in FLAGS)\n")
    got = result(kernel, "with ctx.Pool(1) as pool:\n"
                         "    out = pool.map(use_earlier, ['a', 'b'])\n"
                         "out", method)
    assert got == [("[1, 2]", 5.0, "hi", -3, [("a", 2), ("b", 1)], "y", True),
                   ("[3, -4]", 5.0, "hi", -3, [("a", 2), ("b", 1)], "y", True)]


@pytest.mark.parametrize("method", METHODS)
def test_results_keep_identity_of_cell_classes_in_the_kernel(kernel, method):
    got = result(kernel, """
class Node:
    def __init__(self, v, children=()):
        self.v, self.children = v, list(children)
def tree(n):
    return Node(n, [Node(i) for i in range(n)])
with ctx.Pool(1) as pool:
    t = pool.apply_async(tree, (3,)).get(T)
(isinstance(t, Node), all(type(c) is Node for c in t.children), [c.v for c in t.children])
""", method)
    assert got == (True, True, [0, 1, 2])
