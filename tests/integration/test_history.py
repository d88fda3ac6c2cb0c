"""history_request: tail, range, search, output pairs, sessions kept in SQLite.

Each kernel of the harness gets its own history file (FERRY_HISTORY_FILE);
tests that need a shared one pass history_file= to kernel_factory.
"""

import sqlite3

import pytest

# ipykernel does not log outputs, answers range from its own session only, and
# knows nothing of FERRY_HISTORY_FILE.
FERRY_ONLY = pytest.mark.ferry_only("ferry's history database")



def history(k, **content):
    x = k.request("history_request", {"output": False, "raw": True, **content}).ok()
    return x.content["history"]


def run(k, *cells):
    for cell in cells:
        k.execute(cell).ok()


def test_tail_returns_the_last_inputs_in_order(fresh_kernel):
    k = fresh_kernel
    run(k, "a = 1", "b = 2", "a + b")
    h = history(k, hist_access_type="tail", n=2)
    assert [entry[2] for entry in h] == ["b = 2", "a + b"]
    assert [entry[1] for entry in h] == [2, 3]
    assert h[0][0] == h[1][0]  # one session


@FERRY_ONLY
def test_tail_with_output_pairs_input_and_result(fresh_kernel):
    k = fresh_kernel
    run(k, "x = 5", "x * 2")
    h = history(k, hist_access_type="tail", n=2, output=True)
    assert [entry[2] for entry in h] == [["x = 5", None], ["x * 2", "10"]]


@FERRY_ONLY
def test_range_returns_the_session_asked_for(fresh_kernel):
    k = fresh_kernel
    run(k, "'one'", "'two'", "'three'")
    session = history(k, hist_access_type="tail", n=1)[0][0]
    h = history(k, hist_access_type="range", session=session, start=2, stop=3)
    assert h == [[session, 2, "'two'"]]
    # session 0 means this session
    assert history(k, hist_access_type="range", session=0, start=1, stop=2) == \
        [[session, 1, "'one'"]]


def test_search_glob_unique_and_n(fresh_kernel):
    k = fresh_kernel
    run(k, "1+2", "1+2", "3+4", "1+2")
    assert len(history(k, hist_access_type="search", pattern="1+*")) == 3
    unique = history(k, hist_access_type="search", pattern="1+*", unique=True)
    assert [entry[1:] for entry in unique] == [[4, "1+2"]]  # the latest occurrence
    assert [entry[1] for entry in history(k, hist_access_type="search", pattern="*", n=2)] \
        == [3, 4]
    # GLOB is case-sensitive, as in IPython
    assert history(k, hist_access_type="search", pattern="X*") == []


def test_silent_and_unstored_cells_are_not_in_history(fresh_kernel):
    k = fresh_kernel
    k.execute("'kept'").ok()
    k.execute("'silent'", silent=True).ok()
    k.execute("'unstored'", store_history=False).ok()
    assert [e[2] for e in history(k, hist_access_type="tail", n=10)] == ["'kept'"]


def test_magic_cells_are_stored_as_typed(fresh_kernel):
    k = fresh_kernel
    run(k, "%pwd")
    assert history(k, hist_access_type="tail", n=1)[0][2] == "%pwd"


@FERRY_ONLY
def test_history_survives_a_restart_as_a_new_session(kernel_factory, tmp_path):
    db = tmp_path / "history.sqlite"
    first = kernel_factory(history_file=db)
    run(first, "before = 'restart'")
    old_session = history(first, hist_access_type="tail", n=1)[0][0]
    first.stop()

    second = kernel_factory(history_file=db)
    run(second, "after = 1")
    h = history(second, hist_access_type="tail", n=2)
    assert [e[2] for e in h] == ["before = 'restart'", "after = 1"]
    assert h[1][0] == old_session + 1 and h[1][1] == 1
    # the previous session, by number and counted back from this one
    assert history(second, hist_access_type="range", session=old_session, start=1) == \
        [[old_session, 1, "before = 'restart'"]]
    assert history(second, hist_access_type="range", session=-1, start=1) == \
        [[old_session, 1, "before = 'restart'"]]


@FERRY_ONLY
def test_two_kernels_share_one_history_file(kernel_factory, tmp_path):
    db = tmp_path / "history.sqlite"
    a = kernel_factory(history_file=db)
    b = kernel_factory(history_file=db)
    for i in range(5):
        a.execute(f"'a{i}'").ok()
        b.execute(f"'b{i}'").ok()
    mine_a = history(a, hist_access_type="range", session=0, start=1)
    mine_b = history(b, hist_access_type="range", session=0, start=1)
    assert [e[2] for e in mine_a] == [f"'a{i}'" for i in range(5)]
    assert [e[2] for e in mine_b] == [f"'b{i}'" for i in range(5)]
    assert mine_a[0][0] != mine_b[0][0]
    # tail and search run over every session, as IPython's do
    assert len(history(a, hist_access_type="tail", n=10)) == 10
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM history").fetchone()[0] == 10


@FERRY_ONLY
def test_unknown_access_type_is_an_error_reply(kernel):
    x = kernel.request("history_request", {"hist_access_type": "sideways", "output": False,
                                           "raw": True})
    assert x.content["status"] == "error"


def test_history_survives_a_kernel_manager_restart(fresh_kernel):
    k = fresh_kernel
    run(k, "'before restart'")
    old = history(k, hist_access_type="tail", n=1)[0]
    k.km.restart_kernel(now=False)  # what a frontend's "Restart kernel" does
    k.pid = k.km.provisioner.process.pid
    k.kc.wait_for_ready(timeout=30)
    run(k, "'after restart'")
    h = history(k, hist_access_type="tail", n=2)
    assert h == [old, [old[0] + 1, 1, "'after restart'"]]
