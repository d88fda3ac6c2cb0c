"""Output of child processes reaches the notebook; forked children leave the
kernel's messaging alone.

The kernel captures fds 1 and 2 with pipes, so every child - fork, spawn,
forkserver, a subprocess started by a worker - writes into the same pipes
and its output is published under the cell that is running.  A forked child
inherits the kernel's memory but not its threads: it must not publish, and
the kernel must keep serving whatever its children do.
"""

import os
import time

import pytest
import zmq

import harness

pytestmark = pytest.mark.skipif(harness.is_ipykernel(),
                                reason="ferry's capture of child output")

METHODS = ["spawn", "forkserver", "fork"]
POOL_TIMEOUT = 30
SETTLE = 0.3

PRELUDE = ("import multiprocessing as mp, os, sys, subprocess\n"
           "ctx = mp.get_context({method!r})\n"
           "T = 20\n")


def run(kernel, code, method=None):
    if method is not None:
        code = PRELUDE.format(method=method) + code
    return kernel.execute(code, timeout=POOL_TIMEOUT, settle=SETTLE).ok()


def lines(text):
    return sorted(line for line in text.splitlines() if line)


@pytest.mark.parametrize("method", METHODS)
def test_pool_workers_output_reaches_the_cell(kernel, method):
    # No flush: children write to a pipe, and must not lose what they buffer
    # when the pool terminates them at the end of the `with` block.  (One
    # write per line: print() makes two, which two workers may interleave.)
    x = run(kernel, """
def chatty(i):
    sys.stdout.write(f'out {i}\\n')
    sys.stderr.write(f'err {i}\\n')
    return i
with ctx.Pool(2) as pool:
    pool.map(chatty, range(4), chunksize=1)
print('parent done')
""", method)
    assert lines(x.stdout) == ["out 0", "out 1", "out 2", "out 3", "parent done"], x.stdout
    assert lines(x.stderr) == ["err 0", "err 1", "err 2", "err 3"], x.stderr
    assert x.late == []


@pytest.mark.parametrize("method", METHODS)
def test_process_output_reaches_the_cell(kernel, method):
    x = run(kernel, """
def speak(word):
    print('process says', word)
    os.write(2, b'fd-level from process\\n')
p = ctx.Process(target=speak, args=('hello',))
p.start()
p.join(T)
p.exitcode
""", method)
    assert x.text == "0"
    assert "process says hello\n" in x.stdout
    assert "fd-level from process\n" in x.stderr
    assert x.late == []


@pytest.mark.parametrize("method", METHODS)
def test_subprocesses_of_workers_reach_the_cell(kernel, method):
    x = run(kernel, """
def shell_out(i):
    subprocess.run([sys.executable, '-c', f'print("python child {i}")'], timeout=T)
    subprocess.run(['sh', '-c', f'echo shell child {i} >&2'], timeout=T)
    return i
with ctx.Pool(1) as pool:
    pool.map(shell_out, [1, 2])
""", method)
    assert lines(x.stdout) == ["python child 1", "python child 2"], x.stdout
    assert lines(x.stderr) == ["shell child 1", "shell child 2"], x.stderr


def test_display_in_a_forked_child_prints_its_text_and_never_hangs(kernel):
    x = run(kernel, """
def show(i):
    display(f'shown by child {i}')
    clear_output()
    return i
with ctx.Pool(2) as pool:
    got = pool.map(show, range(4), chunksize=1)
got
""", "fork")
    assert x.text == "[0, 1, 2, 3]"
    assert lines(x.stdout) == [f"'shown by child {i}'" for i in range(4)], x.stdout
    assert x.of_type("display_data") == [] and x.of_type("clear_output") == []


def test_forked_children_leave_the_kernel_serving(kernel):
    info = kernel.km.get_connection_info()
    # A forked child that outlives several requests, others that come and go,
    # and a bare os.fork() whose child leaves through os._exit.
    run(kernel, """
import time
def linger(seconds):
    print('lingering', flush=True)
    time.sleep(seconds)
lingerer = ctx.Process(target=linger, args=(1.5,))
lingerer.start()
for _ in range(3):
    with ctx.Pool(2) as pool:
        pool.map(abs, range(8))
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
""", "fork")
    hb = zmq.Context.instance().socket(zmq.REQ)
    hb.linger = 0
    hb.connect(f"tcp://{info['ip']}:{info['hb_port']}")
    try:
        for i in range(5):
            x = kernel.execute(f"{i} * 2", settle=0.05).ok()
            assert x.text == str(i * 2)
            # Exactly one of each: no child published under this request.
            assert x.msg_types == ["status", "execute_input", "execute_result", "status"], \
                x.describe()
            hb.send(b"ping")
            assert hb.poll(int(harness.TIMEOUT * 1000)) and hb.recv() == b"ping"
            time.sleep(0.1)
    finally:
        hb.close()
    x = run(kernel, "lingerer.join(T)\nlingerer.exitcode")
    assert x.text == "0"
    assert kernel.kernel_info().reply["content"]["status"] == "ok"


def test_kernel_output_still_arrives_after_children_exit(kernel):
    # Children hold copies of the capture pipes' write ends; their exit must
    # not close the kernel's own.
    for method in METHODS:
        run(kernel, "with ctx.Pool(2) as pool:\n    pool.map(abs, range(4))\n", method)
    x = run(kernel, "print('kernel still prints')\nos.write(2, b'and to fd 2\\n')")
    assert x.stdout == "kernel still prints\n"
    assert x.stderr == "and to fd 2\n"
