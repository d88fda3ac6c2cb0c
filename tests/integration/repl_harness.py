"""Helpers for the tests of the terminal REPL `ferry` (test_repl_*.py).

The REPL is driven as a person would drive it: through tmux (send-keys to
type, capture-pane to read the screen) for the interactive prompt, and as a
plain subprocess for the non-interactive modes.

Kernels under test come from FERRY_REPL_TEST_KERNELS (space separated,
default "python3"); "ferry" means ferry's own default kernel (no --kernel
flag: ferry-kernel beside the binary, else the "ferry" kernelspec), any other
word is a kernelspec name passed as --kernel NAME.

Every test gets a private HOME (so the history file is the test's own) and a
private, short XDG_RUNTIME_DIR: every kernel the REPL starts has its
connection file there, so a process whose command line names that directory
is one of ours, and none may survive the test (ProcessGuard).  Every wait has
a timeout: a test may fail, never hang.
"""

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid

import psutil
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FERRY = os.environ.get("FERRY_BIN", os.path.join(REPO, "build", "ferry"))
PYTHON = "/usr/bin/python3"


def kernels():
    return os.environ.get("FERRY_REPL_TEST_KERNELS", "python3").split()


def kernel_args(name):
    """Command-line arguments that select the kernel called name."""
    return [] if name == "ferry" else ["--kernel", name]


def ipython_only(kernel, what):
    """Marks a test that relies on an IPython feature ferry-kernel lacks (so far)."""
    if kernel == "ferry":
        pytest.xfail(f"ferry-kernel: {what}")


def processes_naming(text):
    """Live processes whose command line contains text."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if text in cmd and p.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


class ProcessGuard:
    """Checks that no process started under runtime_dir outlives the test."""

    def __init__(self, runtime_dir):
        self.runtime_dir = runtime_dir

    def leftovers(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            left = processes_naming(self.runtime_dir)
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.1)

    def check(self, timeout=10.0):
        left = self.leftovers(timeout)
        for p in left:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        assert not left, f"processes left behind: {[p.info['cmdline'] for p in left]}"


class Env:
    """A private HOME and runtime directory, and the environment for ferry."""

    def __init__(self):
        self.home = tempfile.mkdtemp(prefix="frh")
        # Short on purpose: the REPL falls back to /tmp for long paths.
        self.runtime_dir = tempfile.mkdtemp(prefix="frr", dir="/tmp")
        self.vars = dict(os.environ)
        for name in ("FERRY_HISTORY", "XDG_DATA_HOME", "JUPYTER_DATA_DIR", "PAGER",
                     "NO_COLOR"):
            self.vars.pop(name, None)
        self.vars.update(HOME=self.home, XDG_RUNTIME_DIR=self.runtime_dir, TERM="xterm",
                         LC_ALL="C.UTF-8", PYTHONDONTWRITEBYTECODE="1")
        self.guard = ProcessGuard(self.runtime_dir)

    def close(self):
        self.guard.check()
        deadline = time.monotonic() + 10
        while os.listdir(self.runtime_dir) and time.monotonic() < deadline:
            time.sleep(0.1)  # ferry removes its files after the kernel is gone
        leftover = os.listdir(self.runtime_dir)
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
        shutil.rmtree(self.home, ignore_errors=True)
        assert leftover == [], f"runtime files left behind: {leftover}"


def run_ferry(env, args, input=None, timeout=60, extra_env=None):
    """Runs ferry to completion; returns the CompletedProcess (text mode)."""
    vars = dict(env.vars)
    vars.update(extra_env or {})
    return subprocess.run([FERRY] + list(args), input=input, capture_output=True,
                          text=True, env=vars, timeout=timeout,
                          stdin=None if input is not None else subprocess.DEVNULL)


class Tmux:
    """ferry running in a tmux pane of a private tmux server."""

    def __init__(self, env, args, width=110, height=40, extra_env=None):
        self.socket = "ferry-test-" + uuid.uuid4().hex[:10]
        self.env = env
        conf = os.path.join(env.home, "tmux.conf")
        with open(conf, "w") as f:
            # The pane stays after ferry exits so that its last screen and exit
            # status can be read.
            f.write("set -g remain-on-exit on\nset -g history-limit 5000\n")
        self.vars = dict(env.vars)
        self.vars.update(extra_env or {})
        # A shell runs ferry and prints its exit status where the test can read it.
        cmd = "sh -c " + shlex.quote(
            " ".join(shlex.quote(a) for a in [FERRY] + list(args))
            + '; echo "[ferry exited with $?]"')
        # The server, started by this first command, passes its environment on.
        self.tmux("-f", conf, "new-session", "-d", "-x", str(width), "-y", str(height), cmd)

    def tmux(self, *args, check=True):
        return subprocess.run(["tmux", "-L", self.socket] + list(args), capture_output=True,
                              text=True, timeout=10, check=check, env=self.vars)

    def send(self, *keys):
        """Sends tmux key names (Enter, Tab, Up, C-c, C-d, ...)."""
        self.tmux("send-keys", *keys)

    def type(self, text):
        """Types text literally."""
        self.tmux("send-keys", "-l", text)

    def screen(self, escapes=False):
        args = ["capture-pane", "-p", "-J", "-N", "-S", "-"]
        if escapes:
            args.append("-e")
        return self.tmux(*args).stdout

    # Generous: under a full `make test` beside others, ipykernel's start and
    # its first (jedi) completion have taken over 30 s.  A miss still fails.
    def wait_for(self, pattern, timeout=90, escapes=False):
        """Waits until the screen matches the regex pattern; returns the screen."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen(escapes)
            if re.search(pattern, text, re.M):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {pattern!r}; screen:\n{text}\n"
                                     f"as data: {text.rstrip()!r}")
            time.sleep(0.1)

    def wait_prompt(self, n, timeout=120):
        return self.wait_for(rf"^In \[{n}\]: ", timeout)

    def pane(self, fmt):
        return self.tmux("display-message", "-p", "-t", "0", fmt).stdout.strip()

    def exit_status(self, timeout=20):
        """Waits for ferry to exit; returns its exit status."""
        screen = self.wait_for(r"^\[ferry exited with \d+\]", timeout)
        return int(re.search(r"^\[ferry exited with (\d+)\]", screen, re.M).group(1))

    def pid(self):
        """Process id of ferry (the child of the pane's shell)."""
        deadline = time.monotonic() + 10
        while True:
            kids = psutil.Process(int(self.pane("#{pane_pid}"))).children()
            if kids:
                return kids[0].pid
            if time.monotonic() > deadline:
                raise AssertionError("no ferry process in the pane")
            time.sleep(0.05)

    def close(self):
        self.tmux("kill-server", check=False)


# ------------------------------------------------------------------ fixtures

@pytest.fixture(params=kernels())
def repl_kernel(request):
    """Name of the kernel under test (see module docstring)."""
    if not os.access(FERRY, os.X_OK):
        pytest.fail(f"{FERRY} is not built (run make)")
    return request.param


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


@pytest.fixture
def tmux_factory(env):
    started = []

    def start(args, **kw):
        t = Tmux(env, args, **kw)
        started.append(t)
        return t

    yield start
    for t in started:
        # Ends ferry as a hang-up would; the guard (env fixture) then checks that
        # the kernel went with it.
        t.close()
