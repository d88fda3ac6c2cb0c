"""IPython.display and get_ipython() in cells, when IPython is installed."""

import importlib.util

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("IPython") is None,
                                reason="IPython is not installed")

IMPORT = ("from IPython.display import (display, HTML, Markdown, Image, Math, JSON, "
          "clear_output, update_display)\n")
PNG_B64 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4DwABAQEABRjYTgAAAABJ"
           "RU5ErkJggg==")


@pytest.fixture
def k(kernel):
    kernel.execute(IMPORT, timeout=30).ok()  # IPython's first import is slow
    return kernel


def test_display_of_ipython_objects_publishes_display_data(k):
    x = k.execute("display(HTML('<b>h</b>'), Markdown('*m*'), Math('x^2'), JSON({'a': 1}))")
    bundles = [m["content"]["data"] for m in x.ok().of_type("display_data")]
    assert [b.get("text/html") for b in bundles[:1]] == ["<b>h</b>"]
    assert bundles[1]["text/markdown"] == "*m*"
    assert "x^2" in bundles[2]["text/latex"]
    assert bundles[3]["application/json"] == {"a": 1}
    assert not x.stdout  # nothing fell back to print()


def test_image_as_cell_result(k):
    x = k.execute(f"import base64\nImage(data=base64.b64decode('{PNG_B64}'))").ok()
    assert x.data["image/png"].strip() == PNG_B64


def test_html_as_cell_result(k):
    assert k.execute("HTML('<i>r</i>')").ok().data["text/html"] == "<i>r</i>"


def test_display_handles_and_update_display(k):
    x = k.execute("h = display(HTML('a'), display_id=True)\n"
                  "h.update(HTML('b'))\n"
                  "update_display(HTML('c'), display_id=h.display_id)").ok()
    (shown,) = x.of_type("display_data")
    updates = x.of_type("update_display_data")
    display_id = shown["content"]["transient"]["display_id"]
    assert [u["content"]["data"]["text/html"] for u in updates] == ["b", "c"]
    assert all(u["content"]["transient"]["display_id"] == display_id for u in updates)


def test_clear_output_publishes_clear_output(k):
    x = k.execute("clear_output(wait=True)").ok()
    (msg,) = x.of_type("clear_output")
    assert msg["content"]["wait"] is True


def test_raw_display_functions(k):
    x = k.execute("from IPython.display import display_html\n"
                  "display_html('<u>raw</u>', raw=True)").ok()
    assert x.of_type("display_data")[0]["content"]["data"]["text/html"] == "<u>raw</u>"


def test_get_ipython_from_ipython_in_a_cell_is_ferrys_shell(k):
    x = k.execute("from IPython import get_ipython\n"
                  "ip = get_ipython()\n"
                  "(ip.run_line_magic('pwd', '') == __import__('os').getcwd(), 'ip' in ip.user_ns)")
    assert x.ok().text == "(True, True)"


def test_libraries_get_the_same_shell_as_cells(k):
    # Library code (not the notebook's namespace) gets the shell too, as in
    # IPython: ipywidgets registers its comm targets from there.
    x = k.execute("import IPython\n"
                  "probe = {}\n"
                  "exec('from IPython import get_ipython\\nshell = get_ipython()', probe)\n"
                  "(probe['shell'] is get_ipython(), 'probe' in probe['shell'].user_ns,\n"
                  " hasattr(probe['shell'].kernel, 'comm_manager'))").ok()
    assert x.text == "(True, True, True)"
