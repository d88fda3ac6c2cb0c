"""make docs (examples/tools/make_docs.py): one page per executed notebook,
in the order of examples/README.md, an index linking them, and SVG output
(ferry.timeline's pictures) shown whole - nbconvert 6.5 strips inline SVG."""
import base64
import re
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "examples" / "tools" / "make_docs.py"
SVG = ("<svg xmlns='http://www.w3.org/2000/svg' width='50' height='20'>"
       "<rect class='task ok' x='1' y='1' width='10' height='10'/></svg>")


def lesson_files():
    return re.findall(r"^\| \[[^\]]+\]\(([^)]+\.ipynb)\)", (ROOT / "examples" / "README.md")
                      .read_text(), re.M)


def fake_executed(tmp_path):
    """Executed copies of every notebook README lists, each a markdown cell
    linking the next notebook and a code cell with SVG output."""
    files = lesson_files()
    for i, name in enumerate(files):
        nb = nbformat.v4.new_notebook()
        nxt = files[(i + 1) % len(files)]
        code = nbformat.v4.new_code_cell("tl")
        code.outputs = [nbformat.v4.new_output(
            "execute_result", {"image/svg+xml": SVG, "text/plain": "timeline"},
            execution_count=1)]
        nb.cells = [nbformat.v4.new_markdown_cell(f"see [the next one]({nxt})"), code]
        nbformat.write(nb, tmp_path / name)
    return files


def test_docs_are_a_page_per_notebook_in_lesson_order_with_svg_kept(tmp_path):
    executed, out = tmp_path / "executed", tmp_path / "docs"
    executed.mkdir()
    files = fake_executed(executed)
    assert len(files) >= 9
    subprocess.run([sys.executable, str(TOOL), str(executed), str(out)], check=True,
                   capture_output=True, timeout=300)
    index = (out / "index.html").read_text()
    pages = [Path(f).stem + ".html" for f in files]
    assert re.findall(r"href='(\d\d-[^']+\.html)'", index) == pages
    for i, page in enumerate(pages):
        text = (out / page).read_text()
        # The notebook's link to another notebook points at its page.
        assert f'href="{pages[(i + 1) % len(pages)]}"' in text
        # The SVG reaches the page whole, as an image.
        uris = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', text)
        assert [base64.b64decode(u).decode() for u in uris] == [SVG]
        if i + 1 < len(pages):
            assert f"href='{pages[i + 1]}'" in text  # "next" in the navigation
    assert (out / "tasks.py").exists()  # notebook 06 links it


def test_docs_say_what_is_missing_when_examples_did_not_run(tmp_path):
    r = subprocess.run([sys.executable, str(TOOL), str(tmp_path), str(tmp_path / "d")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "run make examples" in r.stderr
