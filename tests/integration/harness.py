"""Drive one real kernel over the Jupyter protocol, for the integration tests.

The kernel under test is chosen by the environment variable FERRY_TEST_KERNEL:

    unset / "ferry"   build/ferry-kernel -f {connection_file}   (repo-relative)
    "ipykernel"       /usr/bin/python3 -m ipykernel_launcher -f {connection_file}
    anything else     a shell-quoted argv; "{connection_file}" is substituted,
                      and "-f {connection_file}" is appended when it is absent

Running the suite against ipykernel checks the tests themselves; running it
against ferry checks ferry.

Every wait here has a timeout: a test may fail, it must never hang.  Messages
are filed by their parent msg_id as they arrive, so several requests can be in
flight at once (stop_on_error, interrupts) and a stray message from an earlier
test never confuses a later one.
"""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from queue import Empty

import psutil
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import KernelManager

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_KERNEL_ARGV = ["build/ferry-kernel", "-f", "{connection_file}"]
IPYKERNEL_ARGV = ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"]

STARTUP_TIMEOUT = 30.0  # a cold kernel start, under a sanitizer build too
TIMEOUT = 30.0  # one ordinary request, start to idle, beside another make test
EXIT_TIMEOUT = 10.0  # a kernel asked to stop, until its process is gone

# Cells that use display(), update_display() and clear_output().  ferry
# provides the three as built-ins; IPython only has display() there.
DISPLAY_PRELUDE = (
    "try:\n"
    "    display, update_display, clear_output\n"
    "except NameError:\n"
    "    from IPython.display import display, update_display, clear_output\n"
)

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text):
    return _ANSI.sub("", text)


def kernel_argv():
    """The kernel command line (a list; "{connection_file}" not yet substituted)."""
    choice = os.environ.get("FERRY_TEST_KERNEL", "").strip()
    if choice in ("", "ferry"):
        argv = list(DEFAULT_KERNEL_ARGV)
    elif choice == "ipykernel":
        argv = list(IPYKERNEL_ARGV)
    else:
        argv = shlex.split(choice)
        if not any("{connection_file}" in a for a in argv):
            argv += ["-f", "{connection_file}"]
    # A repo-relative program path must survive the kernel's cwd being elsewhere.
    if "/" in argv[0] and not os.path.isabs(argv[0]):
        argv[0] = str(REPO_ROOT / argv[0])
    return argv


def is_ipykernel():
    return any("ipykernel" in a for a in kernel_argv())


def check_kernel_program():
    """Return None if the kernel program exists, else a message saying what to do."""
    prog = kernel_argv()[0]
    if os.path.isabs(prog) and not os.access(prog, os.X_OK):
        return (
            f"kernel under test {prog} does not exist or is not executable: run `make` "
            "first, or set FERRY_TEST_KERNEL=ipykernel to check the tests themselves"
        )
    return None


def make_kernelspec_dir(root, name="ferry", interrupt_mode="signal"):
    """Write ROOT/kernels/NAME/kernel.json for the kernel under test.

    Point JUPYTER_PATH at ROOT so that tools which find kernels by name
    (jupyter_kernel_test, nbconvert) start the kernel under test.
    """
    d = Path(root) / "kernels" / name
    d.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": kernel_argv(),
        "display_name": f"{name} (under test)",
        "language": "python",
        "interrupt_mode": interrupt_mode,
        "metadata": {},
    }
    (d / "kernel.json").write_text(json.dumps(spec, indent=1))
    return d


# ---------------------------------------------------------------------------
# Processes



def execute_notebook(notebook, tmp):
    """Runs notebook headless with `python -m nbconvert --execute` on a
    temporary "ferry" kernelspec, as a person would with jupyter nbconvert.
    Connection files go to a private runtime directory, so any kernel process
    left behind can be found (and is killed).  Returns the executed cells by
    id and descriptions of the processes that had to be killed."""
    make_kernelspec_dir(tmp / "jupyter", "ferry")
    runtime = tmp / "runtime"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(JUPYTER_PATH=str(tmp / "jupyter"), JUPYTER_RUNTIME_DIR=str(runtime),
               IPYTHONDIR=str(tmp / "ipython"), FERRY_HISTORY_FILE=str(tmp / "history.sqlite"))
    cmd = [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute",
           "--ExecutePreprocessor.kernel_name=ferry", "--ExecutePreprocessor.timeout=60",
           "--output-dir", str(tmp / "out"), str(notebook)]
    proc = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=120)
    found = [p for p in psutil.process_iter(["cmdline"])
             if str(runtime) in " ".join(p.info["cmdline"] or [])]
    _, alive = psutil.wait_procs(found, timeout=3)
    leftovers = []
    for p in alive:
        leftovers.append(f"{p.pid} {p.info['cmdline']}")
        try:
            p.kill()
        except psutil.Error:
            pass
    assert proc.returncode == 0, f"nbconvert failed:\n{proc.stderr[-4000:]}"
    nb = json.loads((tmp / "out" / Path(notebook).name).read_text())
    return {c["id"]: c for c in nb["cells"]}, leftovers


def without_asan_quarantine(monkeypatch):
    """For a test that measures a kernel's resident size: under
    AddressSanitizer (make SANITIZE=address test) freed memory waits in a
    quarantine of 256 MiB before it is reused or given back, so the size
    would measure the quarantine, not the kernel.  Kernels started after this
    call do without it; other builds ignore the variable."""
    options = os.environ.get("ASAN_OPTIONS", "")
    monkeypatch.setenv("ASAN_OPTIONS", ":".join(filter(None, [options, "quarantine_size_mb=0"])))


def process_tree(pid):
    """The process PID and all its descendants, as psutil.Process objects."""
    try:
        p = psutil.Process(pid)
        return [p] + p.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def same_group(pgid):
    """Processes whose process group is PGID (the kernel leads its own group)."""
    found = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (ProcessLookupError, psutil.Error):
            pass
    return found


def reap_and_check(procs, pgid=None, timeout=EXIT_TIMEOUT):
    """Wait for PROCS to end; kill survivors and raise AssertionError naming them."""
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    if pgid is not None:
        seen = {p.pid for p in alive}
        alive += [p for p in same_group(pgid) if p.pid not in seen]
    survivors = []
    for p in alive:
        try:
            survivors.append(f"{p.pid} {' '.join(p.cmdline())!r}")
            p.kill()
        except psutil.Error:
            pass
    if survivors:
        raise AssertionError("processes outlived the kernel: " + "; ".join(survivors))


def describe_exit(rc):
    if rc is not None and rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit status {rc}"


# ---------------------------------------------------------------------------
# One request and what came back for it


class Exchange:
    """Everything the kernel sent in response to one request.

    reply   the reply (shell or control) or None
    iopub   iopub messages whose parent is the request, in arrival order,
            status messages included
    stdin   input_request messages for it
    order   ("reply" | "iopub" | "stdin", msg_type) in arrival order
    times   time.monotonic() of each arrival, parallel to order
    late    messages that arrived for it after reply and idle (settle > 0)
    """

    def __init__(self, msg_id, msg_type):
        self.msg_id = msg_id
        self.msg_type = msg_type
        self.reply = None
        self.iopub = []
        self.stdin = []
        self.order = []
        self.times = []
        self.late = []

    # -- shape -------------------------------------------------------------
    @property
    def idle_seen(self):
        return any(
            m["msg_type"] == "status" and m["content"]["execution_state"] == "idle"
            for m in self.iopub
        )

    @property
    def content(self):
        assert self.reply is not None, f"no reply to {self.msg_type}"
        return self.reply["content"]

    @property
    def status(self):
        return self.content["status"]

    @property
    def execution_count(self):
        return self.content.get("execution_count")

    @property
    def states(self):
        return [m["content"]["execution_state"] for m in self.iopub if m["msg_type"] == "status"]

    @property
    def msg_types(self):
        return [m["msg_type"] for m in self.iopub]

    @property
    def outputs(self):
        """iopub messages other than status and execute_input."""
        return [m for m in self.iopub if m["msg_type"] not in ("status", "execute_input")]

    def merged_outputs(self):
        """outputs with consecutive stream messages of one stream joined, as
        frontends show them: where a kernel splits its batches is its own
        business (a slow machine can flush mid-line)."""
        merged = []
        for m in self.outputs:
            last = merged[-1] if merged else None
            if (last is not None and m["msg_type"] == "stream" == last["msg_type"]
                    and m["content"]["name"] == last["content"]["name"]):
                text = last["content"]["text"] + m["content"]["text"]
                merged[-1] = {**last, "content": {**last["content"], "text": text}}
            else:
                merged.append(m)
        return merged

    def of_type(self, msg_type):
        return [m for m in self.iopub if m["msg_type"] == msg_type]

    def stream_text(self, name):
        return "".join(m["content"]["text"] for m in self.of_type("stream")
                       if m["content"]["name"] == name)

    @property
    def stdout(self):
        return self.stream_text("stdout")

    @property
    def stderr(self):
        return self.stream_text("stderr")

    @property
    def result(self):
        """The execute_result message (asserting there is at most one), or None."""
        results = self.of_type("execute_result")
        assert len(results) <= 1, f"{len(results)} execute_result messages: {results}"
        return results[0] if results else None

    @property
    def data(self):
        """The execute_result's mime bundle."""
        r = self.result
        assert r is not None, f"no execute_result; got {self.describe()}"
        return r["content"]["data"]

    @property
    def text(self):
        return self.data["text/plain"]

    def traceback_text(self):
        return strip_ansi("\n".join(self.content.get("traceback", [])))

    def ok(self):
        """Assert the reply is status ok; return self for chaining."""
        assert self.reply is not None, f"no reply; got {self.describe()}"
        if self.status != "ok":
            raise AssertionError(
                f"{self.msg_type} failed: {self.content.get('ename')}: "
                f"{self.content.get('evalue')}\n{self.traceback_text()}")
        return self

    def describe(self):
        parts = [f"{kind}:{t}" for kind, t in self.order]
        return f"{self.msg_type} {self.msg_id[-8:]} -> [{', '.join(parts)}]"


class Pending:
    """A request in flight; pump() feeds it, finish() waits for it to complete."""

    def __init__(self, kernel, exchange, expect_reply, stdin_handler):
        self.kernel = kernel
        self.x = exchange
        self.expect_reply = expect_reply
        self.stdin_handler = stdin_handler

    @property
    def done(self):
        return self.x.idle_seen and (self.x.reply is not None or not self.expect_reply)

    def wait_for_reply(self, timeout=TIMEOUT):
        """Wait for the reply only (not for idle)."""
        return self.wait_for(lambda x: x.reply is not None, timeout, "reply")

    def wait_for(self, predicate, timeout=TIMEOUT, what="condition"):
        """Pump until PREDICATE(exchange) is true.

        AssertionError on timeout, and at once if the kernel process dies
        (after a last look at what it sent before dying)."""
        deadline = time.monotonic() + timeout
        while not predicate(self.x):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                     f"got {self.x.describe()}")
            self.kernel.pump(min(left, 0.05))
            rc = self.kernel.returncode()
            if rc is not None and not predicate(self.x):
                self.kernel.pump(0.2)
                if not predicate(self.x):
                    raise AssertionError(
                        f"kernel died ({describe_exit(rc)}) while waiting for {what}; "
                        f"got {self.x.describe()}\n--- kernel log ---\n{self.kernel.log_tail()}")
        return self.x

    def wait_for_stdout(self, text, timeout=TIMEOUT):
        return self.wait_for(lambda x: text in x.stdout, timeout, f"stdout {text!r}")

    def wait_until_running(self, marker="started", timeout=TIMEOUT):
        """Wait until the cell's own code runs: its MARKER on stdout.

        Not execute_input alone, nor execute_input and a short wait: the
        kernel publishes execute_input before the cell's code starts, and an
        interrupt sent in between lands in the kernel's own code, where it is
        dropped by design; on a loaded machine the cell is then never
        interrupted."""
        self.wait_for(lambda x: "execute_input" in x.msg_types, timeout, "execute_input")
        return self.wait_for_stdout(marker, timeout=timeout)

    def finish(self, timeout=TIMEOUT, settle=0.0):
        """Wait for the reply (if one is expected) and the idle status.

        With SETTLE > 0, keep listening that long afterwards and record in
        exchange.late anything else that arrives for this request.
        """
        self.wait_for(lambda x: self.done, timeout, "reply and idle")
        if settle > 0:
            mark = len(self.x.order)
            end = time.monotonic() + settle
            while time.monotonic() < end:
                self.kernel.pump(0.05)
            self.x.late = self.x.order[mark:]
        return self.x


# ---------------------------------------------------------------------------
# The kernel


class KernelUnderTest:
    """One kernel process, its manager, and a blocking client.

    workdir         private directory: connection file, kernel log, and the
                    kernel's cwd (workdir/cwd)
    interrupt_mode  "signal" or "message", as a kernelspec would say
    history_file    ferry's history database (FERRY_HISTORY_FILE); default
                    workdir/history.sqlite, one per kernel
    """

    def __init__(self, workdir, interrupt_mode="signal", argv=None, history_file=None):
        self.workdir = Path(workdir)
        self.history_file = Path(history_file or self.workdir / "history.sqlite")
        self.cwd = self.workdir / "cwd"
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "kernel.log"
        self.spec = KernelSpec(
            argv=argv or kernel_argv(),
            display_name="kernel under test",
            language="python",
            interrupt_mode=interrupt_mode,
            env={},
            metadata={},
        )
        self.km = None
        self.kc = None
        self.pid = None
        self._buckets = {}  # parent msg_id -> Exchange
        self._pending = {}  # msg_id -> Pending (for stdin handlers)
        self._log = None
        self._stopped = False
        self._exit_status = None

    # -- life cycle --------------------------------------------------------
    def start(self):
        problem = check_kernel_program()
        if problem:
            raise RuntimeError(problem)
        km = KernelManager(
            ip="127.0.0.1",
            transport="tcp",
            connection_file=str(self.workdir / "connection.json"),
        )
        km.kernel_name = ""  # never look up an installed kernelspec
        km._kernel_spec = self.spec
        km.shutdown_wait_time = EXIT_TIMEOUT
        self.km = km
        self._log = open(self.log_path, "ab")
        # Not pytest's variables: ipykernel stops capturing fd-level output
        # when it sees PYTEST_CURRENT_TEST.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        # Keep IPython's history database out of the home directory.
        env["IPYTHONDIR"] = str(self.workdir / "ipython")
        # ...and ferry's: each kernel its own file, unless the test shares one.
        env["FERRY_HISTORY_FILE"] = str(self.history_file)
        km.start_kernel(cwd=str(self.cwd), env=env, stdout=self._log, stderr=self._log)
        self.pid = km.provisioner.process.pid
        kc = km.client()
        kc.allow_stdin = True
        kc.start_channels()
        self.kc = kc
        try:
            kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
        except RuntimeError as e:
            raise RuntimeError(f"kernel did not become ready: {e}\n{self.log_tail()}") from e
        return self

    def stop(self):
        """Shut the kernel down (kill it if it does not comply) and check that
        no process it started outlives it.  Safe to call twice."""
        if self._stopped or self.km is None:
            return
        self._stopped = True
        procs = process_tree(self.pid) if self.pid else []
        try:
            if self.kc is not None:
                self.kc.stop_channels()
        finally:
            try:
                if self.km.has_kernel:
                    self.km.shutdown_kernel(now=False)
            except Exception:
                self.km.shutdown_kernel(now=True)
            finally:
                if self._log is not None:
                    self._log.close()
        forced = getattr(self.km, "_shutdown_status", None)
        if forced is not None and forced.name in ("SigtermRequest", "SigkillRequest"):
            warnings.warn(f"kernel {self.pid} ignored shutdown_request for "
                          f"{EXIT_TIMEOUT / 2}s and got {forced.name}")
        reap_and_check(procs, pgid=self.pid)

    def log_tail(self, n=4000):
        try:
            return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def returncode(self):
        """The kernel process's exit status, or None while it runs."""
        prov = self.km.provisioner if self.km is not None else None
        if prov is None or prov.process is None:
            return self._exit_status
        self._exit_status = prov.process.poll()
        return self._exit_status

    def wait_exit(self, timeout=EXIT_TIMEOUT):
        """Wait for the kernel process to end; return its exit status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc = self.returncode()
            if rc is not None:
                return rc
            time.sleep(0.05)
        raise AssertionError(f"kernel still running {timeout}s after being told to stop")

    # -- messages ----------------------------------------------------------
    def _channel(self, name):
        return {"shell": self.kc.shell_channel, "control": self.kc.control_channel,
                "stdin": self.kc.stdin_channel, "iopub": self.kc.iopub_channel}[name]

    def send(self, msg_type, content=None, channel="shell", stdin_handler=None,
             expect_reply=True):
        """Send a request; return a Pending that collects what it causes."""
        msg = self.kc.session.msg(msg_type, content or {})
        self._channel(channel).send(msg)
        msg_id = msg["header"]["msg_id"]
        x = self._buckets.setdefault(msg_id, Exchange(msg_id, msg_type))
        x.msg_type = msg_type
        p = Pending(self, x, expect_reply, stdin_handler)
        self._pending[msg_id] = p
        return p

    def request(self, msg_type, content=None, channel="shell", timeout=TIMEOUT, settle=0.0):
        return self.send(msg_type, content, channel).finish(timeout, settle)

    def submit(self, code, *, silent=False, store_history=True, user_expressions=None,
               allow_stdin=None, stop_on_error=True, stdin_handler=None):
        content = {
            "code": code,
            "silent": silent,
            "store_history": store_history,
            "user_expressions": user_expressions or {},
            "allow_stdin": stdin_handler is not None if allow_stdin is None else allow_stdin,
            "stop_on_error": stop_on_error,
        }
        return self.send("execute_request", content, stdin_handler=stdin_handler)

    def execute(self, code, *, timeout=TIMEOUT, settle=0.0, **kw):
        """Run CODE and wait for its reply and idle; return the Exchange."""
        return self.submit(code, **kw).finish(timeout, settle)

    def pump(self, timeout):
        """Receive whatever is ready and file it under its parent request,
        waiting up to TIMEOUT for the first iopub message.

        The request channels are checked again before each iopub message is
        taken, so the recorded order of a reply against its iopub messages is
        the order in which they reached this client.
        """
        got = False
        while True:
            for name in ("shell", "control", "stdin"):
                got |= self._take(name, 0)
            if not self._take("iopub", timeout):
                return got
            got = True
            timeout = 0

    def _take(self, name, timeout):
        """Receive all ready messages of channel NAME (the first waiting up to
        TIMEOUT); for iopub, receive at most one."""
        get = getattr(self.kc, f"get_{name}_msg")
        got = False
        while True:
            try:
                msg = get(timeout=timeout)
            except Empty:
                return got
            got = True
            timeout = 0
            self._file(name, msg)
            if name == "iopub":
                return got

    def _file(self, channel, msg):
        parent = msg.get("parent_header", {}).get("msg_id")
        if not parent:
            return  # "starting" status and the like
        x = self._buckets.setdefault(parent, Exchange(parent, "?"))
        x.times.append(time.monotonic())
        if channel == "iopub":
            x.iopub.append(msg)
            x.order.append(("iopub", msg["msg_type"]))
        elif channel == "stdin":
            x.stdin.append(msg)
            x.order.append(("stdin", msg["msg_type"]))
            p = self._pending.get(parent)
            if msg["msg_type"] == "input_request" and p and p.stdin_handler:
                value = p.stdin_handler(msg["content"])
                self.kc.input(value)
        else:
            x.reply = msg
            x.order.append(("reply", msg["msg_type"]))

    def flush(self, timeout=0.2):
        """Discard whatever is queued (messages stay filed, nothing waits)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self.pump(0.05):
                break

    def messages_for(self, msg_id):
        """The Exchange of everything received so far with parent MSG_ID, or None."""
        return self._buckets.get(msg_id)

    def kernel_info(self, timeout=TIMEOUT):
        return self.request("kernel_info_request", timeout=timeout)


PORT_TAKEN = "Address already in use"
START_ATTEMPTS = 3


def start_kernel(workdir, **kw):
    """A started KernelUnderTest in WORKDIR.

    The client picks the kernel's ports and the kernel binds them a moment
    later (the connection file's design); on a busy machine another process
    can take one in between, and the kernel exits saying so.  A frontend's
    user would start it again, and so does this, on new ports."""
    for attempt in range(START_ATTEMPTS):
        where = Path(workdir) if attempt == 0 else Path(workdir) / f"start{attempt + 1}"
        k = KernelUnderTest(where, **kw)
        try:
            return k.start()
        except BaseException:
            k.stop()
            if attempt + 1 < START_ATTEMPTS and PORT_TAKEN in k.log_tail():
                continue
            raise
