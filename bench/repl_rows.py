"""REPL row: from exec to the first `In [1]:` prompt on a pseudo-terminal,
ferry's terminal REPL against `jupyter console` (on the python3 kernelspec).

Both are started on a fresh pty (80x24) in a session of their own.  The clock
runs from just before the fork to the read that completes the prompt text
(escape sequences removed).  prompt_toolkit asks the terminal for the cursor
position (ESC [6n) and waits for the answer; a real terminal answers at once,
so this driver does too (ESC [1;1R), or jupyter console would be timed
against a missing terminal feature.  Afterwards the REPL is asked to exit
(Ctrl-D), and whatever it started is killed by pid after a grace period.
"""

import fcntl
import os
import re
import select
import shutil
import struct
import subprocess
import termios
import time

import psutil

from report import Row

PROMPT = re.compile(rb"In \[1\]: ?")
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[=>]|\r")
CPR = b"\x1b[6n"


def time_to_prompt(argv, timeout):
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="80", LINES="24")
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                         start_new_session=True, close_fds=True)
    os.close(slave)
    buf = b""
    t = None
    try:
        deadline = t0 + timeout
        while t is None:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise RuntimeError("no prompt within %.0f s; screen: %r" % (
                    timeout, ANSI.sub(b"", buf)[-200:]))
            r, _, _ = select.select([master], [], [], left)
            if not r:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            if not data:
                raise RuntimeError("exited (%s) before the prompt; screen: %r" % (
                    p.poll(), ANSI.sub(b"", buf)[-300:]))
            now = time.perf_counter()
            buf += data
            if CPR in data:
                os.write(master, b"\x1b[1;1R" * data.count(CPR))
            if PROMPT.search(ANSI.sub(b"", buf)):
                t = now - t0
        return t
    finally:
        stop(p, master)


def stop(p, master):
    try:
        procs = [psutil.Process(p.pid)] + psutil.Process(p.pid).children(recursive=True)
    except psutil.Error:
        procs = []
    # Ctrl-D on an empty line exits; jupyter console first asks
    # "Do you really want to exit ([y]/n)?", hence the "y" a moment later.
    for keys, wait in ((b"\x04", 1.0), (b"y\r", 3.0)):
        try:
            os.write(master, keys)
        except OSError:
            break
        deadline = time.time() + wait
        while time.time() < deadline and p.poll() is None:
            try:                        # keep the pty drained so it can exit
                if select.select([master], [], [], 0.05)[0]:
                    os.read(master, 65536)
            except OSError:
                break
        if p.poll() is not None:
            break
    for q in procs:
        try:
            q.kill()
        except psutil.Error:
            pass
    p.wait()
    os.close(master)


def run(cfg, repl_path, log):
    console = shutil.which("jupyter-console") or "/usr/bin/jupyter-console"
    row = Row("repl", "start → first `In [1]:` prompt (pty)", "time", "s",
              "jupyter console", ("<=", 0.2))
    sides = [("ferry", [repl_path]), ("jupyter console", [console, "--kernel", "python3"])]
    if not os.access(repl_path, os.X_OK):
        # jupyter console is still timed, so the row shows what ferry must beat.
        row.skipped = "ferry REPL not built (%s)" % os.path.relpath(repl_path)
        log("repl: %s" % row.skipped)
        sides = sides[1:]
    log("repl: %d rounds" % cfg.repl_rounds)
    for rnd in range(cfg.repl_rounds):
        res = {}
        for name, argv in (sides if rnd % 2 == 0 else sides[::-1]):
            try:
                res[name] = time_to_prompt(argv, 30)
            except (RuntimeError, OSError) as e:
                res[name] = None
                row.fail("%s: %s" % (name, e))
        row.add(res.get("ferry"), res["jupyter console"])
    return [row]
