"""The guided tour: the executed example notebooks as static HTML.

    make_docs.py EXECUTED_DIR OUTDIR

Renders each executed notebook (as `make examples` leaves them in
EXECUTED_DIR) with nbconvert to OUTDIR/NN-name.html, in the order a lesson
takes them (their numbers), with links to the previous and next page, and
writes OUTDIR/index.html listing them with the one-line summary of each from
examples/README.md.  Links between notebooks point at the pages; the files
they link to (tasks.py) are copied beside them.
"""
import html
import re
import shutil
import sys
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

EXAMPLES = Path(__file__).resolve().parents[1]
_ROW = re.compile(r"^\| \[(?P<title>[^\]]+)\]\((?P<file>[^)]+\.ipynb)\) \| (?P<what>.*) \|$")
_STYLE = ("font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;"
          "line-height:1.5")


def lessons():
    """[(file, title, what)] in the order of examples/README.md's table."""
    found = []
    for line in (EXAMPLES / "README.md").read_text().splitlines():
        m = _ROW.match(line)
        if m:
            found.append((m["file"], m["title"], m["what"]))
    return found


def inline_markdown(text):
    """The README table's cells: `code` and [links](...) as HTML."""
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*]+)\*\*|\*([^*]+)\*", lambda m: f"<em>{m[1] or m[2]}</em>", text)
    return re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"<a href='\2'>\1</a>", text)


def page_name(notebook):
    return Path(notebook).stem + ".html"


def nav(order, i):
    links = ["<a href='index.html'>ferry's examples: contents</a>"]
    if i > 0:
        links.insert(0, f"<a href='{page_name(order[i - 1][0])}'>&larr; "
                        f"{html.escape(order[i - 1][1])}</a>")
    if i + 1 < len(order):
        links.append(f"<a href='{page_name(order[i + 1][0])}'>"
                     f"{html.escape(order[i + 1][1])} &rarr;</a>")
    return ("<nav style='font-family:sans-serif;padding:0.6em 1em;background:#f3f4f6'>"
            + " &nbsp;|&nbsp; ".join(links) + "</nav>")


def svg_as_images(nb):
    """nbconvert 6.5's HTML templates pass inline SVG through a sanitiser
    that drops its shapes; an SVG given as an image file is shown as is."""
    import base64
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            svg = out.get("data", {}).get("image/svg+xml")
            if svg:
                data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
                out.svg_filename = "data:image/svg+xml;base64," + data


def render(executed, order, i, outdir):
    nb = nbformat.read(executed, 4)
    svg_as_images(nb)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    # Notebooks link each other by file name: point at the pages instead.
    body = re.sub(r'href="(\d\d-[\w-]+)\.ipynb"', r'href="\1.html"', body)
    bar = nav(order, i)
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + bar, body, count=1)
    body = body.replace("</body>", bar + "</body>", 1)
    (outdir / page_name(executed.name)).write_text(body, encoding="utf-8")


def index(order, outdir):
    intro = (EXAMPLES / "README.md").read_text().split("\n\n")
    problem = " ".join(p for p in intro if p.startswith("**The problem.**"))
    fix = " ".join(p for p in intro if p.startswith("**The fix.**"))
    items = "".join(
        f"<li><a href='{page_name(f)}'>{inline_markdown(title)}</a> &mdash; "
        f"{inline_markdown(what)}</li>" for f, title, what in order)
    paras = "".join(f"<p>{inline_markdown(p)}</p>" for p in (problem, fix)
                    if p)
    text = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>ferry: every "
            f"pickling pitfall, before and after</title></head><body style='{_STYLE}'>"
            f"<h1>ferry: every pickling pitfall, before and after</h1>{paras}"
            f"<p>Each page is a notebook as executed by <code>make examples</code> with the "
            f"ferry kernel: the failing code run for real in a plain interpreter or "
            f"ipykernel, then the same code under ferry. Take them in order:</p>"
            f"<ol>{items}</ol></body></html>")
    (outdir / "index.html").write_text(text, encoding="utf-8")


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    executed, outdir = Path(sys.argv[1]), Path(sys.argv[2])
    outdir.mkdir(parents=True, exist_ok=True)
    order = lessons()
    missing = [f for f, _, _ in order if not (executed / f).exists()]
    if missing:
        raise SystemExit(f"not executed yet: {', '.join(missing)} (run make examples)")
    for i, (f, _, _) in enumerate(order):
        render(executed / f, order, i, outdir)
    for name in ("tasks.py", "contrast.py", "demo.py"):
        shutil.copy(EXAMPLES / name, outdir / name)
    index(order, outdir)
    print(f"docs: {len(order)} pages and index.html in {outdir}")


if __name__ == "__main__":
    main()
