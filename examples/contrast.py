"""Run a cell's code the way other Python front ends run it, and show what happens.

The example notebooks use this module to put the real failure next to the
fix: the same code is run in a plain interpreter (or in ipykernel, the
kernel Jupyter ships with), in a subprocess with a timeout, so that an error
is shown with its real text and a hang is shown as a hang - and the notebook
goes on.

    from contrast import plain, ipykernel
    plain(code)                 # code as stdin of `python3 -c "exec(stdin)"`:
                                # __main__ is interactive, as in a notebook
    plain(code, script=True)    # code saved to a file and run as `python3 file.py`
    ipykernel(code)             # code as one cell of a fresh ipykernel

Each prints what the run printed (stderr folded into the output, long
repetitive tracebacks cut) and how it ended, and keeps the Run in
contrast.last; expect="failed" (or "hung", "ok") checks the ending.
Everything the run started - pool workers included - is killed when it ends
or times out.  Only the standard library and jupyter_client are used, and only
Debian's /usr/bin/python3 is started.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

PYTHON = "/usr/bin/python3"

# `python3 -c` leaves __main__ without __file__, exactly like a notebook
# kernel: spawn and forkserver children then have no script to re-run, so
# they cannot see what the cell defined.
_INTERACTIVE = "import sys; exec(compile(sys.stdin.read(), '<cell>', 'exec'))"

# A child inherits its parent's blocked signals, and a kernel may block some
# in the thread that runs cells (ferry blocks SIGTERM there for its signal
# thread).  A plain interpreter whose pool workers ignore SIGTERM can hang in
# Pool.terminate(), which is not the failure being taught; so every run starts
# through this shim, which unblocks all signals and execs the real command.
_CLEAN_SIGNALS = ("import os, signal, sys; "
                  "signal.pthread_sigmask(signal.SIG_SETMASK, []); "
                  "os.execv(sys.argv[1], sys.argv[1:])")


def _clean(argv):
    return [PYTHON, "-c", _CLEAN_SIGNALS] + argv


class Run:
    """How one run ended: .status is 'ok', 'failed' or 'hung'."""

    def __init__(self, status, output, seconds, returncode=None):
        self.status = status
        self.output = output
        self.seconds = seconds
        self.returncode = returncode

    def __repr__(self):
        return f"<Run {self.status} after {self.seconds:.1f} s>"


_EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception|Interrupt|Exit)\b")


def _fold(text, head, tail):
    """Keeps the first `head` and last `tail` lines of a long output, and in
    between only the exception lines, each once: a pool repeats the same
    traceback for every worker it loses."""
    lines = text.rstrip("\n").splitlines()
    if len(lines) <= head + tail + 1:
        return "\n".join(lines)
    middle = lines[head:len(lines) - tail]
    kept = []
    for line in middle:
        if _EXCEPTION_LINE.match(line) and line not in kept \
                and line not in lines[:head]:
            kept.append(line)
    tracebacks = sum(1 for line in lines if line.startswith("Traceback"))
    note = f"    [... {len(middle) - len(kept)} more lines"
    if tracebacks > 1:
        note += f"; {tracebacks} tracebacks in all"
    note += "; the errors among them:]" if kept else " ...]"
    return "\n".join(lines[:head] + [note] + kept + ["    [...]"] * bool(kept)
                     + lines[-tail:])


def _report(label, status, seconds, returncode, output, head, tail):
    if status == "hung":
        how = f"HUNG - still running after {seconds:.0f} s; killed it and its children"
    elif status == "ok":
        how = f"finished normally in {seconds:.1f} s"
    else:
        how = f"FAILED (exit code {returncode}) after {seconds:.1f} s"
    print(f"--- {label}: {how}")
    body = _fold(output, head, tail)
    if body:
        print(textwrap.indent(body, "  | ", lambda line: True))
    print("---")


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _descendants(pid):
    try:
        import psutil
        return psutil.Process(pid).children(recursive=True) if pid else []
    except Exception:  # psutil missing, or the process already gone
        return []


def _kill_all(procs):
    for proc in procs:
        try:
            proc.kill()
        except Exception:  # already gone
            pass


def plain(code, *, expect=None, timeout=4, script=False, head=18, tail=4,
          start_method=None, cwd=None):
    """Runs `code` in a fresh /usr/bin/python3 and prints how it went.

    script=False feeds the code on stdin to `python3 -c` (an interactive
    __main__, as in a notebook); script=True saves it as a file and runs
    `python3 FILE`, as a terminal user would.  The run is killed, with every
    process it started, after `timeout` seconds.  start_method, when given,
    is set with multiprocessing.set_start_method first (Linux defaults to
    fork; macOS and Windows - and Python 3.14 on Linux - do not).  cwd is
    the directory to run in (a fresh temporary one by default); in the
    interactive form it is on sys.path, as a notebook's directory is.

    expect ('ok', 'failed' or 'hung') is what the example says will happen;
    anything else raises AssertionError, so a notebook run in CI fails when
    the failure it teaches stops being real."""
    code = textwrap.dedent(code)
    if start_method:
        code = (f"import multiprocessing\n"
                f"multiprocessing.set_start_method({start_method!r})\n") + code
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    with tempfile.TemporaryDirectory(prefix="contrast-") as tmp:
        if script:
            path = os.path.join(tmp, "script.py")
            with open(path, "w") as f:
                f.write(code)
            argv, stdin = [PYTHON, path], subprocess.DEVNULL
            label = "python3 script.py"
        else:
            argv, stdin = [PYTHON, "-c", _INTERACTIVE], subprocess.PIPE
            label = "plain python3, code typed into an interactive __main__"
        started = time.monotonic()
        proc = subprocess.Popen(_clean(argv), stdin=stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, cwd=cwd or tmp, env=env,
                                start_new_session=True, text=True)
        try:
            out, _ = proc.communicate(None if script else code, timeout=timeout)
            status = "ok" if proc.returncode == 0 else "failed"
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, _ = proc.communicate()
            status = "hung"
        finally:
            _kill_group(proc)  # pool workers and resource trackers too
        seconds = time.monotonic() - started
    # Paths of the temporary directory say nothing to a reader.
    out = out.replace(tmp + "/", "")
    _report(label, status, seconds, proc.returncode, out, head, tail)
    _expect(expect, Run(status, out, seconds, proc.returncode))


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def ipykernel(code, *, expect=None, timeout=4, head=18, tail=4):
    """Runs `code` as one cell of a fresh ipykernel and prints what the
    notebook would show (and, when that is nothing, what the kernel's
    terminal showed).  A cell still running after
    `timeout` seconds is reported as hung; the kernel is then shut down,
    workers included.  expect is as for plain()."""
    # jupyter_client may import ipykernel (and so debugpy) in this process when
    # it lists kernelspecs; without this, debugpy warns on our stderr.
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    code = textwrap.dedent(code)
    shown = []

    def hook(msg):
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            shown.append(content["text"])
        elif kind == "error":
            shown.append(_ANSI.sub("", "\n".join(content["traceback"])) + "\n")
        elif kind in ("execute_result", "display_data"):
            shown.append(content["data"].get("text/plain", "") + "\n")

    with tempfile.TemporaryDirectory(prefix="contrast-") as tmp, \
            open(os.path.join(tmp, "kernel.log"), "w+") as log:
        spec_dir = os.path.join(tmp, "kernels", "ipykernel")
        os.makedirs(spec_dir)
        with open(os.path.join(spec_dir, "kernel.json"), "w") as f:
            json.dump({"argv": _clean([PYTHON, "-m", "ipykernel_launcher",
                                       "-f", "{connection_file}"]),
                       "display_name": "ipykernel", "language": "python"}, f)
        km = KernelManager(kernel_name="ipykernel",
                           kernel_spec_manager=KernelSpecManager(
                               kernel_dirs=[os.path.dirname(spec_dir)]))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        km.start_kernel(stdout=log, stderr=log, cwd=tmp, env=env,
                        extra_arguments=["--HistoryManager.enabled=False"])
        kc = km.client()
        kc.start_channels()
        status, started = "failed", time.monotonic()
        try:
            kc.wait_for_ready(timeout=30)
            started = time.monotonic()
            try:
                reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook,
                                               allow_stdin=False)
                status = "ok" if reply["content"]["status"] == "ok" else "failed"
            except TimeoutError:
                status = "hung"
            seconds = time.monotonic() - started
        finally:
            # The kernel's pool workers are its children: take them down too,
            # whatever state the hang left them in.
            children = _descendants(getattr(km.provisioner, "pid", None))
            kc.stop_channels()
            km.shutdown_kernel(now=True)
            _kill_all(children)
        log.seek(0)
        terminal = "".join(line for line in log
                           if "Debugger warning" not in line and not line.startswith("0.00s"))
    label = "ipykernel"
    if status == "hung":
        how = f"HUNG - cell still running after {seconds:.0f} s; shut the kernel down"
    elif status == "ok":
        how = f"cell finished in {seconds:.1f} s"
    else:
        how = f"cell FAILED after {seconds:.1f} s"
    print(f"--- {label}: {how}")
    print("  notebook output:")
    body = _fold("".join(shown), head, tail) or "(nothing)"
    print(textwrap.indent(body, "  | ", lambda line: True))
    if terminal.strip() and not shown:
        print("  the kernel's terminal:")
        print(textwrap.indent(_fold(terminal, head, tail), "  | ", lambda line: True))
    print("---")
    _expect(expect, Run(status, "".join(shown) + terminal, seconds))


last = None  # the Run of the latest plain() or ipykernel() call


def _expect(expect, run):
    global last
    last = run
    if expect is not None and run.status != expect:
        raise AssertionError(f"this example expects the run to end {expect!r}, "
                             f"but it ended {run.status!r}")


if __name__ == "__main__":
    sys.exit("contrast is imported by the example notebooks; see examples/README.md")
