"""The template process (kernel/pool/template.h): workers forked from it
hold the modules the cells imported, are the kernel's own children, die
with it, and report a crash as exec'd workers do; a module that starts a
thread, or a template killed, leaves the pool working with exec'd workers.
"""
import ast
import os
import signal
import textwrap
import time

import psutil
import pytest

import harness

pytestmark = pytest.mark.ferry_only("the template process exists only in ferry")

T = 30.0


def result(k, code, timeout=T):
    return ast.literal_eval(k.execute(code, timeout=timeout).ok().text)


def template(k):
    """(state, pid, reason) of the kernel's template process."""
    return result(k, "import _ferry_pool\n_ferry_pool.template_state()")


def library(tmp_path, **modules):
    """A directory on no path yet, not the kernel's cwd (the template leaves
    modules beside the notebook to the workers), holding the modules."""
    lib = tmp_path / "lib"
    lib.mkdir()
    for name, source in modules.items():
        (lib / f"{name}.py").write_text(textwrap.dedent(source))
    return lib


# A module that notes which process imported it.
PROBE = """\
    import os
    IMPORTED_IN = os.getpid()
"""


def kill_and_wait(pid):
    """SIGKILL to pid, then wait until it is dead (a zombie until the kernel,
    its parent, reaps it): a process killed while it execs dies only once
    the exec is over."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + harness.EXIT_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} still alive after SIGKILL")


def worker_procs(k, pids):
    procs = [psutil.Process(p) for p in pids]
    for p in procs:
        assert p.ppid() == k.pid  # the kernel's own children
    return procs


# A notebook's first cell often starts with a magic (%matplotlib inline):
# its imports must reach the template all the same.
@pytest.mark.parametrize("first_line", ["", "%pwd\n"])
def test_a_new_worker_holds_what_a_cell_imported_before_its_first_task(fresh_kernel, tmp_path,
                                                                       first_line):
    k = fresh_kernel
    lib = library(tmp_path, ferry_probe=PROBE)
    k.execute(f"import sys\nsys.path.insert(0, {str(lib)!r})", timeout=T).ok()
    k.execute(first_line + "import ferry_probe", timeout=T).ok()
    state, tpid, _ = template(k)
    assert state == "running" and tpid > 0
    # eval is a builtin: the task loads nothing of the notebook's, so the
    # module can only be there if the worker started with it.
    where, pids = result(k, "import ferry\nfrom ferry import _pool\n"
                            "w = ferry.submit(eval, \"__import__('sys').modules['ferry_probe']"
                            ".IMPORTED_IN\").result(timeout=20)\n"
                            "(w, _pool.shared().pids())")
    assert where == tpid  # imported once, by the template, not by the worker
    for p in worker_procs(k, pids):
        assert p.cmdline()[1:3] == ["--worker", "--forked"]


def test_workers_of_the_template_die_with_the_kernel(fresh_kernel):
    k = fresh_kernel
    pids = result(k, "import ferry\nfrom ferry import _pool\n"
                     "ferry.map(abs, range(4), chunksize=1)\n_pool.shared().pids()")
    state, tpid, _ = template(k)
    assert state == "running" and tpid > 0
    procs = worker_procs(k, pids) + [psutil.Process(tpid)]
    procs += [c for p in procs for c in p.children(recursive=True)]  # group watchers
    os.kill(k.pid, signal.SIGKILL)
    k.wait_exit()
    _, alive = psutil.wait_procs(procs, timeout=harness.EXIT_TIMEOUT)
    for p in alive:
        p.kill()
    assert not alive, f"outlived the kernel: {[p.pid for p in alive]}"


@pytest.mark.parametrize("how, named", [("os._exit(3)", "exited with code 3"),
                                        ("os.kill(os.getpid(), 9)", "signal 9 (SIGKILL)")])
def test_a_crash_in_a_forked_worker_names_its_exit(kernel, how, named):
    pids = result(kernel, "import ferry, os\n"
                          "ex = ferry.Executor(1)\nex.submit(abs, 1).result(timeout=20)\n"
                          "ex._pool.pids()")
    worker_procs(kernel, pids)
    assert psutil.Process(pids[0]).cmdline()[1:3] == ["--worker", "--forked"]
    x = kernel.execute(f"try:\n    ex.submit(eval, {how!r}).result(timeout=20)\n"
                       "finally:\n    ex.shutdown()", timeout=T)
    assert x.content["ename"] == "WorkerCrashed", x.describe()
    assert named in x.content["evalue"], x.content["evalue"]


def test_a_module_that_starts_a_thread_ends_the_template_and_the_pool_execs(
        fresh_kernel, tmp_path):
    k = fresh_kernel
    lib = library(tmp_path, ferry_threaded="""\
        import threading, time
        threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
    """)
    state, tpid, _ = template(k)
    assert state == "running" and tpid > 0
    k.execute(f"import sys\nsys.path.insert(0, {str(lib)!r})\nimport ferry_threaded",
              timeout=T).ok()
    values, pids = result(k, "import ferry\nfrom ferry import _pool\n"
                             "(ferry.map(abs, [-1, -2, -3], chunksize=1), "
                             "_pool.shared().pids())")
    assert values == [1, 2, 3]
    for p in worker_procs(k, pids):
        assert "--worker" in p.cmdline() and "--forked" not in p.cmdline()  # exec'd
    state, pid, why = template(k)
    assert (state, pid) == ("unsafe", 0)
    assert "ferry_threaded" in why
    assert not psutil.pid_exists(tpid) or psutil.Process(tpid).status() == psutil.STATUS_ZOMBIE
    # Given up on for good: the next cell starts no template again.
    k.execute("1", timeout=T).ok()
    assert template(k)[0] == "unsafe"


def test_a_template_killed_during_a_spawn_loses_no_task(fresh_kernel, tmp_path):
    k = fresh_kernel
    # Slow to import in the template only: the kernel has ferry._kernel.
    lib = library(tmp_path, ferry_slow="""\
        import sys, time
        if "ferry._kernel" not in sys.modules:
            time.sleep(3600)
    """)
    state, tpid, _ = template(k)
    assert state == "running" and tpid > 0
    k.execute(f"import sys\nsys.path.insert(0, {str(lib)!r})\nimport ferry_slow",
              timeout=T).ok()
    # The pool asks the template, busy importing, for workers...
    p = k.submit("import ferry\nfrom ferry import _pool\n"
                 "print('started', flush=True)\n"
                 "(ferry.submit(abs, -5).result(timeout=60), _pool.shared().pids())")
    p.wait_until_running()
    os.kill(tpid, signal.SIGKILL)  # ...and it dies before it answers
    x = p.finish(timeout=60)
    value, pids = ast.literal_eval(x.ok().text)
    assert value == 5
    for w in worker_procs(k, pids):
        assert "--forked" not in w.cmdline()  # started by exec instead
    # After the cell the kernel starts a template again.
    state, pid, _ = template(k)
    assert state == "running" and pid not in (0, tpid)


def test_workers_forked_from_one_template_draw_different_random_numbers(kernel):
    # Two pools of one worker each: two workers forked from the template
    # after it imported numpy (seeded once, there).
    draws = result(kernel, "import ferry, numpy\n"
                           "draw = \"__import__('numpy').random.randint(1 << 30)\"\n"
                           "r = []\n"
                           "for _ in range(2):\n"
                           "    with ferry.Executor(1) as ex:\n"
                           "        r.append(int(ex.submit(eval, draw).result(timeout=20)))\n"
                           "r")
    assert draws[0] != draws[1]


def test_a_template_that_keeps_dying_is_given_up_on_and_the_pool_execs(fresh_kernel):
    k = fresh_kernel
    seen = set()
    for _ in range(10):
        state, tpid, why = template(k)
        for _ in range(50):  # the end of the last one not yet seen: a cell restarts it
            if state != "off":
                break
            state, tpid, why = template(k)
        if state != "running":
            break
        seen.add(tpid)
        kill_and_wait(tpid)
        k.execute("1", timeout=T).ok()  # after it, the kernel starts one again
    assert state == "failed" and "ended" in why, (state, why)
    assert len(seen) >= 2  # restarted before it was given up on
    values, pids = result(k, "import ferry\nfrom ferry import _pool\n"
                             "(ferry.map(abs, [-1, -2], chunksize=1), _pool.shared().pids())")
    assert values == [1, 2]
    for w in worker_procs(k, pids):
        assert "--forked" not in w.cmdline()


def test_a_forked_worker_has_the_environment_the_cell_set(fresh_kernel):
    k = fresh_kernel
    assert template(k)[0] == "running"
    got = result(k, "import os, ferry\nos.environ['FERRY_TEST_SET_IN_CELL'] = 'yes'\n"
                    "with ferry.Executor(1) as ex:\n"
                    "    r = ex.submit(eval, \"__import__('os').environ.get("
                    "'FERRY_TEST_SET_IN_CELL')\").result(timeout=20)\n"
                    "    forked = '--forked' in open(f'/proc/{ex._pool.pids()[0]}/cmdline').read()\n"
                    "(r, forked)")
    assert got == ("yes", True)


def code_resident_kb(pid):
    """KiB of code (executable mappings of files: the binary, libpython
    however linked, the shared libraries) resident in pid."""
    total, counting = 0, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and ":" in head[3]:
                counting = "x" in head[1] and len(head) > 5 and head[5].startswith("/")
            elif counting and head[0] == "Rss:":
                total += int(head[1])
    return total


def test_an_idle_template_keeps_none_of_the_code_it_ran_mapped(fresh_kernel):
    """The template's code pages are the kernel's in the page cache: once it
    has started and imported, it lets them go (kernel/pool/shared_pages.h),
    so the kernel's RSS and its children's do not count them twice."""
    k = fresh_kernel
    k.execute("import decimal, fractions", timeout=T).ok()  # imports, then settles
    state, tpid, _ = template(k)
    assert state == "running" and tpid > 0
    in_kernel = code_resident_kb(k.pid)
    deadline = time.monotonic() + T
    while code_resident_kb(tpid) * 4 > in_kernel and time.monotonic() < deadline:
        time.sleep(0.05)  # the imports of the cell may still run there
    assert code_resident_kb(tpid) * 4 <= in_kernel, (in_kernel, tpid)
    # and the template still forks workers that run
    assert result(k, "import ferry\nferry.submit(abs, -3).result(timeout=20)") == 3


def test_a_forked_worker_starts_with_the_definitions_of_earlier_cells_compiled(fresh_kernel):
    """The template compiles what cells record (ferry._rx_rt.precompile), so
    a new worker's first task runs the notebook's definitions without
    compiling them.  eval is a builtin: the probe itself loads nothing."""
    k = fresh_kernel
    k.execute("def twice(x):\n    return 2 * x\nclass Point:\n    pass", timeout=T).ok()
    filename = result(k, "twice.__code__.co_filename")
    probe = ("sorted({key[0] for key in __import__('ferry._rx_rt', fromlist=['_'])"
             "._code_cache})")
    cached = result(k, "import ferry\nex = ferry.Executor(1)\n"
                       f"try:\n    r = ex.submit(eval, {probe!r}).result(timeout=20)\n"
                       "finally:\n    ex.shutdown()\nr")
    assert filename in cached, (filename, cached)


def test_what_the_template_holds_is_out_of_the_workers_collections(kernel):
    """gc.freeze() in the template: a full collection in a forked worker
    would write to every object it shares with the template, copying each
    page."""
    frozen = result(kernel, "import ferry\nex = ferry.Executor(1)\n"
                            "try:\n    r = ex.submit(eval, \"__import__('gc').get_freeze_count()\")"
                            ".result(timeout=20)\nfinally:\n    ex.shutdown()\nr")
    assert frozen > 1000
