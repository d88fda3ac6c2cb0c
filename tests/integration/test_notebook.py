"""A real frontend: notebooks/core.ipynb executed headless by nbconvert.

`jupyter nbconvert --to notebook --execute` finds the kernel by name, so a
temporary kernelspec "ferry" (argv from FERRY_TEST_KERNEL) is put on
JUPYTER_PATH.  Connection files go to a private JUPYTER_RUNTIME_DIR, which
also lets the test find any kernel process left behind.
"""

from pathlib import Path

import pytest

import harness

NOTEBOOK = Path(__file__).parent / "notebooks" / "core.ipynb"


def texts(cell, output_type, name=None):
    return "".join(
        "".join(o["text"]) if isinstance(o["text"], list) else o["text"]
        for o in cell["outputs"]
        if o["output_type"] == output_type and (name is None or o.get("name") == name))


def bundles(cell, output_type):
    return [o["data"] for o in cell["outputs"] if o["output_type"] == output_type]


def joined(v):
    return "".join(v) if isinstance(v, list) else v


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    problem = harness.check_kernel_program()
    if problem:
        pytest.fail(problem, pytrace=False)
    return harness.execute_notebook(NOTEBOOK, tmp_path_factory.mktemp("nb"))


def test_notebook_runs_every_cell_in_order(executed):
    cells, _ = executed
    counts = [c["execution_count"] for c in cells.values() if c["cell_type"] == "code"]
    assert counts == list(range(counts[0], counts[0] + len(counts))), counts


def test_notebook_streams(executed):
    cells, _ = executed
    assert texts(cells["stdout"], "stream", "stdout") == "hello from the notebook\n"
    assert texts(cells["stderr"], "stream", "stderr") == "to stderr\n"


def test_notebook_execute_result(executed):
    cells, _ = executed
    (data,) = bundles(cells["result"], "execute_result")
    assert joined(data["text/plain"]) == "42"


def test_notebook_html_repr(executed):
    cells, _ = executed
    (data,) = bundles(cells["html"], "execute_result")
    assert joined(data["text/html"]) == "<b>bold</b>"
    (shown,) = bundles(cells["display"], "display_data")
    assert joined(shown["text/html"]) == "<b>bold</b>"
    assert texts(cells["display"], "stream", "stdout") == "after display\n"


def test_notebook_error_cell_allowed_by_tag(executed):
    cells, _ = executed
    (err,) = [o for o in cells["error"]["outputs"] if o["output_type"] == "error"]
    assert err["ename"] == "ValueError" and err["evalue"] == "expected failure"
    assert texts(cells["after-error"], "stream", "stdout") == "0\n1\n2\n"
    (data,) = bundles(cells["after-error"], "execute_result")
    assert joined(data["text/plain"]) == "43"


def test_notebook_leaves_no_kernel_behind(executed):
    _, leftovers = executed
    assert leftovers == []
