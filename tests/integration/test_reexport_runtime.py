"""The runtime directory as the re-export uses it: where the module versions
live, how old ones are pruned while the kernel runs, and how directories left
by killed kernels are cleaned at the next start (FERRY_RUNTIME_ROOT moves
them out of /tmp)."""

import os
import stat
import subprocess

import pytest

import harness

pytestmark = pytest.mark.skipif(harness.is_ipykernel(), reason="ferry's runtime directory")

MAX_RUNTIME_DIR_LEN = 80  # leaves room for ipc endpoint names in sun_path's 107 bytes


def value(kernel, code):
    return eval(kernel.execute(code, timeout=30).ok().text)


def versions(directory):
    return sorted(n for n in os.listdir(directory)
                  if n.startswith("ferry_main_") and n.endswith(".py"))


def test_versions_live_in_the_private_runtime_directory(kernel):
    d = value(kernel, "import ferry\nferry.runtime_dir")
    assert len(d) <= MAX_RUNTIME_DIR_LEN, d
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    got = value(kernel, "import multiprocessing as mp\n"
                        "def in_runtime_dir(_):\n"
                        "    import sys\n"
                        "    return sys.modules['__mp_main__'].__file__\n"
                        "with mp.get_context('spawn').Pool(1) as pool:\n"
                        "    main_file = pool.map(in_runtime_dir, [0])[0]\n"
                        "main_file")
    assert os.path.dirname(got) == d
    assert os.path.basename(got) in versions(d)
    for name in versions(d):
        st = os.stat(os.path.join(d, name))
        assert stat.S_IMODE(st.st_mode) == 0o600, (name, oct(st.st_mode))
    assert not any(n.endswith(".tmp") for n in os.listdir(d)), os.listdir(d)


def test_old_versions_are_pruned_while_the_kernel_runs(kernel):
    d = value(kernel, "import ferry\nferry.runtime_dir")
    # Versions younger than KEEP_SECONDS are kept whatever their number (a
    # starting child may still read one); make every version old at once.
    keep = value(kernel, "from ferry import _reexport\n"
                         "_reexport.KEEP_SECONDS = 0\n"
                         "_reexport.KEEP_VERSIONS")
    for i in range(keep + 6):
        kernel.execute(f"def numbered(x):\n    return x + {i}\n"
                       "from multiprocessing.reduction import ForkingPickler\n"
                       "_ = ForkingPickler.dumps(numbered)").ok()
    left = versions(d)
    assert 1 <= len(left) <= keep, left
    # The newest is among them, and pools still get the current definition.
    got = value(kernel, "import multiprocessing as mp\n"
                        "with mp.get_context('spawn').Pool(1) as pool:\n"
                        "    out = pool.map(numbered, [100])\n"
                        "out")
    assert got == [100 + keep + 5]


def dead_pid():
    p = subprocess.Popen(["true"])
    p.wait(timeout=10)
    return p.pid


def test_directories_of_killed_kernels_are_removed_at_start(kernel_factory, tmp_path,
                                                            monkeypatch):
    root = tmp_path / "rt"
    root.mkdir()
    uid = os.getuid()
    stale = root / f"ferry-{uid}-{dead_pid()}-AbC123"
    (stale / "sub").mkdir(parents=True)
    (stale / "ferry_main_3.py").write_text("# left by a killed kernel\n")
    (stale / "sub" / "w.ipc").write_text("")
    alive = root / f"ferry-{uid}-{os.getpid()}-XyZ789"  # this test's own pid: alive
    alive.mkdir()
    unrelated = root / "ferry-notes"
    unrelated.mkdir()
    monkeypatch.setenv("FERRY_RUNTIME_ROOT", str(root))
    k = kernel_factory()
    d = value(k, "import ferry\nferry.runtime_dir")
    assert os.path.dirname(d) == str(root)
    assert os.path.basename(d).startswith(f"ferry-{uid}-{k.pid}-")
    assert not stale.exists(), "directory of a dead kernel left behind"
    assert alive.exists(), "directory of a live process removed"
    assert unrelated.exists()
    # The re-export works from there too.
    got = value(k, "import multiprocessing as mp\n"
                   "def twice(x):\n    return 2 * x\n"
                   "with mp.get_context('forkserver').Pool(1) as pool:\n"
                   "    out = pool.map(twice, [21])\n"
                   "out")
    assert got == [42]
    k.stop()
    assert not os.path.exists(d), "the kernel's own directory outlived it"
    assert sorted(os.listdir(root)) == sorted([alive.name, unrelated.name])
