"""What a careless client, a tired machine and an attacker do to a kernel:
interrupts that land at the wrong moment, signals, hostile input.  Each test
names the failure it guards against."""

import os
import random
import signal
import subprocess
import sys
import time

import psutil
import pytest
from jupyter_client import BlockingKernelClient

import harness

# A profile hook that sends SIGINT to the kernel the moment ferry's own code
# (not the cell's) calls `name`: an interrupt that arrives just as a cell ends
# lands there, deterministically.
INTERRUPT_IN_FERRY = (
    "import os, signal, sys\n"
    "def _hook(frame, event, arg, _pid=os.getpid()):\n"
    "    if event == 'call' and frame.f_code.co_name == {name!r} \\\n"
    "            and '/ferry/' in frame.f_code.co_filename:\n"
    "        sys.setprofile(None)\n"
    "        os.kill(_pid, signal.SIGINT)\n"
    "sys.setprofile(_hook)\n"
)


@pytest.mark.ferry_only("ipykernel raises in its own code too")
@pytest.mark.parametrize("name", ["store", "post_execute", "_user_expressions"])
def test_interrupt_landing_in_the_kernels_code_is_dropped(kernel, name):
    x = kernel.execute(INTERRUPT_IN_FERRY.format(name=name) + "'done'", stop_on_error=False)
    assert x.status in ("ok", "error"), x.describe()
    if x.status == "error":  # it may still reach the cell's last statement
        assert x.content["ename"] == "KeyboardInterrupt", x.content
    assert x.content.get("ename") != "InternalError", x.content
    assert "ferry/_" not in x.stderr, x.stderr
    assert kernel.execute("1 + 1").ok().text == "2"


def test_interrupts_near_a_cells_end_interrupt_it_or_are_dropped(kernel):
    # Seeded and bounded: 30 interrupts spread around the end of a short sleep.
    rng = random.Random(14)
    outcomes = set()
    for _ in range(30):
        p = kernel.submit("import time\nprint('started', flush=True)\ntime.sleep(0.1)",
                          stop_on_error=False)
        p.wait_until_running()
        time.sleep(rng.uniform(0.05, 0.15))
        os.kill(kernel.pid, signal.SIGINT)
        x = p.finish(timeout=30)
        if x.status == "error":
            assert x.content["ename"] == "KeyboardInterrupt", x.content
        outcomes.add(x.status)
        assert x.content.get("ename") != "InternalError", x.content
        assert "ferry/_" not in x.stderr, x.stderr
    assert kernel.execute("1 + 1").ok().text == "2"


def test_sigterm_from_a_cell_ends_the_kernel_without_a_reply(fresh_kernel):
    k = fresh_kernel
    p = k.submit("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n"
                 "import time\ntime.sleep(30)")
    rc = k.wait_exit()
    assert rc in (0, -signal.SIGTERM), rc
    k.flush()
    assert p.x.reply is None, p.x.content  # no error reply: the kernel died


# ------------------------------------------------------- command line, parent

@pytest.mark.ferry_only("ipykernel takes these too; the history file is ferry's")
def test_ipython_style_options_are_accepted_and_hist_file_honoured(kernel_factory, tmp_path):
    # nbclient passes this to kernels named python3; ferry used to exit on it.
    argv = harness.kernel_argv() + ["--HistoryManager.hist_file=:memory:",
                                    "--InteractiveShellApp.matplotlib", "inline"]
    k = kernel_factory(argv=argv)
    assert k.execute("print('alive')").ok().stdout == "alive\n"
    assert not k.history_file.exists(), "history went to a file, not :memory:"
    h = k.request("history_request", {"hist_access_type": "tail", "n": 5, "output": False,
                                      "raw": True}).content
    assert [e[2] for e in h["history"]] == ["print('alive')"]
    k.stop()
    assert "ignoring option --InteractiveShellApp.matplotlib" in k.log_tail()


WRAPPER = """
import os, subprocess, sys, time
env = dict(os.environ, JPY_PARENT_PID=str(os.getpid()))
p = subprocess.Popen(sys.argv[1:], env=env, stdout=subprocess.DEVNULL)
print(p.pid, flush=True)
time.sleep(600)
"""


def _ready(client):
    """A kernel_info round trip.  Not wait_for_ready: without a manager it
    takes a kernel for dead after a second without a heartbeat echo, which a
    loaded machine can take."""
    reply = client.kernel_info(reply=True, timeout=harness.STARTUP_TIMEOUT)
    assert reply["content"]["status"] == "ok", reply


def _gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.ferry_only("ipykernel does it too; not asserted there")
def test_kernel_exits_when_the_process_in_jpy_parent_pid_dies(tmp_path):
    from jupyter_client.connect import write_connection_file
    cf, _ = write_connection_file(str(tmp_path / "k.json"), ip="127.0.0.1", key=b"k3y")
    argv = [a.replace("{connection_file}", cf) for a in harness.kernel_argv()]
    wrapper = subprocess.Popen([sys.executable, "-c", WRAPPER] + argv,
                               stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    kernel_pid = int(wrapper.stdout.readline())
    kernel = psutil.Process(kernel_pid)
    try:
        client = BlockingKernelClient(connection_file=cf)
        client.load_connection_file()
        client.start_channels()
        _ready(client)
        client.stop_channels()
        wrapper.kill()
        wrapper.wait()
        deadline = time.monotonic() + 60
        while not _gone(kernel_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _gone(kernel_pid), "the kernel outlived the process in JPY_PARENT_PID"
    finally:
        wrapper.kill()
        wrapper.wait()
        if not _gone(kernel_pid):
            kernel.kill()


# ------------------------------------------------------------- NUL in text

def test_nul_in_an_exception_message_is_reported(kernel):
    x = kernel.execute("raise ValueError('a\\x00b')", stop_on_error=False)
    assert x.content["ename"] == "ValueError", x.content
    assert x.content["evalue"] == "a\x00b"


def test_nul_in_cell_source_is_a_syntax_error_not_an_internal_error(kernel):
    x = kernel.execute("x = 'a\x00b'", stop_on_error=False)
    assert x.content["ename"] in ("SyntaxError", "ValueError"), x.content
    assert kernel.execute("1 + 1").ok().text == "2"


def test_nul_in_strings_travels_both_ways(kernel):
    x = kernel.execute("s = 'a\\x00b'\nprint(s)\nfrom IPython.display import display\n"
                       "display({'text/plain': s}, raw=True)\ns")
    x.ok()
    assert x.stdout == "a\x00b\n"
    assert x.of_type("display_data")[0]["content"]["data"]["text/plain"] == "a\x00b"
    assert x.text == repr("a\x00b")


# ------------------------------------------------------ stale stdin replies

def _send_input_reply(kernel, value, parent_id=None):
    msg = kernel.kc.session.msg("input_reply", {"value": value})
    if parent_id is not None:
        msg["parent_header"] = {"msg_id": parent_id}
    kernel.kc.stdin_channel.send(msg)


def test_an_input_reply_to_another_request_is_not_the_answer(kernel):
    def answer(content):
        _send_input_reply(kernel, "stale", parent_id="some-earlier-request")
        return "real"

    x = kernel.execute("input('q? ')", stdin_handler=answer).ok()
    assert x.text == "'real'"


def test_an_unsolicited_input_reply_is_not_taken_by_a_later_input(kernel):
    _send_input_reply(kernel, "unsolicited")
    time.sleep(0.5)  # let it reach the kernel first; if it is late the test proves less
    x = kernel.execute("input('q? ')", stdin_handler=lambda c: "real").ok()
    assert x.text == "'real'"


# ------------------------------------------------ the kernel's own errors

def _all_stream_text(x):
    return x.stdout + x.stderr


@pytest.mark.ferry_only("the runner is ferry's")
def test_the_runners_own_traceback_goes_to_the_log_not_the_cell(fresh_kernel):
    k = fresh_kernel
    # Breaks the runner on purpose: its reply can no longer be serialised.
    x = k.execute("import ferry._kernel\nferry._kernel.json = None")
    y = k.execute("print('after')", stop_on_error=False)
    k.flush()
    assert y.content.get("ename") == "InternalError", y.content
    assert "Traceback" not in _all_stream_text(x) + _all_stream_text(y), y.stderr
    z = k.execute("1", stop_on_error=False)
    assert "Traceback" not in _all_stream_text(z)
    k.stop()
    assert "AttributeError" in k.log_tail(), k.log_tail()


@pytest.mark.ferry_only("the runner is ferry's")
def test_a_failed_completion_is_logged_not_shown_in_the_next_cell(kernel):
    kernel.execute("import sys\nclass Odd:\n"
                   "    def __dir__(self):\n        raise RuntimeError('no dir')\n"
                   "odd = Odd()").ok()
    # The runner logs through sys.__stderr__ when a completion fails.
    y = kernel.execute("import ferry._kernel as K\nK._logged('probe')").ok()
    kernel.request("complete_request", {"code": "odd.", "cursor_pos": 4})
    x = kernel.execute("print('next')").ok()
    assert x.stdout == "next\n"
    assert "failed" not in x.stderr + y.stderr, x.stderr + y.stderr
    assert "probe failed" in kernel.log_tail()


# --------------------------------------------- memory before authentication

MiB = 1 << 20


def _rss(pid):
    return psutil.Process(pid).memory_info().rss


def _peak_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _raw_shell(k):
    import zmq
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.connect(f"tcp://127.0.0.1:{k.km.shell_port}")
    return s


def _settle(k, sock=None):
    """Returns once the kernel has dealt with what came before: on sock, a
    signed request sent after the rest (ZeroMQ keeps one peer's order)."""
    if sock is not None:
        import zmq
        k.kc.session.send(sock, "kernel_info_request", {})
        assert sock.poll(60_000, zmq.POLLIN), "no kernel_info_reply"
        k.kc.session.recv(sock)
    assert k.execute("1").ok().text == "1"


@pytest.mark.ferry_only("ipykernel has no limit")
def test_a_message_over_the_size_limit_is_refused_before_it_is_held(kernel_factory,
                                                                monkeypatch):
    monkeypatch.setenv("FERRY_MAX_MESSAGE_SIZE", str(16 * MiB))
    k = kernel_factory()
    _settle(k)
    before = _peak_rss(k.pid)
    s = _raw_shell(k)
    s.send_multipart([b"<IDS|MSG>", b"0" * 64, b"x" * (100 * MiB)])
    # Refused, the peer is disconnected: no reply comes back to settle on.
    # Given time to arrive, the part would show in the peak.
    time.sleep(3)
    s.close()
    _settle(k)
    assert _peak_rss(k.pid) - before < 50 * MiB, (before, _peak_rss(k.pid))


@pytest.mark.ferry_only("ipykernel holds them")
def test_a_flood_of_tiny_frames_leaves_the_kernel_no_larger(kernel_factory, monkeypatch):
    harness.without_asan_quarantine(monkeypatch)
    kernel = kernel_factory()
    _settle(kernel)
    s = _raw_shell(kernel)
    for _ in range(2):  # the first round may grow pools that are then reused
        before = _rss(kernel.pid)
        s.send_multipart([b"p"] * 300_000)
        _settle(kernel, s)
    s.close()
    assert _rss(kernel.pid) - before < 8 * MiB, (before, _rss(kernel.pid))


@pytest.mark.ferry_only("log lines are ferry's")
def test_dropped_messages_are_logged_with_a_count_not_a_line_each(fresh_kernel):
    k = fresh_kernel
    s = _raw_shell(k)
    for i in range(300):
        s.send_multipart([b"<IDS|MSG>", b"bad", b"{}", b"{}", b"{}", b"{}"])
    _settle(k, s)
    s.close()
    k.stop()
    lines = [line for line in k.log_tail(100_000).splitlines() if "dropp" in line]
    assert 1 <= len(lines) <= 3, lines


# ------------------------------------------------- runtime directories, locks

HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(600)
"""


def _dead_pid():
    p = subprocess.Popen(["true"])
    p.wait(timeout=10)
    return p.pid


@pytest.mark.ferry_only("ferry's runtime directory")
def test_a_locked_runtime_directory_survives_however_dead_its_pid_looks(
        kernel_factory, tmp_path, monkeypatch):
    # Across PID namespaces a live kernel's pid looks dead: only its lock
    # tells that it is alive.
    root = tmp_path / "rt"
    uid = os.getuid()
    live = root / f"ferry-{uid}-{_dead_pid()}-LiVe01"
    dead = root / f"ferry-{uid}-{_dead_pid()}-DeAd01"
    for d in (live, dead):
        d.mkdir(parents=True)
        (d / ".ferry-locked").write_text("")
        (d / "ferry_main_1.py").write_text("")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(live)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        monkeypatch.setenv("FERRY_RUNTIME_ROOT", str(root))
        k = kernel_factory()
        own = eval(k.execute("import ferry\nferry.runtime_dir").ok().text)
        assert live.exists(), "a live kernel's directory was removed"
        assert not dead.exists(), "a killed kernel's directory was left"
        # The new kernel holds its own directory's lock.
        import fcntl
        fd = os.open(own, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    finally:
        holder.kill()
        holder.wait()


# ------------------------------------------------ connection-file permissions

def _run_on_connection_file(tmp_path, key, mode):
    """Starts a kernel on a connection file of the given key and mode, checks
    it answers, stops it; returns its log."""
    from jupyter_client.connect import write_connection_file
    cf, _ = write_connection_file(str(tmp_path / "k.json"), ip="127.0.0.1", key=key)
    os.chmod(cf, mode)
    argv = [a.replace("{connection_file}", cf) for a in harness.kernel_argv()]
    log = tmp_path / "kernel.log"
    with open(log, "wb") as out:
        p = subprocess.Popen(argv, stdout=out, stderr=out, cwd=tmp_path)
    try:
        client = BlockingKernelClient(connection_file=cf)
        client.load_connection_file()
        client.start_channels()
        _ready(client)
        # Its warnings are written at start; SIGTERM ends it at once.
        client.stop_channels()
        p.terminate()
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return log.read_text()


@pytest.mark.ferry_only("log lines are ferry's")
@pytest.mark.parametrize("mode", [0o640, 0o660], ids=oct)
def test_a_connection_file_its_group_can_read_is_warned_about(tmp_path, mode):
    log = _run_on_connection_file(tmp_path, b"s3cret", mode)
    assert f"mode {mode:04o}" in log, log
    assert "chmod 600" in log, log


@pytest.mark.ferry_only("log lines are ferry's")
def test_a_private_connection_file_is_not_warned_about(tmp_path):
    log = _run_on_connection_file(tmp_path, b"s3cret", 0o600)
    assert "chmod" not in log and "empty key" not in log, log


@pytest.mark.ferry_only("log lines are ferry's")
def test_an_empty_key_is_logged_once_as_insecure(tmp_path):
    log = _run_on_connection_file(tmp_path, b"", 0o600)
    assert log.count("empty key") == 1, log


@pytest.mark.ferry_only("ipykernel accepts it")
def test_a_connection_file_anyone_can_read_is_refused(tmp_path):
    from jupyter_client.connect import write_connection_file
    cf, _ = write_connection_file(str(tmp_path / "k.json"), ip="127.0.0.1", key=b"k")
    os.chmod(cf, 0o644)
    argv = [a.replace("{connection_file}", cf) for a in harness.kernel_argv()]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode != 0
    assert "mode 0644" in p.stderr and "chmod 600" in p.stderr, p.stderr


# ------------------------------------------------------ large outputs, memory

@pytest.mark.ferry_only("ipykernel's buffers are its own")
@pytest.mark.parametrize("cell", [
    "print('x' * 100_000_000)",
    "import os\nos.write(1, b'z' * 100_000_000)",
], ids=["print", "fd-write"])
def test_a_huge_output_does_not_keep_the_kernel_large(kernel_factory, monkeypatch, cell):
    harness.without_asan_quarantine(monkeypatch)
    k = kernel_factory()
    k.execute("print('w' * 1_000_000)").ok()  # the paths a big output takes, warmed
    _settle(k)
    before = _rss(k.pid)
    x = k.execute(cell, timeout=120).ok()
    assert len(x.stdout) >= 100_000_000
    _settle(k)
    # The kernel gives the memory back once its output has gone quiet; a
    # loaded machine may take a while to run that.
    deadline = time.monotonic() + 30
    while _rss(k.pid) - before >= 30 * MiB and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _rss(k.pid) - before < 30 * MiB, (before, _rss(k.pid))


# ------------------------------------------- pidfd refused: workers still reaped

NO_PIDFD = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <sys/types.h>
int pidfd_open(pid_t pid, unsigned int flags)
{
    (void)pid;
    (void)flags;
    errno = ENOSYS;
    return -1;
}
"""


@pytest.mark.ferry_only("ferry's pool")
def test_a_crashed_worker_is_reaped_when_pidfd_open_is_refused(kernel_factory, tmp_path,
                                                             monkeypatch):
    # An old kernel or a container's seccomp filter refuses pidfd_open; this
    # shim does the same to the kernel.
    src = tmp_path / "nopidfd.c"
    src.write_text(NO_PIDFD)
    lib = tmp_path / "nopidfd.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    monkeypatch.setenv("LD_PRELOAD", str(lib))
    monkeypatch.setenv("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "") +
                       ":verify_asan_link_order=0")
    k = kernel_factory()
    x = k.execute("import ferry, os\nferry.workers(2)\n"
                  "def die(x):\n    os._exit(3)\n"
                  "try:\n    ferry.map(die, [1], chunksize=1)\n"
                  "except ferry.WorkerCrashed as e:\n    print('crashed:', e)\n",
                  timeout=60)
    assert "crashed:" in x.ok().stdout, x.stdout
    y = k.execute("sorted(ferry.map(abs, range(-5, 5), chunksize=1))", timeout=60)
    assert y.ok().text == str(sorted(abs(i) for i in range(-5, 5)))


# --------------------------------- processes started by tasks end with them

START_SLEEPER = (
    "import ferry, os, subprocess\nferry.workers(1)\n"
    "def start_sleeper(_):\n"
    "    p = subprocess.Popen(['sleep', '600'])\n"
    "    return os.getpid(), p.pid\n"
    "worker, sleeper = ferry.map(start_sleeper, [0])[0]\n"
    "print(worker, sleeper)\n"
)


def _wait_gone(pid, timeout=30):
    deadline = time.monotonic() + timeout
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _gone(pid)


@pytest.mark.ferry_only("ferry's pool")
@pytest.mark.parametrize("victim", ["worker", "kernel"])
def test_a_process_started_by_a_task_ends_when_its_worker_or_the_kernel_dies(
        kernel_factory, victim):
    k = kernel_factory()
    worker, sleeper = map(int, k.execute(START_SLEEPER, timeout=60).ok().stdout.split())
    assert not _gone(sleeper)
    try:
        os.kill(worker if victim == "worker" else k.pid, signal.SIGKILL)
        assert _wait_gone(sleeper), f"the task's process outlived its {victim}"
        if victim == "worker":  # the pool heals
            assert k.execute("ferry.map(abs, [-3])", timeout=60).ok().text == "[3]"
    finally:
        if not _gone(sleeper):
            os.kill(sleeper, signal.SIGKILL)
