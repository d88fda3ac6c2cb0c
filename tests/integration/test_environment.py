"""What a cell sees: __main__, argv, sys.path, cwd, sys.executable."""

import pytest


def test_cell_runs_as_main(kernel):
    assert kernel.execute("__name__").ok().text == "'__main__'"
    x = kernel.execute("import sys\nsys.modules['__main__'].__dict__ is globals()").ok()
    assert x.text == "True"


@pytest.mark.ferry_only("ipykernel leaves the launcher's argv in sys.argv")
def test_sys_argv_is_empty_string_list(kernel):
    assert kernel.execute("import sys\nsys.argv").ok().text == "['']"


def test_cwd_is_kernel_launch_directory(kernel):
    x = kernel.execute("import os\nos.getcwd()").ok()
    assert x.text == repr(str(kernel.cwd))


def test_cwd_first_on_sys_path_imports_module_beside_it(kernel):
    (kernel.cwd / "ferry_probe_mod.py").write_text("VALUE = 42\n")
    x = kernel.execute("import sys, os\nsys.path[0] in ('', os.getcwd())").ok()
    assert x.text == "True"
    assert kernel.execute("import ferry_probe_mod\nferry_probe_mod.VALUE").ok().text == "42"


def test_sys_executable_is_matching_python(kernel):
    code = ("import subprocess, sys\n"
            "out = subprocess.run([sys.executable, '-c',\n"
            "                      'import sys; print(sys.version, sys.prefix)'],\n"
            "                     capture_output=True, text=True, timeout=20).stdout\n"
            "out.strip() == f'{sys.version} {sys.prefix}'")
    assert kernel.execute(code).ok().text == "True"
