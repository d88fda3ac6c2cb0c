"""A real frontend: notebooks/reexport.ipynb executed headless by nbconvert.

The notebook is the tutorial failure cases - the `multiprocessing` and
`concurrent.futures` documentation examples, lambdas, dataclasses and enums
in a pool, pools made before a definition - under the spawn start method,
where a plain kernel's children cannot find what the cells defined.  Nothing
in it is ferry-specific.  Set-up as in test_notebook.py: a temporary
kernelspec "ferry" on JUPYTER_PATH, a private JUPYTER_RUNTIME_DIR.
"""

import re
from pathlib import Path

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
    cells, leftovers = harness.execute_notebook(NOTEBOOK,
                                                tmp_path_factory.mktemp("nb-reexport"))
    assert not leftovers, f"processes left behind: {leftovers}"
    return cells


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
