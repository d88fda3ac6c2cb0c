"""What the Recorder exports, and the module versions it writes.

These run the fake kernel in-process with a private __main__ (not installed
in sys.modules and without the multiprocessing hooks); anything that needs a
child process is in a subprocess with a timeout.
"""

import ast
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from fakekernel import FakeKernel, KERNEL_PYTHON
from ferry import _reexport

PYTHON = "/usr/bin/python3"


@pytest.fixture
def kernel(tmp_path):
    return FakeKernel(str(tmp_path / "rt"))


def cell(kernel, source):
    return kernel.run_cell(textwrap.dedent(source))


def exported(kernel):
    return kernel.rec.exported_names()


def guard(source):
    return _reexport.is_main_guard(ast.parse(source).body[0])


# -- the contract: what is exported --------------------------------------

def test_exports_imports_definitions_and_literal_assignments(kernel):
    cell(kernel, """
        import os
        import os.path as osp
        from math import pi, tau as TAU
        def f():
            pass
        async def g():
            pass
        @staticmethod
        def h():
            pass
        class C:
            pass
        N = 3
        """)
    assert exported(kernel) == ["os", "osp", "pi", "TAU", "f", "g", "h", "C", "N"]


def test_exports_every_kind_of_literal(kernel):
    cell(kernel, """
        a = 1
        b = -2.5
        c = 1 + 2j
        d = 'text'
        e = b'bytes'
        f = None
        g = True
        h = (1, (2, 'x'), [None, -1])
        i = {'k': {1, 2}, 2: [3]}
        j: int = 4
        k, (l, *m) = 1, (2, 3, 4)
        n = o = ...
        """)
    assert exported(kernel) == list("abcdefghijklmno")


def test_does_not_export_computed_values_or_other_statements(kernel):
    cell(kernel, """
        import math
        a = math.sqrt(4)
        b = a
        c = f'{a}'
        d = set()
        e = {**{}}
        f = [i for i in range(3)]
        for g in range(2):
            pass
        with open(__import__('os').devnull) as h:
            pass
        print('statement')
        math.x_attr = 1
        k: int
        """)
    assert exported(kernel) == ["math"]


def test_keeps_definition_order(kernel):
    cell(kernel, "class A:\n    pass\n")
    cell(kernel, "class B(A):\n    pass\nX = 1\n")
    cell(kernel, "def f():\n    return X\n")
    assert exported(kernel) == ["A", "B", "X", "f"]


def test_redefinition_moves_the_name_to_the_end(kernel):
    cell(kernel, "def a():\n    return 1\ndef b():\n    return a()\n")
    cell(kernel, "def a():\n    return 2\n")
    assert exported(kernel) == ["b", "a"]
    text = open(kernel.rec.current()).read()
    assert text.count("'def a'") == 1  # the first `def a` is gone


def test_del_removes_the_name(kernel):
    cell(kernel, "X = 1\nY = 2\ndef f():\n    pass\n")
    cell(kernel, "del X, f\n")
    assert exported(kernel) == ["Y"]


def test_statement_that_raised_and_the_rest_of_its_cell_are_not_exported(kernel):
    with pytest.raises(ZeroDivisionError):
        cell(kernel, "def good():\n    pass\nbad = 1 / 0\ndef unreached():\n    pass\n")
    assert exported(kernel) == ["good"]


def test_earlier_value_stays_when_a_redefinition_raised(kernel):
    cell(kernel, "X = 1\n")
    with pytest.raises(ZeroDivisionError):
        cell(kernel, "X = 1 / 0\n")
    assert exported(kernel) == ["X"]


def test_rebinding_to_a_computed_value_ends_the_export(kernel):
    cell(kernel, """
        import functools
        def f(x):
            return x
        def g(x):
            return x
        f = functools.lru_cache(f)
        for g in [len]:
            pass
        """)
    assert exported(kernel) == ["functools"]


def test_rebinding_through_globals_ends_the_export(kernel):
    cell(kernel, "X = 1\ndef set_x():\n    global X\n    X = object()\nset_x()\n")
    assert exported(kernel) == ["set_x"]


def test_import_of_a_submodule_binds_the_top_package(kernel):
    cell(kernel, "import xml.etree.ElementTree\n")
    assert exported(kernel) == ["xml"]


def test_main_guard_body_is_hoisted(kernel):
    cell(kernel, """
        if __name__ == '__main__':
            def inside():
                pass
            print('not exported')
            Z = 5
        """)
    assert exported(kernel) == ["inside", "Z"]


@pytest.mark.parametrize("source", [
    "if __name__ == '__main__':\n    pass",
    'if __name__ == "__main__":\n    pass',
    "if '__main__' == __name__:\n    pass",
    "if __name__ == '__main__':\n    pass\nelse:\n    pass",
])
def test_is_main_guard_accepts_both_orders_and_quotes(source):
    assert guard(source)


@pytest.mark.parametrize("source", [
    "if __name__ != '__main__':\n    pass",
    "if __name__ == 'main':\n    pass",
    "if name == '__main__':\n    pass",
    "if __name__ == '__main__' == x:\n    pass",
    "while __name__ == '__main__':\n    pass",
])
def test_is_main_guard_rejects_other_tests(source):
    assert not guard(source)


def test_named_lambda_gets_its_name_in_the_kernel(kernel):
    cell(kernel, "sq = lambda x: x * x\nfirst, second = lambda: 1, lambda: 2\nanon = [lambda: 0]\n")
    assert (kernel.ns["sq"].__name__, kernel.ns["sq"].__qualname__) == ("sq", "sq")
    assert kernel.ns["second"].__qualname__ == "second"
    assert kernel.ns["anon"][0].__qualname__ == "<lambda>"
    assert exported(kernel) == ["sq", "first", "second", "anon"]


# -- the module file ------------------------------------------------------

def test_versions_are_written_lazily_and_atomically(kernel):
    cell(kernel, "X = 1\n")
    first = kernel.rec.current()
    assert kernel.rec.current() == first
    cell(kernel, "print('no definition here')\ny = X + 1\n")
    assert kernel.rec.current() == first
    cell(kernel, "def f():\n    pass\n")
    second = kernel.rec.current()
    assert second != first
    assert os.path.basename(second).startswith("ferry_main_")
    assert os.path.basename(second) != "ipython.py"
    rt = kernel.rec.runtime_dir
    assert stat.S_IMODE(os.stat(rt).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(second).st_mode) == 0o600
    assert [n for n in os.listdir(rt) if n.endswith(".tmp")] == []


def test_old_versions_are_pruned(kernel, monkeypatch):
    monkeypatch.setattr(_reexport, "KEEP_VERSIONS", 3)
    monkeypatch.setattr(_reexport, "KEEP_SECONDS", 0.0)
    paths = []
    for i in range(6):
        cell(kernel, "V = %d\n" % i)
        paths.append(kernel.rec.current())
    left = sorted(os.listdir(kernel.rec.runtime_dir))
    assert left == sorted(os.path.basename(p) for p in paths[-3:])


def test_recent_versions_survive_pruning(kernel, monkeypatch):
    monkeypatch.setattr(_reexport, "KEEP_VERSIONS", 2)
    for i in range(5):
        cell(kernel, "V = %d\n" % i)
        kernel.rec.current()
    assert len(os.listdir(kernel.rec.runtime_dir)) == 5


def test_a_new_recorder_never_reuses_a_version_file(tmp_path):
    k1 = FakeKernel(str(tmp_path / "rt"))
    k1.run_cell("X = 1\n")
    p1 = k1.rec.current()
    k2 = FakeKernel(str(tmp_path / "rt"))
    k2.run_cell("X = 2\n")
    assert k2.rec.current() != p1


def test_class_keeps_the_base_it_was_defined_with(kernel):
    cell(kernel, "class Base:\n    tag = 'old'\nclass D(Base):\n    pass\n")
    cell(kernel, "class Base:\n    tag = 'new'\n")
    assert exported(kernel) == ["D", "Base"]
    out = run_module(kernel.rec.current(), "print(m.D.tag, m.Base.tag)")
    assert out == "old new"


def run_module(path, code):
    """Load a version file standalone in a fresh interpreter (as a spawn
    child would, with ferry importable) and run `code` with it as `m`."""
    program = textwrap.dedent("""
        import runpy, sys, types
        sys.path.insert(0, %r)
        m = types.SimpleNamespace(**runpy.run_path(%r, run_name='__mp_main__'))
        """ % (KERNEL_PYTHON, path)) + textwrap.dedent(code)
    proc = subprocess.run([PYTHON, "-c", program], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_module_imports_on_its_own_and_replays_definitions(kernel):
    cell(kernel, """
        import math
        from dataclasses import dataclass
        SCALE = 3
        @dataclass
        class P:
            x: int
        def f(v):
            return math.floor(v) * SCALE
        sq = lambda v: v * v
        print('side effect')
        """)
    out = run_module(kernel.rec.current(), """
        print(m.f(2.5), m.P(1), m.sq(3), m.sq.__qualname__)
        print(sorted(k for k in vars(m) if not k.startswith('__')))
        """)
    assert out.splitlines() == [
        "6 P(x=1) 9 sq", "['P', 'SCALE', 'dataclass', 'f', 'math', 'sq']"]


def test_failing_statement_leaves_stand_ins_that_name_the_cell(kernel):
    cell(kernel, "tag = str(1)\n")
    cell(kernel, """
        def deco(fn):
            fn.tag = tag.upper()
            return fn
        @deco
        def decorated(x):
            return x
        Base = type('Base', (), {})
        class Derived(Base):
            pass
        def fine():
            return 'fine'
        """)
    out = run_module(kernel.rec.current(), """
        import pickle
        from ferry._rx_rt import ReexportError
        print(m.fine())
        for thing in (m.decorated, m.Derived):
            try:
                thing(1)
            except ReexportError as e:
                print(e)
        obj = pickle.loads(pickle.dumps(m.decorated))
        print(type(obj).__name__)
        """)
    lines = out.splitlines()
    assert lines[0] == "fine"
    assert "'decorated'" in lines[1] and "Cell In[2], line 5" in lines[1]
    # What the child could not re-create is named, with why: the names they
    # read were bound to computed values in the kernel.
    assert "raised ReexportError: ferry did not re-export 'tag'" in lines[1]
    assert "`tag = str(1)`" in lines[1]
    assert "'Derived'" in lines[2] and "Cell In[2], line 9" in lines[2]
    assert "raised ReexportError: ferry did not re-export 'Base'" in lines[2]
    assert lines[3] == "StandIn"


def test_names_definitions_read_but_not_exported_say_why_in_children(kernel):
    cell(kernel, "import os\nSTARTED = os.getpid()\nSENTINEL = object()\n"
                 "for i in range(2):\n    pass\n")
    cell(kernel, """
        def started_here():
            return os.getpid() == STARTED
        def use_loop_var():
            return i + 1
        def pick(x, default=SENTINEL):
            return 'default' if x is SENTINEL else x
        def keep():
            return [STARTED]
        """)
    out = run_module(kernel.rec.current(), """
        import pickle
        from ferry._rx_rt import ReexportError
        for f in (m.started_here, m.use_loop_var, m.keep, lambda: str(m.STARTED),
                  lambda: pickle.dumps(m.STARTED), lambda: m.STARTED.real,
                  lambda: [c for c in m.STARTED], lambda: types.new_class('X', (m.STARTED,))):
            try:
                f()
                print('no error')
            except ReexportError as e:
                print(e)
        print(m.pick(m.SENTINEL), m.pick(3))
        print(repr(m.STARTED))
        """)
    lines = out.splitlines()
    assert len(lines) == 10, out
    assert "'STARTED'" in lines[0] and "`STARTED = os.getpid()`" in lines[0]
    assert "computed value" in lines[0] and "Cell In[1], line 2" in lines[0]
    assert "'i'" in lines[1] and "a `for` loop" in lines[1]
    # Only a use fails: putting it in a list does not, returning that list
    # (pickling it back) does.
    assert lines[2] == "no error"
    assert all("did not re-export 'STARTED'" in line for line in lines[3:8]), out
    # An object() sentinel keeps working: it is one stand-in everywhere.
    assert lines[8] == "default 3"
    assert lines[9] == "<ferry: STARTED is not available in worker processes>"


def test_computed_values_no_definition_reads_make_no_new_version(kernel):
    cell(kernel, "import os\ndef f():\n    return 1\n")
    first = kernel.rec.current()
    cell(kernel, "result = os.getpid()\nfor j in range(2):\n    pass\n")
    assert kernel.rec.current() == first
    cell(kernel, "def g():\n    return result\n")
    assert kernel.rec.current() != first


def test_child_tracebacks_name_the_cell_and_show_the_line(kernel):
    cell(kernel, "X = 1\n")
    cell(kernel, "def boom():\n    raise ValueError('boom')\n")
    out = run_module(kernel.rec.current(), """
        import traceback
        try:
            m.boom()
        except ValueError as e:
            print(''.join(traceback.format_exception(e)))
        """)
    assert 'File "Cell In[2]", line 2, in boom' in out
    assert "raise ValueError('boom')" in out


def test_hoisted_statements_compile_with_their_cell_line_numbers(kernel):
    cell(kernel, "if __name__ == '__main__':\n    def f():\n        raise KeyError(1)\n")
    out = run_module(kernel.rec.current(), """
        import traceback
        try:
            m.f()
        except KeyError as e:
            print(''.join(traceback.format_exception(e)))
        """)
    assert 'File "Cell In[1]", line 3, in f' in out
    assert "raise KeyError(1)" in out


def test_future_annotations_apply_to_later_statements(kernel):
    cell(kernel, "from __future__ import annotations\n")
    cell(kernel, "def f(x: Undefined) -> AlsoUndefined:\n    return 1\n")
    assert run_module(kernel.rec.current(), "print(m.f(0))") == "1"


def test_star_import_exports_the_names_it_bound(kernel):
    cell(kernel, "from keyword import *\n")
    assert exported(kernel) == ["iskeyword", "issoftkeyword", "kwlist", "softkwlist"]


def test_statement_not_found_in_the_cell_source_travels_as_text(kernel):
    # A runner that transformed the cell (magics) may hand over nodes whose
    # positions do not match a parse of cell_source.
    node = ast.parse("\n\ndef f():\n    return 41 + 1\n").body[0]
    exec(compile(ast.Module([node], []), "Cell In[9]", "exec"), kernel.ns)
    kernel.rec.record(node, "# %magic\n", "Cell In[9]")
    assert run_module(kernel.rec.current(), "print(m.f(), m.f.__code__.co_firstlineno)") \
        == "42 3"


def test_export_is_consistent_while_another_thread_asks_for_versions(kernel):
    import threading
    stop = threading.Event()
    errors = []

    def ask():
        while not stop.is_set():
            try:
                path = kernel.rec.current()
                compile(open(path).read(), path, "exec")
            except FileNotFoundError:
                pass  # pruned between current() and open(): allowed
            except Exception as exc:  # pragma: no cover - the failure
                errors.append(exc)
                return

    thread = threading.Thread(target=ask)
    thread.start()
    try:
        for i in range(200):
            cell(kernel, "def f%d():\n    return %d\nV = %d\n" % (i % 7, i, i))
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert exported(kernel)[-2:] == ["f%d" % (199 % 7), "V"]
    out = run_module(kernel.rec.current(), "print(m.V, m.f%d())" % (199 % 7))
    assert out == "199 199"


# -- child runtime: stand-ins never break unpickling ------------------------

def _pickle_with(module, name, payload, monkeypatch):
    """Pickle `payload` (which references module.name) and unpickle it with
    module.name replaced by a stand-in, as a child whose definition failed."""
    import pickle
    from ferry import _rx_rt
    import multiprocessing
    data = pickle.dumps(payload)
    standin = _rx_rt.standin_class(name, "ferry could not re-create %r (test)" % name)
    monkeypatch.setattr(module, name, standin)
    # Unpickle as a pool worker does: inside multiprocessing's own code.
    reader, writer = multiprocessing.Pipe(duplex=False)
    try:
        writer.send_bytes(data)
        return reader.recv()
    finally:
        reader.close()
        writer.close()


class Cls:
    def method(self):
        return 1


import enum  # noqa: E402


class Colour(enum.Enum):
    RED = 1


def test_stand_in_class_unpickles_instances_that_raise_when_used(monkeypatch):
    import pickle
    from ferry._rx_rt import ReexportError
    obj = _pickle_with(sys.modules[__name__], "Cls", Cls(), monkeypatch)
    assert type(obj).__name__ == "Cls"
    with pytest.raises(ReexportError, match="could not re-create 'Cls'"):
        obj.method()
    with pytest.raises(ReexportError):
        pickle.dumps(obj)  # never travels back as a silent husk
    with pytest.raises(ReexportError):
        type(obj)()  # a direct call raises at once


def test_stand_in_class_rebuilt_by_call_during_unpickling(monkeypatch):
    from ferry._rx_rt import ReexportError
    obj = _pickle_with(sys.modules[__name__], "Colour", Colour.RED, monkeypatch)
    with pytest.raises(ReexportError):
        obj.value


def test_stand_ins_round_trip_through_pickle():
    import pickle
    from ferry import _rx_rt
    fn = pickle.loads(pickle.dumps(_rx_rt.StandIn("f", "msg f")))
    cls = pickle.loads(pickle.dumps(_rx_rt.standin_class("C", "msg C")))
    with pytest.raises(_rx_rt.ReexportError, match="msg f"):
        fn()
    with pytest.raises(_rx_rt.ReexportError, match="msg f"):
        fn.cache_clear
    with pytest.raises(_rx_rt.ReexportError, match="msg C"):
        cls()


def test_lookup_of_a_missing_version_is_a_stand_in(tmp_path):
    from ferry import _rx_rt
    path = str(tmp_path / "ferry_main_999999.py")
    for obj in (_rx_rt.lookup(path, "f"),
                _rx_rt.make_function(path, b"", "<lambda>", "<lambda>", None, None, None)):
        with pytest.raises(_rx_rt.ReexportError, match="ferry_main_999999"):
            obj(1)
    sys.modules.pop("ferry_main_999999", None)


def test_a_reused_cell_filename_keeps_each_cells_statements(kernel):
    # The runner may reuse a filename (silent executions, say).
    for source in ("def f():\n    return 'first'\n", "\n\ndef g():\n    return 'second'\n"):
        tree = ast.parse(source)
        exec(compile(source, "<silent>", "exec"), kernel.ns)
        kernel.rec.record(tree.body[0], source, "<silent>")
    assert run_module(kernel.rec.current(), "print(m.f(), m.g())") == "first second"


def test_module_imports_even_where_ferry_is_missing(kernel):
    cell(kernel, "def f():\n    pass\n")
    proc = subprocess.run(
        [PYTHON, "-I", "-c", "import runpy; runpy.run_path(%r); print('ok')"
         % kernel.rec.current()], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout == "ok\n"
    assert "importing ferry._rx_rt failed" in proc.stderr


def test_children_unblock_sigterm_and_pool_workers_ignore_sigint():
    program = textwrap.dedent("""
        import os, signal, sys
        sys.path.insert(0, %r)
        import multiprocessing.pool, multiprocessing.process as process
        from ferry import _rx_rt
        signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGTERM,))  # as the kernel
        _rx_rt.setup_child()
        _rx_rt.setup_child()  # idempotent: one wrapper, not two
        print('SIGTERM blocked:', signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, ()))
        me = process.current_process()
        me._target = multiprocessing.pool.worker
        os.kill(os.getpid(), signal.SIGINT)
        print('pool worker survived')
        me._target = print
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            print('other child interrupted')
        """ % KERNEL_PYTHON)
    proc = subprocess.run([PYTHON, "-c", program], capture_output=True, text=True,
                          timeout=30)
    assert proc.stdout.splitlines() == ["SIGTERM blocked: False", "pool worker survived",
                                        "other child interrupted"], proc.stderr
