"""Installing ferry: `ferry-kernel install`, `make install`, and the kernel
they install running a cell from its kernelspec, as a frontend would."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import harness

pytestmark = pytest.mark.skipif(harness.is_ipykernel(), reason="ferry's installer")

KERNEL = Path(harness.kernel_argv()[0])
PYTHON = "/usr/bin/python3"


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)


def execute_with_kernelspec(data_dir, code, name="ferry"):
    """Runs code through jupyter_client's KernelManager on the kernelspec
    named name under data_dir; returns the stdout text of the cell."""
    script = f"""
import os
os.environ["JUPYTER_PATH"] = {str(data_dir)!r}
from jupyter_client.manager import start_new_kernel
km, kc = start_new_kernel(kernel_name={name!r}, startup_timeout=30)
try:
    out = []
    kc.execute_interactive({code!r}, timeout=30,
                           output_hook=lambda m: out.append(m["content"].get("text", "")))
    print("".join(out), end="")
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
"""
    r = run([PYTHON, "-c", script])
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_version_and_help():
    r = run([str(KERNEL), "--version"])
    assert r.returncode == 0 and r.stdout.startswith("ferry-kernel ")
    r = run([str(KERNEL), "--help"])
    assert r.returncode == 0 and "-f CONNECTION_FILE" in r.stdout and "install" in r.stdout


def test_bad_arguments_are_refused_clearly():
    r = run([str(KERNEL), "--log-level", "loud", "-f", "x.json"])
    assert r.returncode == 2 and "unknown log level 'loud'" in r.stderr
    r = run([str(KERNEL), "-f", "/nonexistent/connection.json"])
    assert r.returncode == 1 and "cannot open connection file" in r.stderr


def test_install_writes_a_kernelspec_that_starts_this_kernel(tmp_path):
    r = run([str(KERNEL), "install", "--prefix", str(tmp_path), "--name", "ferry-t",
             "--display-name", "Ferry Test"])
    assert r.returncode == 0, r.stderr
    spec_dir = tmp_path / "share/jupyter/kernels/ferry-t"
    spec = json.loads((spec_dir / "kernel.json").read_text())
    assert spec["argv"] == [str(KERNEL.resolve()), "-f", "{connection_file}"]
    assert spec["display_name"] == "Ferry Test"
    assert spec["language"] == "python" and spec["interrupt_mode"] == "signal"
    assert (spec_dir / "logo-64x64.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = execute_with_kernelspec(tmp_path / "share/jupyter", "print(6 * 7)", "ferry-t")
    assert out == "42\n"


def test_install_user_honours_xdg_data_home(tmp_path):
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path))
    r = run([str(KERNEL), "install", "--user"], env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "jupyter/kernels/ferry/kernel.json").exists()


def test_make_install_gives_a_working_kernel_outside_the_tree(tmp_path):
    prefix = tmp_path / "prefix"
    r = run(["make", "-s", "-C", str(harness.REPO_ROOT), "install", f"PREFIX={prefix}",
             f"B={KERNEL.parent}"])
    assert r.returncode == 0, r.stdout + r.stderr
    spec = json.loads((prefix / "share/jupyter/kernels/ferry/kernel.json").read_text())
    assert spec["argv"][0] == str(prefix / "bin/ferry-kernel")
    assert (prefix / "lib/ferry/ferry/__init__.py").exists()
    # Compiled at install time, as Debian's packages are: the kernel and its
    # workers do not compile the sources at every start.
    assert list((prefix / "lib/ferry/ferry/__pycache__").glob("_kernel.*.pyc"))
    # The installed kernel finds its Python part under PREFIX/lib/ferry by
    # itself, and cells see that package, not the build tree's.
    out = execute_with_kernelspec(prefix / "share/jupyter",
                                  "import ferry, os; print(os.path.dirname(ferry.__file__))")
    assert out.strip() == str(prefix / "lib/ferry/ferry")
    # Its workers start their group watcher from there too.
    out = execute_with_kernelspec(prefix / "share/jupyter", WATCHER_OF_A_WORKER)
    assert out.strip() == str(prefix / "lib/ferry/ferry-groupwatch")


# Prints the program a pool worker's child (its group watcher) runs.
WATCHER_OF_A_WORKER = """\
import ferry, os
def watcher_exe():
    me = str(os.getpid())
    for p in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{p}/stat') as f:
                if f.read().rsplit(')', 1)[1].split()[1] == me:
                    return os.readlink(f'/proc/{p}/exe')
        except OSError:
            pass
print(ferry.submit(watcher_exe).result(timeout=60))
"""


def test_make_run_answers_piped_cells_and_exits(tmp_path):
    # make run installs the kernelspec for the user: keep that in tmp_path.
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"), HOME=str(tmp_path))
    r = subprocess.run(["make", "-s", "-C", str(harness.REPO_ROOT), "run",
                        f"B={KERNEL.parent}"], input="x = 6 * 7\nprint(x)\nx + 1\n",
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-2:] == ["42", "43"]
    assert (tmp_path / "data/jupyter/kernels/ferry/kernel.json").exists()
