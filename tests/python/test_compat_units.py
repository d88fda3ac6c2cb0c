"""The pure-Python parts of ferry's IPython habits, without a kernel: the
cell rewrite (ferry._transform.transform), is_complete, and the history
database (ferry._history)."""

import ast
import sqlite3
import threading

import pytest

from ferry import _history, _transform


# -- transform ----------------------------------------------------------------

@pytest.mark.parametrize("cell, expected", [
    ("%time f(x)", "get_ipython().run_line_magic('time', 'f(x)')"),
    ("%pwd", "get_ipython().run_line_magic('pwd', '')"),
    ("!ls -l", "get_ipython().system('ls -l')"),
    ("!!ls", "get_ipython().getoutput('ls')"),
    ("files = !ls *.py", "files = get_ipython().getoutput('ls *.py')"),
    ("here = %pwd", "here = get_ipython().run_line_magic('pwd', '')"),
    ("zip?", "get_ipython().run_line_magic('pinfo', 'zip')"),
    ("?zip", "get_ipython().run_line_magic('pinfo', 'zip')"),
    ("os.path.join??", "get_ipython().run_line_magic('pinfo2', 'os.path.join')"),
    ("for i in x:\n    !echo {i}", "for i in x:\n    get_ipython().system('echo {i}')"),
])
def test_transform_rewrites_ipython_syntax(cell, expected):
    assert _transform.transform(cell) == expected


@pytest.mark.parametrize("cell", [
    "x = 10 % 3",
    "y = (1\n% 2)",
    "s = '''\n%notamagic\n!notashell\nwhat?\n'''",
    "print('what?')  # really?",
    "a != b",
    "d = {'a': 1}",
])
def test_transform_leaves_valid_python_alone(cell):
    assert _transform.transform(cell) == cell


def test_transform_keeps_line_numbers():
    cell = "a = 1\n%time b = 2\n!echo hi\nc = 3\nzip?\n"
    out = _transform.transform(cell)
    assert out.count("\n") == cell.count("\n")
    tree = ast.parse(out)
    assert [n.lineno for n in tree.body] == [1, 2, 3, 4, 5]


def test_transform_does_not_touch_strings_in_a_broken_cell():
    # The cell has a magic, so it is rewritten; the string's lines are not.
    cell = "%pwd\ns = '''\n%inside\n'''"
    assert _transform.transform(cell) == \
        "get_ipython().run_line_magic('pwd', '')\ns = '''\n%inside\n'''"


def test_transform_shell_line_with_brackets_does_not_hide_the_next_line():
    cell = "!echo (\n%pwd"
    assert _transform.transform(cell) == \
        "get_ipython().system('echo (')\nget_ipython().run_line_magic('pwd', '')"


def test_cell_magic_keeps_body_line_numbers():
    out = _transform.transform("\n%%time -q\nx = 1\ny = 2")
    call = ast.parse(out).body[0].value
    name, line, body = (ast.literal_eval(a) for a in call.args)
    assert (name, line) == ("time", "-q")
    assert body.splitlines()[2:] == ["x = 1", "y = 2"]  # lines 3 and 4, as typed


def test_cell_magic_not_first_is_a_usage_error_at_run_time():
    out = _transform.transform("x = 1\n%%time\ny = 2")
    assert "run_line_magic('%%' + 'time'" in out


# -- is_complete ----------------------------------------------------------------

@pytest.mark.parametrize("code, status", [
    ("%time 1", "complete"),
    ("!ls", "complete"),
    ("zip?", "complete"),
    ("%%time", "incomplete"),
    ("%%time\nx = 1", "incomplete"),
    ("%%time\nx = 1\n\n", "complete"),
    ("for i in x:\n    !echo {i}", "incomplete"),
    ("def f(x):\n  x*2", "incomplete"),
    ("def f(x):\n  x*2\n\n", "complete"),
    ("x = )", "invalid"),
])
def test_is_complete(code, status):
    assert _transform.is_complete(code)["status"] == status


# -- history ----------------------------------------------------------------------

@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "h.sqlite")


def test_history_numbers_sessions_and_answers_requests(db):
    h = _history.History(db)
    for i, src in enumerate(["a = 1", "a", "b = a + 1"], start=1):
        h.store(i, src, "1" if src == "a" else None)
    assert h.request({"hist_access_type": "tail", "n": 2}) == \
        {"status": "ok", "history": [[h.session, 2, "a"], [h.session, 3, "b = a + 1"]]}
    assert h.request({"hist_access_type": "tail", "n": 1, "output": True})["history"] == \
        [[h.session, 3, ["b = a + 1", None]]]
    assert h.request({"hist_access_type": "range", "session": 0, "start": 2,
                      "stop": 3, "output": True})["history"] == [[h.session, 2, ["a", "1"]]]
    assert [e[2] for e in h.request({"hist_access_type": "search",
                                     "pattern": "a*"})["history"]] == ["a = 1", "a"]
    h2 = _history.History(db)
    assert h2.session == h.session + 1
    assert h2.request({"hist_access_type": "range", "session": -1, "start": 1})["history"] \
        == h.request({"hist_access_type": "range", "session": 0, "start": 1})["history"]


def test_history_falls_back_to_memory_when_the_file_is_unusable(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    h = _history.History(str(blocker / "sub" / "h.sqlite"))
    h.store(1, "x")
    assert h.path == ":memory:" and h.request({"hist_access_type": "tail"})["history"] \
        == [[h.session, 1, "x"]]


def test_history_writers_in_parallel_lose_nothing(db):
    errors = []

    def write(k):
        try:
            h = _history.History(db)
            for i in range(1, 51):
                h.store(i, f"cell {k}.{i}")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM history").fetchone()[0] == 200
        assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 4


def test_history_kernels_opening_one_new_file_together_all_keep_it(tmp_path):
    # Kernels started together (a notebook server restoring its sessions)
    # open one new file at once: each must keep its history there, never
    # fall back to memory because another was switching the file to WAL.
    # The window is narrow, so many rounds, each on a new file.
    fallbacks, lost = [], 0
    for rnd in range(100):
        db = str(tmp_path / f"h{rnd}.sqlite")
        start = threading.Barrier(8)
        kept = []

        def open_and_store():
            h = _history.History(db)
            start.wait(30)
            h.store(1, "x = 1")
            kept.append(h.path)

        threads = [threading.Thread(target=open_and_store) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(kept) == 8
        fallbacks += [(rnd, p) for p in kept if p != db]
        with sqlite3.connect(db) as conn:
            lost += 8 - conn.execute("SELECT count(*) FROM history").fetchone()[0]
    assert (fallbacks, lost) == ([], 0)


IPYTHON_CASES = [
    "class A:\n  pass\n", "def f(x):\n  x*2", "if x:\n    y = [1,", "a = 1\\", "@dec",
    "x = )", "print('''hello", "%time", "%%time", "%%time\nx=1\n", "%%time\nx=1\n\n", "!ls",
    "zip?", "for i in range(3):\n    print(i)\n", "", "  ", "x = 1\n    y = 2", "return 5",
    "def f():\n  return 1\n \n", "if True:\n    pass\nelse:", "1 +* 2", "x = [1,\n2]",
    "try:\n  pass\n", "async def f():\n    await g()", "with open(p) as f:\n    f.read()\n\n",
    # jupyter console sends the auto-indent of an empty continuation line
    "def f(x):\n    return x*2\n    ", "def f(x):\n    ", "for i in x:\n    a\n    b\n  ",
]


@pytest.mark.parametrize("code", IPYTHON_CASES)
def test_is_complete_agrees_with_ipython(code):
    inputtransformer2 = pytest.importorskip("IPython.core.inputtransformer2")
    status, indent = inputtransformer2.TransformerManager().check_complete(code)
    ours = _transform.is_complete(code)
    assert ours["status"] == status
    if indent is not None:
        assert ours["indent"] == " " * indent


@pytest.mark.parametrize("cell", [
    "%time f(x)", "%pwd", "!ls -l", "!!ls", "files = !ls *.py", "here = %pwd", "zip?", "?zip",
    "os.path.join??", "for i in x:\n    !echo {i}", "a = 1\n%time b = 2\n!echo hi\nc = 3\nzip?\n",
    "x = 10 % 3",
])
def test_transform_agrees_with_ipython(cell):
    # Cell magics differ on purpose: ferry keeps the body's line numbers.
    inputtransformer2 = pytest.importorskip("IPython.core.inputtransformer2")
    expected = inputtransformer2.TransformerManager().transform_cell(cell)
    assert _transform.transform(cell).rstrip("\n") == expected.rstrip("\n")
