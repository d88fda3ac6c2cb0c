"""`ferry` on a bare pseudo-terminal (python's pty module): the escapes it
writes when it knows it talks to a terminal."""

import os
import pty
import select
import signal
import time

from repl_harness import FERRY, env, kernel_args, repl_kernel  # noqa: F401


class Pty:
    def __init__(self, argv, env_vars):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become ferry
            try:
                os.execve(argv[0], argv, env_vars)
            finally:
                os._exit(127)
        self.data = b""

    def expect(self, needle, timeout=60):
        deadline = time.monotonic() + timeout
        while needle not in self.data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {needle!r}; got {self.data!r}")
            r, _, _ = select.select([self.fd], [], [], min(left, 0.2))
            if r:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"EOF waiting for {needle!r}; got {self.data!r}")
                self.data += chunk
        return self.data

    def write(self, data):
        os.write(self.fd, data)

    def wait(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.expect(b"\x00never", timeout=0.2)
            except AssertionError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.pid = None
                return os.waitstatus_to_exitcode(status)
        raise AssertionError(f"ferry did not exit; got {self.data!r}")

    def close(self):
        if self.pid:
            # SIGTERM lets ferry stop its kernel and remove its files.
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.wait(timeout=15)
            except AssertionError:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        os.close(self.fd)


def test_colour_prompts_and_ctrl_d_on_a_pty(env, repl_kernel):
    p = Pty([FERRY] + kernel_args(repl_kernel), dict(env.vars, TERM="xterm"))
    try:
        p.expect(b"In [\x1b[1;32m1")  # green prompt, bold number
        p.write(b"40 + 2\r")
        p.expect(b"\x1b[31mOut[\x1b[1m1\x1b[0;31m]:\x1b[0m 42")
        p.expect(b"In [\x1b[1;32m2")
        p.write(b"\x04")
        assert p.wait() == 0
    finally:
        p.close()


def test_no_colour_prompts_with_no_color(env, repl_kernel):
    p = Pty([FERRY] + kernel_args(repl_kernel), dict(env.vars, NO_COLOR="1"))
    try:
        p.expect(b"In [1]: ")
        p.write(b"'plain'\r")
        p.expect(b"Out[1]: 'plain'")
        p.expect(b"In [2]: ")  # readline reads keys only once it shows a prompt
        p.write(b"\x04")
        assert p.wait() == 0
    finally:
        p.close()


def test_cell_typed_the_moment_the_prompt_shows_runs_with_its_output(env, repl_kernel):
    """The first prompt is shown as soon as the kernel answers kernel_info;
    the iopub subscription and the is_complete round trip settle after it.
    A cell typed at once must still continue on Enter as the kernel says,
    and print all of its output."""
    p = Pty([FERRY] + kernel_args(repl_kernel), dict(env.vars, NO_COLOR="1"))
    try:
        p.expect(b"In [1]: ")
        p.write(b"for i in range(3):\r")
        p.expect(b"...: ")  # incomplete: a continuation line, indented
        p.write(b"print('line', i * 7)\r\r")
        p.expect(b"line 0\r\nline 7\r\nline 14\r\n")
        p.expect(b"In [2]: ")
        p.write(b"\x04")
        assert p.wait() == 0
    finally:
        p.close()
