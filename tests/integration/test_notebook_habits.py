"""notebooks/habits.ipynb — magics, shell escapes, help, IPython.display and
inline figures — executed headless by nbconvert, a real frontend."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import harness
from test_notebook import bundles, joined, texts

NOTEBOOK = Path(__file__).parent / "notebooks" / "habits.ipynb"


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    problem = harness.check_kernel_program()
    if problem:
        pytest.fail(problem, pytrace=False)
    tmp = tmp_path_factory.mktemp("nb")
    harness.make_kernelspec_dir(tmp / "jupyter", "ferry")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(JUPYTER_PATH=str(tmp / "jupyter"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               IPYTHONDIR=str(tmp / "ipython"), FERRY_HISTORY_FILE=str(tmp / "history.sqlite"))
    cmd = [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute",
           "--ExecutePreprocessor.kernel_name=ferry", "--ExecutePreprocessor.timeout=60",
           "--output-dir", str(tmp / "out"), str(NOTEBOOK)]
    proc = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"nbconvert failed:\n{proc.stderr[-4000:]}"
    nb = json.loads((tmp / "out" / NOTEBOOK.name).read_text())
    return {c["id"]: c for c in nb["cells"]}


def test_time_magic_prints_and_keeps_the_result(cells):
    assert "Wall time:" in texts(cells["time"], "stream", "stdout")
    (data,) = bundles(cells["time"], "execute_result")
    assert joined(data["text/plain"]) == "499500"


def test_shell_escapes(cells):
    assert "from the shell" in texts(cells["shell"], "stream", "stdout")
    (data,) = bundles(cells["shell"], "execute_result")
    assert joined(data["text/plain"]) == "['x', 'y']"


def test_cell_magic_body_result(cells):
    (data,) = bundles(cells["cell-magic"], "execute_result")
    assert joined(data["text/plain"]) == "42"


def test_help_cell_runs_cleanly(cells):
    # nbconvert drops the page payload; the cell must simply not fail
    assert not [o for o in cells["help"]["outputs"] if o["output_type"] == "error"]


def test_ipython_display_objects(cells):
    (shown,) = bundles(cells["ipython-display"], "display_data")
    assert joined(shown["text/html"]) == "<i>from IPython</i>"
    (result,) = bundles(cells["ipython-display"], "execute_result")
    assert joined(result["text/markdown"]) == "**md**"


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                    reason="matplotlib is not installed")
def test_matplotlib_figure_inline(cells):
    (fig,) = bundles(cells["matplotlib"], "display_data")
    assert "image/png" in fig


def test_get_ipython_in_a_notebook(cells):
    (data,) = bundles(cells["get-ipython"], "execute_result")
    assert joined(data["text/plain"]) == "'1'"
