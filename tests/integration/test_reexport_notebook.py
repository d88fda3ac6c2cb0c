"""A real frontend: notebooks/reexport.ipynb executed headless by nbconvert.

The notebook is the tutorial failure cases - the `multiprocessing` and
`concurrent.futures` documentation examples, lambdas, dataclasses and enums
in a pool, pools made before a definition - under the spawn start method,
where a plain kernel's children cannot find what the cells defined.  Nothing
in it is ferry-specific.  Set-up as in test_notebook.py: a temporary
kernelspec "ferry" on JUPYTER_PATH, a private JUPYTER_RUNTIME_DIR.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

import harness

pytestmark = pytest.mark.skipif(harness.is_ipykernel(),
                                reason="ipykernel does not re-export cell definitions")

NOTEBOOK = Path(__file__).parent / "notebooks" / "reexport.ipynb"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def joined(v):
    return "".join(v) if isinstance(v, list) else v


def stdout(cell):
    return "".join(joined(o["text"]) for o in cell["outputs"]
                   if o["output_type"] == "stream" and o["name"] == "stdout")


def result(cell):
    (data,) = [o["data"] for o in cell["outputs"] if o["output_type"] == "execute_result"]
    return joined(data["text/plain"])


def error(cell):
    (err,) = [o for o in cell["outputs"] if o["output_type"] == "error"]
    return err["ename"], err["evalue"], _ANSI.sub("", "\n".join(err["traceback"]))


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    problem = harness.check_kernel_program()
    if problem:
        pytest.fail(problem, pytrace=False)
    tmp = tmp_path_factory.mktemp("nb-reexport")
    harness.make_kernelspec_dir(tmp / "jupyter", "ferry")
    runtime = tmp / "runtime"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(JUPYTER_PATH=str(tmp / "jupyter"), JUPYTER_RUNTIME_DIR=str(runtime),
               IPYTHONDIR=str(tmp / "ipython"))
    cmd = [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute",
           "--ExecutePreprocessor.kernel_name=ferry", "--ExecutePreprocessor.timeout=60",
           "--output-dir", str(tmp / "out"), str(NOTEBOOK)]
    proc = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=120)
    found = [p for p in psutil.process_iter(["cmdline"])
             if str(runtime) in " ".join(p.info["cmdline"] or [])]
    _, alive = psutil.wait_procs(found, timeout=3)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    assert proc.returncode == 0, f"nbconvert failed:\n{proc.stderr[-4000:]}"
    assert not alive, f"processes left behind: {[p.pid for p in alive]}"
    nb = json.loads((tmp / "out" / NOTEBOOK.name).read_text())
    return {c["id"]: c for c in nb["cells"]}


def test_every_cell_ran(cells):
    code = [c for c in cells.values() if c["cell_type"] == "code"]
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), counts
    assert result(cells["spawn"]) == "'spawn'"


def test_documentation_examples_work_unchanged_under_spawn(cells):
    assert stdout(cells["docs-pool"]) == "[1, 4, 9]\n"
    assert stdout(cells["docs-process-queue"]) == "[42, None, 'hello']\n"
    assert stdout(cells["docs-executor"]) == (
        "1000003 is prime: True\n1000033 is prime: True\n1000037 is prime: True\n"
        "1000039 is prime: True\n1000001 is prime: False\n")


def test_lambdas_dataclasses_and_enums_come_back_as_notebook_classes(cells):
    c = cells["kinds"]
    assert stdout(c) == ("[Card(rank=6, suit=<Suit.HEARTS: 'h'>), "
                         "Card(rank=10, suit=<Suit.SPADES: 's'>)]\n")
    assert result(c) == "True"


def test_pools_run_the_current_definition(cells):
    assert stdout(cells["late-def"]) == "hello early pool\n"
    assert stdout(cells["redef"]) == "goodbye early pool\n['goodbye forkserver']\n"


def test_worker_output_reaches_the_notebook(cells):
    c = cells["child-output"]
    assert sorted(stdout(c).splitlines()) == ["BOAT", "FERRY"]
    assert result(c) == "[5, 4]"


def test_failures_are_clear_errors_not_hangs(cells):
    ename, evalue, _ = error(cells["unexported"])
    assert ename == "PicklingError"
    assert "Dynamic" in evalue and "Dynamic = type('Dynamic', (), {})" in evalue
    ename, evalue, tb = error(cells["child-traceback"])
    assert (ename, evalue) == ("ValueError", "bad input 7")
    assert "in boom" in tb and "raise ValueError(f'bad input {x}')" in tb
    assert stdout(cells["still-works"]) == "[True, False]\n"
