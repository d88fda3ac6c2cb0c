"""The magics notebooks use daily (%time, %timeit, !cmd, %cd, %%capture,
...), run by get_ipython()'s facade (ferry._facade) for the calls that
ferry._transform writes into a cell.  Unknown magics raise UsageError naming
the magic, when the line is reached, as in IPython.
"""
import ast
import codecs
import io
import math
import os
import re
import sys
import time

from . import _mpl_backend
from ._autoreload import autoreloader
from ._transform import transform

# subprocess, shlex, timeit and tokenize are imported by the magics that use
# them: most cells are plain Python, and the kernel idles lighter without.

# Cell magics whose body is shown as it is, under this MIME type.
_RAW_CELLS = {"html": "text/html", "markdown": "text/markdown", "latex": "text/latex",
              "svg": "image/svg+xml", "javascript": "application/javascript",
              "js": "application/javascript"}


class UsageError(Exception):
    """A magic was misused or does not exist (IPython's name for it).  Shown
    as its message alone, without a traceback, as IPython does."""
    _ferry_brief = True


def _format_time(seconds):
    if seconds >= 1:
        return f"{seconds:.3g} s" if seconds < 60 else \
            f"{int(seconds // 60)}min {seconds % 60:.0f}s"
    for unit, scale in (("ms", 1e3), ("µs", 1e6), ("ns", 1e9)):
        if seconds * scale >= 1 or unit == "ns":
            return f"{seconds * scale:.3g} {unit}"
    return f"{seconds:.3g} s"


def _expand(cmd, ns):
    """IPython's variable expansion in shell commands: {expr} and $name
    ($$ and {{ }} stay literal)."""
    def brace(m):
        text = m.group(0)
        if text.startswith("{{"):
            return text[1:-1]
        try:
            return str(eval(m.group(1), ns))
        except Exception:
            return text

    def dollar(m):
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return str(ns[name]) if name in ns else m.group(0)

    cmd = re.sub(r"\{\{[^{}]*\}\}|\{([^{}]+)\}", brace, cmd)
    return re.sub(r"\$\$|\$([A-Za-z_]\w*)", dollar, cmd)


class Magics:
    """The magics and shell escapes, run for get_ipython()'s facade."""

    def __init__(self, shell):
        self._shell = shell
        self._line = {"time": self._time, "timeit": self._timeit, "cd": self._cd,
                      "pwd": self._pwd, "env": self._env, "who": self._who,
                      "who_ls": self._who_ls, "whos": self._whos,
                      "matplotlib": self._matplotlib, "pinfo": self._pinfo,
                      "pinfo2": self._pinfo2, "lsmagic": self._lsmagic,
                      "sx": self.getoutput, "system": self.system, "pip": self._pip,
                      "run": self._run, "load_ext": self._load_ext,
                      "autoreload": self._autoreload, "reset": self._reset}
        self._cell = {"time": self._cell_time, "timeit": self._cell_timeit,
                      "bash": self._cell_shell, "sh": self._cell_shell,
                      "writefile": self._cell_writefile, "capture": self._cell_capture}
        for name, mime in _RAW_CELLS.items():
            self._cell[name] = self._raw_display(mime)
        self._oldpwd = None
        self.hidden = set(shell.ns)  # the kernel's names, not the user's

    def find_line_magic(self, name):
        return self._line.get(name)

    def find_cell_magic(self, name):
        return self._cell.get(name)

    def _unknown(self, prefix, name):
        if name.startswith("%"):
            return UsageError(f"%{name}: a cell magic must be the first line of its cell")
        line = ", ".join("%" + n for n in sorted(self._line) if not n.startswith("pinfo"))
        cell = ", ".join("%%" + n for n in sorted(self._cell))
        return UsageError(f"{prefix}{name}: no such magic in ferry. "
                          f"Line magics: {line}. Cell magics: {cell}.")

    def run_line_magic(self, magic_name, line, _stack_depth=1):
        """_stack_depth: how many frames up the cell's code is (for %time
        inside a function)."""
        fn = self._line.get(magic_name)
        if fn is None:
            raise self._unknown("%", magic_name)
        if magic_name in ("time", "timeit"):
            # Inside a function, time the code in the function's scope.
            frame = sys._getframe(_stack_depth)
            return fn(line, frame.f_globals, frame.f_locals)
        return fn(line)

    def run_cell_magic(self, magic_name, line, cell, filename):
        """filename: the cell's, so the body's tracebacks point at it."""
        fn = self._cell.get(magic_name)
        if fn is None:
            raise self._unknown("%%", magic_name)
        return fn(line, cell, filename)

    def system(self, cmd):
        """Runs cmd in a shell; its output goes to the cell as it comes.  The
        exit status is kept in `_exit_code`, as IPython does."""
        import subprocess
        cmd = _expand(cmd, self._shell.ns)
        sys.stdout.flush()
        sys.stderr.flush()
        proc = subprocess.Popen(cmd, shell=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        # Incremental: a character split across two reads stays whole.
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        try:
            while True:
                chunk = proc.stdout.read1(65536)
                text = decoder.decode(chunk, final=not chunk)
                if text:
                    sys.stdout.write(text)
                    sys.stdout.flush()
                if not chunk:
                    break
            code = proc.wait()
        except KeyboardInterrupt:
            _kill(proc)
            raise
        finally:
            proc.stdout.close()
        self._shell.ns["_exit_code"] = code if code >= 0 else 128 - code
        return None

    def getoutput(self, cmd):
        """Runs cmd in a shell; returns its output as a list of lines."""
        import subprocess
        cmd = _expand(cmd, self._shell.ns)
        proc = subprocess.Popen(cmd, shell=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            out, _ = proc.communicate()
        except KeyboardInterrupt:
            _kill(proc)
            raise
        self._shell.ns["_exit_code"] = proc.returncode
        return out.decode("utf-8", "replace").splitlines()

    # -- running code --------------------------------------------------------
    def _run_body(self, body, filename):
        """Runs a cell magic's body as the kernel runs a cell (statement by
        statement, definitions recorded for the workers); returns the value
        of a trailing expression."""
        code = transform(body)
        tree = ast.parse(code, filename)
        nodes = tree.body
        last = None
        if nodes and isinstance(nodes[-1], ast.Expr) and not code.rstrip().endswith(";"):
            last = nodes.pop()
        for node in nodes:
            self._shell._run_node(node, code, filename)
        return self._shell._eval(last.value, filename) if last is not None else None

    def _compile(self, src, filename="<magic>"):
        """(code, is_expression) for a line magic's argument."""
        src = transform(src)
        try:
            return compile(src, filename, "eval"), True
        except SyntaxError:
            return compile(src, filename, "exec"), False

    # -- the magics ----------------------------------------------------------
    def _time(self, line, glob=None, local=None):
        code, is_expr = self._compile(line, "<timed exec>" if line else "<magic>")
        glob = self._shell.ns if glob is None else glob
        t0, c0 = time.perf_counter(), os.times()
        try:
            value = eval(code, glob, glob if local is None else local)
        finally:
            _report_time(t0, c0)
        return value if is_expr else None

    def _cell_time(self, line, cell, filename):
        t0, c0 = time.perf_counter(), os.times()
        try:
            return self._run_body(cell, filename)
        finally:
            _report_time(t0, c0)

    def _parse_timeit(self, line):
        import shlex
        try:
            args = shlex.split(line, posix=False)
        except ValueError:
            args = line.split()
        opts = {"n": None, "r": 7, "q": False, "o": False}
        rest = []
        i = 0
        while i < len(args):
            a = args[i]
            if a in ("-n", "-r") and i + 1 < len(args):
                opts[a[1]] = int(args[i + 1])
                i += 2
                continue
            if re.fullmatch(r"-[nr]\d+", a):
                opts[a[1]] = int(a[2:])
            elif a in ("-q", "-o"):
                opts[a[1]] = True
            else:
                rest = args[i:]
                break
            i += 1
        # Keep the statement as typed, not as shlex split it.
        stmt = line[line.find(rest[0]):] if rest else ""
        return opts, stmt

    def _timeit(self, line, glob=None, local=None):
        opts, stmt = self._parse_timeit(line)
        if not stmt.strip():
            raise UsageError("%timeit: give a statement to time, e.g. %timeit sum(range(100))")
        ns = None
        if glob is not None and local is not None and local is not glob:
            ns = {**glob, **local}
        return self._time_repeatedly(opts, stmt, "pass", ns)

    def _cell_timeit(self, line, cell, filename):
        # The body is the statement; what follows the options is the setup.
        opts, setup = self._parse_timeit(line)
        if not cell.strip():
            raise UsageError("%%timeit: the cell below the magic is what is timed")
        return self._time_repeatedly(opts, cell.strip("\n"), setup.strip() or "pass")

    def _time_repeatedly(self, opts, stmt, setup, ns=None):
        import textwrap
        import timeit
        timer = timeit.Timer(transform(textwrap.dedent(stmt)), transform(setup),
                             globals=self._shell.ns if ns is None else ns)
        number = opts["n"]
        if number is None:  # as IPython: grow the loop count until a run takes 0.2 s
            number = 1
            for _ in range(10):
                if timer.timeit(number) >= 0.2:
                    break
                number *= 10
        runs = [t / number for t in timer.repeat(opts["r"], number)]
        result = TimeitResult(number, opts["r"], runs)
        if not opts["q"]:
            print(result)
        return result if opts["o"] else None

    def _cd(self, line):
        target = line.strip().strip("'\"")
        if not target:
            target = os.path.expanduser("~")
        elif target == "-":
            if self._oldpwd is None:
                raise UsageError("%cd -: no previous directory")
            target = self._oldpwd
        target = os.path.expanduser(_expand(target, self._shell.ns))
        old = os.getcwd()
        try:
            os.chdir(target)
        except OSError as e:
            raise UsageError(f"%cd: {e.strerror}: {target}") from None
        self._oldpwd = old
        print(os.getcwd())

    def _pwd(self, line):
        return os.getcwd()

    def _env(self, line):
        line = line.strip()
        if not line:
            # as IPython: a listing that ends up in a shared notebook hides
            # what looks like a secret
            return {k: "<hidden>" if any(s in k.lower() for s in ("key", "token", "secret"))
                    else v for k, v in os.environ.items()}
        m = re.match(r"^([^=\s]+)\s*[=\s]\s*(.*)$", line)
        if m:
            name, value = m.group(1), _expand(m.group(2), self._shell.ns)
            os.environ[name] = value
            print(f"env: {name}={value}")
            return None
        if line not in os.environ:
            raise UsageError(f"%env: environment does not have key: {line}")
        return os.environ[line]

    def _user_names(self, line=""):
        types = line.split()
        names = []
        for name, value in self._shell.ns.items():
            if name.startswith("_") or name in self.hidden:
                continue
            if types and type(value).__name__ not in types:
                continue
            names.append(name)
        return sorted(names)

    def _who(self, line):
        names = self._user_names(line)
        print("\t".join(names) if names else "Interactive namespace is empty.")

    def _who_ls(self, line):
        return self._user_names(line)

    def _whos(self, line):
        names = self._user_names(line)
        if not names:
            print("Interactive namespace is empty.")
            return
        rows = []
        for name in names:
            value = self._shell.ns[name]
            try:
                text = repr(value)
            except Exception:
                text = "<repr failed>"
            text = text.replace("\n", " ")
            rows.append((name, type(value).__name__, text[:60]))
        w0 = max(8, *(len(r[0]) for r in rows)) + 3
        w1 = max(4, *(len(r[1]) for r in rows)) + 3
        print("Variable".ljust(w0) + "Type".ljust(w1) + "Data/Info")
        print("-" * (w0 + w1 + 9))
        for name, kind, text in rows:
            print(name.ljust(w0) + kind.ljust(w1) + text)

    def _matplotlib(self, line):
        gui = line.strip() or "inline"
        if gui != "inline":
            raise UsageError(f"%matplotlib {gui}: ferry supports only %matplotlib inline")
        _mpl_backend.force_inline()

    def _pip(self, line):
        """pip for the kernel's own interpreter, whatever `pip` is on PATH."""
        import shlex
        self.system(f"{shlex.quote(sys.executable)} -m pip {line}")
        print("Note: you may need to restart the kernel to use updated packages.")

    def _run(self, line):
        """%run script.py args: runs the script as __main__ with sys.argv
        set, then puts what it defined into the notebook's namespace."""
        import runpy
        import shlex
        try:
            args = shlex.split(line)
        except ValueError as e:
            raise UsageError(f"%run: {e}") from None
        if not args:
            raise UsageError("%run: give a script, e.g. %run analysis.py --fast")
        if args[0] == "-m" and len(args) > 1:
            target, runner = args[1], runpy.run_module
            argv = args[1:]
        else:
            target = os.path.expanduser(args[0])
            if not os.path.exists(target) and os.path.exists(target + ".py"):
                target += ".py"
            if not os.path.exists(target):
                raise UsageError(f"%run: file not found: {args[0]}")
            runner, argv = runpy.run_path, [target] + args[1:]
        saved = sys.argv
        sys.argv = argv
        try:
            result = runner(target, run_name="__main__")
        finally:
            sys.argv = saved
        self._shell.ns.update({k: v for k, v in result.items()
                               if not (k.startswith("__") and k.endswith("__"))})

    def _load_ext(self, line):
        name = line.strip()
        if name != "autoreload":
            raise UsageError(f"%load_ext {name}: ferry loads no IPython extensions "
                             "(it has %autoreload built in)")

    def _autoreload(self, line):
        mode = line.strip() or "now"
        if mode == "now":
            autoreloader.check(force=True)
        elif mode in ("0", "off"):
            autoreloader.enabled = False
        elif mode in ("1", "2", "3", "all", "complete", "explicit"):
            autoreloader.enabled = True
            autoreloader.check()  # take the modules' current times as the baseline
        else:
            raise UsageError(f"%autoreload {mode}: use %autoreload 2 (on), 0 (off) or now")

    def _reset(self, line):
        """%reset [-f]: deletes the user's variables (asks first unless -f)."""
        args = line.split()
        if "-f" not in args:
            answer = input("Once deleted, variables cannot be recovered. Proceed (y/[n])? ")
            if answer.strip().lower() not in ("y", "yes"):
                print("Nothing done.")
                return
        ns = self._shell.ns
        for name in list(ns):
            if name not in self.hidden and not (name.startswith("__") and name.endswith("__")):
                del ns[name]
        self._shell.Out.clear()
        ns.update({"_": None, "__": None, "___": None})

    def _lsmagic(self, line):
        print("Line magics: " + " ".join("%" + n for n in sorted(self._line)))
        print("Cell magics: " + " ".join("%%" + n for n in sorted(self._cell)))

    def _pinfo(self, name, detail=0):
        from . import _complete
        try:
            obj = _complete._resolve(name, self._shell.ns)
        except Exception:
            print(f"Object `{name}` not found.")
            return
        text = _complete.describe(obj, name, detail)
        self._shell.payloads.append({"source": "page", "data": {"text/plain": text},
                                     "start": 0})

    def _pinfo2(self, name):
        self._pinfo(name, 1)

    def _cell_shell(self, line, cell, filename):
        self.system(cell.strip("\n") if cell.strip() else ":")

    @staticmethod
    def _raw_display(mime):
        def show(line, cell, filename):
            from . import _display
            _display.display({mime: cell.strip("\n")}, raw=True)
        return show

    def _cell_capture(self, line, cell, filename):
        """%%capture [--no-stdout] [--no-stderr] [--no-display] [name]: runs
        the body with its Python-level output and displays held back; with a
        name, keeps them in a CapturedIO (.stdout, .stderr, .outputs,
        .show()).  Output written straight to file descriptors 1 and 2 (a C
        library, a subprocess not started by !cmd) is not captured."""
        import contextlib
        from . import _display
        args = line.split()
        name = next((a for a in args if not a.startswith("-")), None)
        out, err = io.StringIO(), io.StringIO()
        captured = CapturedIO(out, err)
        publish = _display.publish

        def hold(msg_type, content):
            if msg_type in ("display_data", "update_display_data", "clear_output") \
                    and "--no-display" not in args:
                captured.outputs.append((msg_type, content))
            else:
                publish(msg_type, content)

        with contextlib.ExitStack() as stack:
            if "--no-stdout" not in args:
                stack.enter_context(contextlib.redirect_stdout(out))
            if "--no-stderr" not in args:
                stack.enter_context(contextlib.redirect_stderr(err))
            _display.publish = hold
            stack.callback(setattr, _display, "publish", publish)
            value = self._run_body(cell, filename)
            if value is not None:
                data, metadata = _display.format_bundle(value)
                hold("display_data", {"data": data, "metadata": metadata, "transient": {}})
        if name:
            self._shell.ns[name] = captured

    def _cell_writefile(self, line, cell, filename):
        args = line.split()
        append = "-a" in args or "--append" in args
        paths = [a for a in args if not a.startswith("-")]
        if len(paths) != 1:
            raise UsageError("%%writefile: give one file name, e.g. %%writefile -a out.txt")
        path = os.path.expanduser(paths[0].strip("'\""))
        exists = os.path.exists(path)
        with open(path, "a" if append else "w") as f:
            f.write(cell.lstrip("\n"))
        print(("Appending to " if append else "Overwriting " if exists else "Writing ") + path)


def _kill(proc):
    try:
        os.killpg(proc.pid, 9)
    except OSError:
        pass
    proc.wait()


def _report_time(t0, c0):
    wall = time.perf_counter() - t0
    c1 = os.times()
    user = c1.user - c0.user + c1.children_user - c0.children_user
    syst = c1.system - c0.system + c1.children_system - c0.children_system
    print(f"CPU times: user {_format_time(user)}, sys: {_format_time(syst)}, "
          f"total: {_format_time(user + syst)}")
    print(f"Wall time: {_format_time(wall)}")


class CapturedIO:
    """What %%capture name keeps: stdout and stderr text, the displays."""

    def __init__(self, out, err):
        self._out, self._err = out, err
        self.outputs = []  # (msg_type, content) in the order they came

    @property
    def stdout(self):
        return self._out.getvalue()

    @property
    def stderr(self):
        return self._err.getvalue()

    def show(self):
        """Replays the captured output into the current cell."""
        from . import _display
        sys.stdout.write(self.stdout)
        sys.stderr.write(self.stderr)
        for msg_type, content in self.outputs:
            _display.publish(msg_type, content)

    __call__ = show

    def __repr__(self):
        return f"<CapturedIO: {len(self.stdout)} chars of stdout, " \
               f"{len(self.stderr)} of stderr, {len(self.outputs)} displays>"


class TimeitResult:
    """What %timeit -o returns: loops, repeat, all_runs (per loop), best,
    worst, average, stdev — the attributes IPython's result has."""

    def __init__(self, loops, repeat, runs):
        self.loops, self.repeat, self.timings = loops, repeat, runs
        self.all_runs = [t * loops for t in runs]
        self.best, self.worst = min(runs), max(runs)
        self.average = sum(runs) / len(runs)
        self.stdev = math.sqrt(sum((t - self.average) ** 2 for t in runs) / len(runs))

    def __str__(self):
        runs = "run" if self.repeat == 1 else "runs"
        loops = "loop" if self.loops == 1 else "loops"
        return (f"{_format_time(self.average)} ± {_format_time(self.stdev)} per loop "
                f"(mean ± std. dev. of {self.repeat} {runs}, {self.loops:,} {loops} each)")

    def __repr__(self):
        return f"<TimeitResult : {self}>"
