"""A minimal Jupyter client on raw pyzmq, for measuring kernels.

Why not jupyter_client: its start-up waits (wait_for_ready) poll with fixed
sleeps, and its message handling (full JSON parse, date parsing, signature
check of every message) costs more per message than some of the things we
time.  Here the sockets connect while the kernel is still starting, a
message is signed on the way out, and on the way in only the header and the
parent header are parsed; content is parsed on demand.  Both kernels under
test go through exactly the same code, so its cost cancels out of the ratios
as far as it can.

A Kernel is launched as its own session (so a Ctrl-C on `make bench` does not
reach it) and is always stopped by its pid: shutdown_request, then SIGKILL to
the processes it started (found with psutil before the kill).
"""

import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import psutil
import zmq

DELIM = b"<IDS|MSG>"
_ctx = zmq.Context.instance()
_session = uuid.uuid4().hex


class KernelDied(RuntimeError):
    pass


class Timeout(RuntimeError):
    pass


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (held until all are chosen)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class Msg:
    """A received message; content is parsed the first time it is read."""

    __slots__ = ("channel", "header", "parent", "_content", "t")

    def __init__(self, channel, frames, t):
        i = frames.index(DELIM)
        self.channel = channel
        self.header = json.loads(frames[i + 2])
        self.parent = json.loads(frames[i + 3])
        self._content = frames[i + 5]
        self.t = t

    @property
    def type(self):
        return self.header.get("msg_type")

    @property
    def parent_id(self):
        return self.parent.get("msg_id")

    @property
    def content(self):
        if isinstance(self._content, bytes):
            self._content = json.loads(self._content)
        return self._content


class Kernel:
    """One kernel process and this client's sockets to it."""

    def __init__(self, name, argv_template, env=None):
        self.name = name
        self.argv_template = argv_template
        self.env = env
        self.proc = None
        self.dir = None
        self.key = uuid.uuid4().hex.encode()
        self.sockets = {}
        self.poller = None
        self.t_launch = None

    # ---- launch and stop -------------------------------------------------

    def launch(self):
        """Writes a connection file, starts the kernel and connects at once;
        returns the perf_counter time of the Popen call."""
        # Short private directory: ipc paths and the kernel's own runtime
        # directory derive from it in some set-ups.
        self.dir = tempfile.mkdtemp(prefix="fb-", dir="/tmp")
        ports = free_ports(5)
        conn = {
            "transport": "tcp", "ip": "127.0.0.1",
            "shell_port": ports[0], "iopub_port": ports[1],
            "stdin_port": ports[2], "control_port": ports[3], "hb_port": ports[4],
            "key": self.key.decode(), "signature_scheme": "hmac-sha256",
            "kernel_name": self.name,
        }
        self.conn_file = os.path.join(self.dir, "kernel.json")
        fd = os.open(self.conn_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(conn, f)
        argv = [a.replace("{connection_file}", self.conn_file) for a in self.argv_template]
        self.log_path = os.path.join(self.dir, "kernel.log")
        log = open(self.log_path, "wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, env=self.env,
                                     start_new_session=True, close_fds=True)
        log.close()
        self.t_launch = t0
        self._connect(conn)
        return t0

    def _connect(self, conn):
        url = "tcp://127.0.0.1:%d"
        self.poller = zmq.Poller()
        for chan, kind in (("shell", zmq.DEALER), ("control", zmq.DEALER),
                           ("iopub", zmq.SUB)):
            s = _ctx.socket(kind)
            s.linger = 0
            # The default reconnect interval (100 ms) would quantise the
            # measured start-up; retry every millisecond instead.
            s.setsockopt(zmq.RECONNECT_IVL, 1)
            s.setsockopt(zmq.RECONNECT_IVL_MAX, 5)
            if kind == zmq.SUB:
                s.setsockopt(zmq.SUBSCRIBE, b"")
                s.setsockopt(zmq.RCVHWM, 0)   # never drop what the kernel sends
            else:
                s.setsockopt(zmq.IDENTITY, uuid.uuid4().hex.encode())
            s.connect(url % conn[chan + "_port"])
            self.sockets[chan] = s
            self.poller.register(s, zmq.POLLIN)
        self._by_sock = {s: c for c, s in self.sockets.items()}

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=1500):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
            return data[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def tree(self):
        """psutil.Process objects of the kernel and every descendant."""
        try:
            p = psutil.Process(self.proc.pid)
            return [p] + p.children(recursive=True)
        except psutil.Error:
            return []

    def stop(self, grace=2.0):
        """shutdown_request, then SIGKILL to whatever of its tree is left."""
        if self.proc is None:
            return
        procs = self.tree()
        if self.alive():
            try:
                self.send("control", "shutdown_request", {"restart": False})
                self.proc.wait(grace)
            except (subprocess.TimeoutExpired, zmq.ZMQError):
                pass
        for p in procs:
            try:
                p.kill()
            except psutil.Error:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        for s in self.sockets.values():
            s.close(0)
        self.sockets = {}
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.proc = None

    # ---- messages --------------------------------------------------------

    def send(self, channel, msg_type, content):
        msg_id = uuid.uuid4().hex
        header = json.dumps({
            "msg_id": msg_id, "msg_type": msg_type, "username": "bench",
            "session": _session, "date": "2026-01-01T00:00:00.000000Z",
            "version": "5.3"}).encode()
        parts = [header, b"{}", b"{}", json.dumps(content).encode()]
        h = hmac.new(self.key, digestmod=hashlib.sha256)
        for p in parts:
            h.update(p)
        self.sockets[channel].send_multipart([DELIM, h.hexdigest().encode()] + parts)
        return msg_id

    def execute_send(self, code, silent=False, store_history=True):
        return self.send("shell", "execute_request", {
            "code": code, "silent": silent, "store_history": store_history,
            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})

    def poll(self, timeout_s):
        """Waits up to timeout_s; returns the messages that arrived (each
        stamped with the perf_counter time it was read)."""
        out = []
        events = self.poller.poll(max(0, int(timeout_s * 1000)))
        t = time.perf_counter()
        for sock, _ in events:
            chan = self._by_sock[sock]
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                out.append(Msg(chan, frames, t))
        return out

    def drain(self, quiet_s=0.05):
        """Reads and drops messages until the sockets are quiet for quiet_s."""
        while self.poll(quiet_s):
            pass

    def run_until(self, done, timeout, on_msg=None):
        """Feeds messages to on_msg until done() is true; raises Timeout or
        KernelDied."""
        deadline = time.perf_counter() + timeout
        while not done():
            left = deadline - time.perf_counter()
            if left <= 0:
                raise Timeout("%s: no answer within %.0f s" % (self.name, timeout))
            for m in self.poll(min(left, 0.5)):
                if on_msg:
                    on_msg(m)
            if not done() and not self.alive():
                raise KernelDied("%s exited (%s); log:\n%s" % (
                    self.name, self.proc.returncode, self.log_tail()))

    def interrupt_cell(self, code, after, timeout=15.0):
        """Runs code, sends SIGINT to the kernel `after` seconds into it, and
        returns the seconds from the signal to the execute_reply, once the
        kernel is idle again (a request sent earlier would be aborted with
        the interrupted cell).  RuntimeError when the reply is not a
        KeyboardInterrupt; Timeout or KernelDied as run_until."""
        self.drain(0.02)
        mid = self.execute_send(code)
        st = {}

        def on_msg(m):
            if m.parent_id != mid:
                return
            if m.channel == "iopub" and m.type == "execute_input":
                st["running"] = True
            elif m.channel == "shell" and m.type == "execute_reply":
                st["t"], st["c"] = m.t, m.content
            elif (m.channel == "iopub" and m.type == "status"
                  and m.content["execution_state"] == "idle"):
                st["idle"] = True

        self.run_until(lambda: "running" in st, timeout, on_msg)
        time.sleep(after)
        t0 = time.perf_counter()
        os.kill(self.proc.pid, signal.SIGINT)
        self.run_until(lambda: "t" in st and "idle" in st, timeout, on_msg)
        if st["c"].get("ename") != "KeyboardInterrupt":
            raise RuntimeError("%s: the reply was %s %s" % (
                self.name, st["c"].get("status"), st["c"].get("ename")))
        return st["t"] - t0

    def wait_ready(self, timeout=60.0):
        """Polls kernel_info until a reply comes (resent every 0.5 s, as the
        sockets may connect only after the first try), then makes sure iopub
        delivers (a kernel_info's busy/idle reaches us).  Returns the time of
        the first kernel_info_reply."""
        first = {}
        pending = set()
        last_send = [0.0]

        def resend():
            now = time.perf_counter()
            if now - last_send[0] >= 0.5:
                pending.add(self.send("shell", "kernel_info_request", {}))
                last_send[0] = now

        def on_msg(m):
            if m.channel == "shell" and m.type == "kernel_info_reply" and "t" not in first:
                first["t"] = m.t
            if m.channel == "iopub" and m.type == "status" and m.parent_id in pending:
                first["iopub"] = m.t

        deadline = time.perf_counter() + timeout
        while "t" not in first or "iopub" not in first:
            if time.perf_counter() > deadline:
                raise Timeout("%s: no kernel_info_reply within %.0f s; log:\n%s"
                              % (self.name, timeout, self.log_tail()))
            resend()
            for m in self.poll(0.02):
                on_msg(m)
            if not self.alive():
                raise KernelDied("%s exited (%s) during start; log:\n%s" % (
                    self.name, self.proc.returncode, self.log_tail()))
        self.drain(0.05)
        return first["t"]

    def execute(self, code, timeout=60.0, want_stream=False):
        """Runs code; returns a dict with t0, t_reply, t_idle, the reply
        content, the execute_result text (if any) and the stream text."""
        r = {"stream": [], "result": None, "error": None}
        t0 = time.perf_counter()
        mid = self.execute_send(code)
        r["t0"] = t0

        def on_msg(m):
            if m.parent_id != mid:
                return
            if m.channel == "shell" and m.type == "execute_reply":
                r["t_reply"] = m.t
                r["reply"] = m.content
            elif m.channel == "iopub":
                if m.type == "status" and m.content["execution_state"] == "idle":
                    r["t_idle"] = m.t
                elif m.type == "stream" and want_stream:
                    r["stream"].append(m.content["text"])
                elif m.type == "execute_result":
                    r["result"] = m.content["data"].get("text/plain")
                elif m.type == "error":
                    r["error"] = m.content

        self.run_until(lambda: "t_reply" in r and "t_idle" in r, timeout, on_msg)
        return r

    def eval(self, code, timeout=60.0):
        """Runs code whose last line is an expression; returns that
        expression's value as parsed by json (the expression should produce a
        JSON string through json.dumps)."""
        r = self.execute(code, timeout=timeout)
        if r["reply"].get("status") != "ok":
            err = r["error"] or r["reply"]
            raise RuntimeError("%s: cell failed: %s: %s" % (
                self.name, err.get("ename"), err.get("evalue")))
        text = r["result"]
        if text is None:
            raise RuntimeError("%s: cell gave no result" % self.name)
        # text/plain of a str is its repr
        import ast
        return json.loads(ast.literal_eval(text))

    def request(self, channel, msg_type, content, reply_type, timeout=30.0):
        """One request; returns (elapsed seconds to its reply, reply content)."""
        r = {}
        t0 = time.perf_counter()
        mid = self.send(channel, msg_type, content)

        def on_msg(m):
            if m.channel == channel and m.type == reply_type and m.parent_id == mid:
                r["t"] = m.t
                r["c"] = m.content

        self.run_until(lambda: "t" in r, timeout, on_msg)
        return r["t"] - t0, r["c"]


def kernelspec_argv(name):
    """argv of an installed kernelspec, found without importing jupyter_client
    (only the JSON file is needed)."""
    from jupyter_client.kernelspec import KernelSpecManager
    return KernelSpecManager().get_kernel_spec(name).argv


def kill_quietly(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except OSError:
        pass
