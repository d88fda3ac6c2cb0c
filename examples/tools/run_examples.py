"""Build and execute the example notebooks with the ferry kernel.

Each notebook is written as a percent-format script in examples/src/
(`# %%` starts a code cell, `# %% [markdown]` a markdown cell whose lines
drop their leading "# ", `# %% tags=["raises-exception"]` tags a cell), so
that it reviews and diffs as Python.  examples/*.ipynb are generated from
those sources; this program checks they agree.

    run_examples.py --sync            rewrite the examples/*.ipynb whose cells differ
                                      from src/ (their outputs are dropped)
    run_examples.py OUTDIR [NB ...]   check sync, execute each notebook headless with
                                      the kernel named ferry (nbclient), write the
                                      executed copies to OUTDIR, and run demo.py as
                                      one cell through jupyter_client
    --refresh                         also store the outputs back in examples/*.ipynb

A run fails on any error output in a cell not tagged raises-exception, on any
stderr output in a cell not tagged allow-stderr, on a cell that times out,
on any process it started that outlives it, and on an "after" cell whose
outputs differ from those stored in examples/*.ipynb (see same_outputs): the
stored outputs are what each cell claims to show.  "Before" cells (they call
contrast's plain() or ipykernel()) check themselves with expect=; a cell
whose output varies from run to run is tagged output-varies and must state
what it shows with an assert.  The kernel is found by name through JUPYTER_PATH (see examples/build.mk).
"""

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import nbformat

EXAMPLES = Path(__file__).resolve().parents[1]
SRC = EXAMPLES / "src"
KERNELSPEC = {"name": "ferry", "display_name": "Python 3 (ferry)", "language": "python"}
CELL_TIMEOUT = 120  # a hung cell fails; a slow machine does not

_MARKER = re.compile(r"^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")


def parse_source(path):
    """The cells of one percent-format source file, as nbformat nodes."""
    cells, kind, tags, lines = [], None, [], []

    def close():
        text = "\n".join(lines).strip("\n")
        if kind is None:
            if text.strip():
                raise SystemExit(f"{path}: text before the first '# %%' marker")
            return
        if kind == "markdown":
            text = "\n".join(re.sub(r"^# ?", "", line) for line in text.splitlines())
            cell = nbformat.v4.new_markdown_cell(text)
        else:
            cell = nbformat.v4.new_code_cell(text)
        if tags:
            cell.metadata["tags"] = tags
        cell.id = f"{path.stem[:40]}-{len(cells)}"
        cells.append(cell)

    for line in path.read_text().splitlines():
        m = _MARKER.match(line)
        if m:
            close()
            kind = "markdown" if m.group("md") else "code"
            tags = json.loads(m.group("tags")) if m.group("tags") else []
            lines = []
        else:
            lines.append(line)
    close()
    return cells


def build_notebook(src):
    nb = nbformat.v4.new_notebook()
    nb.cells = parse_source(src)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def sources():
    return sorted(SRC.glob("[0-9]*.py"))


def notebook_path(src):
    return EXAMPLES / (src.stem + ".ipynb")


def same_cells(a, b):
    key = [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in a.cells]
    return key == [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in b.cells]


def sync():
    """Rewrites the notebooks whose cells differ from their source; the others
    keep their stored outputs."""
    for src in sources():
        nb, path = build_notebook(src), notebook_path(src)
        if path.exists() and same_cells(nb, nbformat.read(path, 4)):
            continue
        nbformat.validate(nb)
        nbformat.write(nb, path)
        print(f"wrote {notebook_path(src).relative_to(EXAMPLES.parent)}")


def check_sync():
    stale = []
    for src in sources():
        path = notebook_path(src)
        if not path.exists() or not same_cells(build_notebook(src), nbformat.read(path, 4)):
            stale.append(path.name)
    if stale:
        raise SystemExit(f"out of date with examples/src: {', '.join(stale)}; "
                         f"run `make examples-sync`")
    readme = (EXAMPLES / "README.md").read_text()
    unlisted = [notebook_path(s).name for s in sources()
                if f"({notebook_path(s).name})" not in readme]
    if unlisted:
        raise SystemExit(f"examples/README.md does not link {', '.join(unlisted)}")


# A "before" cell: runs code elsewhere through examples/contrast.py, which
# checks how that run ended (expect=...); its text varies with the machine.
_BEFORE = re.compile(r"^\s*(?:\w+\s*=\s*)?(?:plain|ipykernel)\(", re.M)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# What changes from run to run in what a cell shows: addresses, process ids,
# durations, speed-ups, temporary paths, pickled sizes.
_VARYING = [
    (re.compile(r"0x[0-9a-fA-F]+"), "0x…"),
    (re.compile(r"\b(pid|process) \d+"), r"\1 …"),
    (re.compile(r"\d+(?:\.\d+)?(?:e-?\d+)? ?(?:s|ms|µs|us|seconds?)\b"), "… s"),
    (re.compile(r"×\d+(?:\.\d+)?"), "×…"),
    (re.compile(r"/tmp/[^\s'\"]+"), "/tmp/…"),
    # A pickled cell function names the kernel's runtime directory (with
    # its pid) and the re-export version: pickled sizes vary by a few bytes.
    (re.compile(r"\b\d+(?:\.\d+)? (?:bytes|KiB|MiB)\b"), "… bytes"),
]


def _progress(out):
    """ferry's progress display: shown only when a map runs over a second."""
    text = out.get("data", {}).get("text/plain", "")
    return out.output_type == "display_data" and text.startswith("ferry.map [")


def shown(cell):
    """What a cell shows, as comparable text: streams merged, rich output by
    its text/plain and the kinds it offers, errors by name and message, with
    the varying parts replaced."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            if parts and parts[-1][0] == out.name:
                parts[-1] = (out.name, parts[-1][1] + out.text)
            else:
                parts.append((out.name, out.text))
        elif out.output_type == "error":
            parts.append(("error", f"{out.ename}: {out.evalue}"))
        elif not _progress(out):
            kinds = ",".join(sorted(out.data))
            parts.append((f"{out.output_type} [{kinds}]", out.data.get("text/plain", "")))
    text = "".join(f"[{kind}]\n{body.rstrip()}\n" for kind, body in parts)
    text = _ANSI.sub("", text)
    for pattern, repl in _VARYING:
        text = pattern.sub(repl, text)
    return text


def compared(cell):
    tags = cell.metadata.get("tags", [])
    return cell.cell_type == "code" and "output-varies" not in tags \
        and not _BEFORE.search(cell.source)


def changed_outputs(stored, executed):
    """(cell index, diff) for each "after" cell whose outputs differ from the
    stored ones."""
    import difflib
    found = []
    for i, (old, new) in enumerate(zip(stored.cells, executed.cells)):
        if not compared(old):
            continue
        a, b = shown(old), shown(new)
        if a != b:
            diff = difflib.unified_diff(a.splitlines(), b.splitlines(), "stored",
                                        "this run", lineterm="", n=1)
            found.append((i, "outputs differ from the stored ones (make "
                             "examples-refresh stores them if the change is "
                             "right):\n" + "\n".join(list(diff)[2:40])))
    return found


def check_asserted(nb, name):
    """A cell whose outputs are not compared states what it shows itself."""
    for i, cell in enumerate(nb.cells):
        if "output-varies" in cell.metadata.get("tags", []) and "assert" not in cell.source:
            raise SystemExit(f"{name} cell {i} is tagged output-varies but asserts nothing")


def problems(nb):
    """Unexpected error or stderr outputs, as (cell index, text) pairs."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        for out in cell.outputs:
            if out.output_type == "error" and "raises-exception" not in tags:
                found.append((i, f"{out.ename}: {out.evalue}"))
            if out.output_type == "stream" and out.name == "stderr" \
                    and "allow-stderr" not in tags:
                found.append((i, "stderr: " + out.text[-2000:]))
    return found


def execute(path, outdir, refresh):
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = nbformat.read(path, 4)
    stored = nbformat.read(path, 4)
    check_asserted(nb, path.name)
    client = NotebookClient(nb, kernel_name="ferry", timeout=CELL_TIMEOUT,
                            allow_errors=True, record_timing=False,
                            resources={"metadata": {"path": str(EXAMPLES)}})
    started = time.monotonic()
    failure = None
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, RuntimeError) as err:
        failure = f"{type(err).__name__}: {str(err)[-3000:]}"
    seconds = time.monotonic() - started
    nbformat.write(nb, outdir / path.name)
    found = problems(nb)
    if not refresh:
        found += changed_outputs(stored, nb)
    if not failure and not found and refresh:
        nbformat.write(nb, path)
    return seconds, failure, found


def run_demo(outdir):
    """examples/demo.py as one cell, as `ferry examples/demo.py` runs it."""
    from jupyter_client.manager import start_new_kernel

    code = (EXAMPLES / "demo.py").read_text()
    km, kc = start_new_kernel(kernel_name="ferry", cwd=str(EXAMPLES.parent))
    text, errors = [], []

    def hook(msg):
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            text.append(content["text"])
            if content["name"] == "stderr":
                errors.append("stderr: " + content["text"])
        elif kind == "error":
            errors.append(f"{content['ename']}: {content['evalue']}")
            text.append("\n".join(content["traceback"]) + "\n")
        elif kind in ("execute_result", "display_data"):
            text.append(content["data"].get("text/plain", "") + "\n")

    started = time.monotonic()
    try:
        reply = kc.execute_interactive(code, timeout=CELL_TIMEOUT, output_hook=hook,
                                       allow_stdin=False)
        if reply["content"]["status"] != "ok" and not errors:
            errors.append(f"execute_reply status {reply['content']['status']}")
    except TimeoutError:
        errors.append(f"demo.py still running after {CELL_TIMEOUT} s")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    (outdir / "demo.out").write_text("".join(text))
    return time.monotonic() - started, errors


def leftovers():
    """Processes this run started that are still alive (kernels, workers,
    resource trackers): killed, and returned as descriptions."""
    import psutil

    me = psutil.Process()
    found = me.children(recursive=True)
    # A kernel whose parent died is no longer our child; its connection file
    # (in our runtime directory) still names it.  make's shell, an ancestor,
    # names the directory too.
    runtime = os.environ.get("JUPYTER_RUNTIME_DIR")
    if runtime:
        ours = {p.pid for p in found} | {p.pid for p in me.parents()} | {me.pid}
        found += [p for p in psutil.process_iter(["cmdline"])
                  if p.pid not in ours
                  and any(a.startswith(runtime + "/") for a in p.info["cmdline"] or [])]
    _, alive = psutil.wait_procs(found, timeout=5)
    described = []
    for p in alive:
        try:
            described.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
            p.kill()
        except psutil.Error:
            pass
    return described


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir", nargs="?")
    ap.add_argument("notebooks", nargs="*")
    ap.add_argument("--sync", action="store_true")
    ap.add_argument("--refresh", action="store_true")
    ap.add_argument("--no-demo", action="store_true")
    args = ap.parse_args()
    if args.sync:
        sync()
        return 0
    if not args.outdir:
        ap.error("OUTDIR is required")
    check_sync()
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    chosen = [Path(n) for n in args.notebooks] or [notebook_path(s) for s in sources()]
    total, failed = time.monotonic(), 0
    for path in chosen:
        seconds, failure, found = execute(path.resolve(), outdir, args.refresh)
        ok = not failure and not found
        failed += not ok
        print(f"  {'ok  ' if ok else 'FAIL'} {path.name:<40} {seconds:5.1f} s", flush=True)
        if failure:
            print("       " + failure.replace("\n", "\n       "))
        for i, text in found:
            print(f"       cell {i}: " + text.replace("\n", "\n       "))
    if not args.no_demo and not args.notebooks:
        seconds, errors = run_demo(outdir)
        failed += bool(errors)
        print(f"  {'FAIL' if errors else 'ok  '} {'demo.py (one cell)':<40} {seconds:5.1f} s")
        for text in errors:
            print("       " + text.replace("\n", "\n       "))
    for text in leftovers():
        failed += 1
        print(f"  FAIL left running: {text}")
    print(f"examples: {failed} failed, {time.monotonic() - total:.1f} s in all; "
          f"executed copies in {outdir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
