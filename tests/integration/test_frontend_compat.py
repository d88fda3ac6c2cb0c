"""IPython's display protocol, the get_ipython() that libraries reach for,
and the small differences that tools comparing outputs notice."""

import base64
import importlib.util
import struct

import pytest

import harness

needs = {name: pytest.mark.skipif(importlib.util.find_spec(name) is None,
                                  reason=f"{name} is not installed")
         for name in ("IPython", "tqdm", "pandas", "matplotlib")}

SHOWS_ITSELF = harness.DISPLAY_PRELUDE + """
class ShowsItself:
    def _ipython_display_(self):
        display({'text/html': '<i>itself</i>', 'text/plain': 'itself'}, raw=True)
    def _repr_html_(self):
        return '<b>never used</b>'

class Bundle:
    def _repr_mimebundle_(self, include=None, exclude=None):
        self.asked = (include, exclude)
        return ({'text/plain': 'bundle', 'text/html': '<b>bundle</b>',
                 'application/x-ferry': {'n': 1}},
                {'application/x-ferry': {'note': 'md'}})
    def _repr_latex_(self):
        return '$x$'
"""


def displays(x):
    return [m["content"] for m in x.of_type("display_data")]


def test_display_calls_ipython_display_instead_of_formatting(kernel):
    kernel.execute(SHOWS_ITSELF).ok()
    x = kernel.execute("display(ShowsItself())").ok()
    assert [d["data"] for d in displays(x)] == [{"text/html": "<i>itself</i>",
                                                 "text/plain": "itself"}]


def test_cell_result_with_ipython_display_shows_itself_only(kernel):
    kernel.execute(SHOWS_ITSELF).ok()
    x = kernel.execute("ShowsItself()").ok()
    assert x.result is None
    assert [d["data"]["text/html"] for d in displays(x)] == ["<i>itself</i>"]


def test_repr_mimebundle_with_metadata_and_other_reprs(kernel):
    kernel.execute(SHOWS_ITSELF).ok()
    x = kernel.execute("b = Bundle()\nb").ok()
    content = x.result["content"]
    assert content["data"]["text/html"] == "<b>bundle</b>"
    assert content["data"]["application/x-ferry"] == {"n": 1}
    assert content["data"]["text/latex"] == "$x$"  # the reprs the bundle lacks
    assert content["metadata"] == {"application/x-ferry": {"note": "md"}}


def test_display_include_and_exclude_reach_repr_mimebundle(kernel):
    kernel.execute(SHOWS_ITSELF).ok()
    x = kernel.execute("b = Bundle()\n"
                       "display(b, include=['text/plain', 'text/latex'])\n"
                       "display(b, exclude=['text/html'])\n"
                       "b.asked").ok()
    first, second = displays(x)
    assert sorted(first["data"]) == ["text/latex", "text/plain"]
    assert "text/html" not in second["data"] and "text/latex" in second["data"]
    assert x.text == "(None, ['text/html'])"


def test_display_raw_with_metadata(kernel):
    x = kernel.execute(harness.DISPLAY_PRELUDE +
                       "display({'text/plain': 'raw', 'image/png': 'AAAA'}, raw=True,\n"
                       "        metadata={'image/png': {'width': 3}})").ok()
    [shown] = displays(x)
    assert shown["data"] == {"text/plain": "raw", "image/png": "AAAA"}
    assert shown["metadata"] == {"image/png": {"width": 3}}


# ------------------------------------------------------------ get_ipython()


@pytest.mark.ferry_only("ferry's facade; ipykernel has IPython's whole shell")
def test_get_ipython_has_what_libraries_reach_for(kernel):
    x = kernel.execute(
        "ip = get_ipython()\n"
        "seen = []\n"
        "ip.events.register('post_execute', lambda: seen.append('post'))\n"
        "(ip.execution_count, ip.parent_header['header']['msg_type'],\n"
        " ip.display_formatter.format(1.5), ip.history_manager.hist_file,\n"
        " 'ip' in ip.user_ns, hasattr(ip.kernel, 'comm_manager'))").ok()
    count, msg_type, formatted, hist_file, in_ns, comm_manager = eval(x.text)
    assert count == x.execution_count + 1 and msg_type == "execute_request"
    assert formatted == ({"text/plain": "1.5"}, {})
    assert hist_file == str(kernel.history_file)
    assert in_ns and comm_manager
    assert kernel.execute("seen").ok().text == "['post']"  # after the cell that registered
    x = kernel.execute("get_ipython().parent_header['header']['msg_id']").ok()
    assert x.text == repr(x.msg_id)


def test_get_ipython_run_cell_and_showtraceback(kernel):
    x = kernel.execute("r = get_ipython().run_cell('40 + 2')\n"
                       "(r.result, r.success)").ok()
    results = [m["content"]["data"]["text/plain"] for m in x.of_type("execute_result")]
    assert results == ["42", "(42, True)"]  # the inner cell's result is shown too
    x = kernel.execute("try:\n    1 / 0\nexcept ZeroDivisionError:\n"
                       "    get_ipython().showtraceback()\n"
                       "print('still running')").ok()
    [error] = x.of_type("error")
    assert error["content"]["ename"] == "ZeroDivisionError"
    assert "still running" in x.stdout


@pytest.mark.ferry_only("ferry's facade names itself")
def test_get_ipython_missing_attribute_names_ferry(kernel):
    x = kernel.execute("get_ipython().enable_gui('qt')", stop_on_error=False)
    assert x.content["ename"] == "AttributeError"
    assert "ferry" in x.content["evalue"] and "enable_gui" in x.content["evalue"]
    assert kernel.execute("hasattr(get_ipython(), 'magics_manager')").ok().text == "False"


@needs["tqdm"]
@needs["IPython"]
@pytest.mark.ferry_only("under ipykernel tqdm.auto picks tqdm.notebook, which fails "
                        "with Debian's ipywidgets 6")
def test_tqdm_auto_draws_its_console_bar(kernel):
    x = kernel.execute("import IPython\nfrom tqdm.auto import tqdm\n"
                       "for i in tqdm(range(3)):\n    pass\n"
                       "sorted({c.__module__ for c in tqdm.__mro__})", timeout=30).ok()
    assert "tqdm.std" in x.text and "tqdm.notebook" not in x.text
    assert "3/3" in x.stderr


@needs["pandas"]
@needs["IPython"]
def test_pandas_rich_display(kernel):
    x = kernel.execute("import IPython\nimport pandas as pd\n"
                       "pd.DataFrame({'a': [1, 2], 'b': [3, 4]})", timeout=60).ok()
    assert "<table" in x.data["text/html"]
    assert "a  b" in x.text


@needs["matplotlib"]
@needs["IPython"]
def test_matplotlib_with_ipython_imported_draws_inline(kernel):
    x = kernel.execute("import IPython\nimport matplotlib\nimport matplotlib.pyplot as plt\n"
                       "plt.plot([1, 2])\nmatplotlib.get_backend()", timeout=60).ok()
    assert "inline" in x.text or "ferry" in x.text
    assert len([d for d in displays(x) if "image/png" in d["data"]]) == 1


# ------------------------------------------------------ small differences


def test_traceback_frames_end_with_a_newline_as_ipythons(kernel):
    x = kernel.execute("def f():\n    return 1 / 0\nf()", stop_on_error=False)
    tb = x.content["traceback"]
    frames = [line for line in tb if "line " in harness.strip_ansi(line)]
    assert len(frames) == 2
    assert all(frame.endswith("\n") for frame in frames)
    assert not tb[-1].endswith("\n")


def test_input_without_a_frontend_raises_stdin_not_implemented(kernel):
    x = kernel.execute("try:\n    input('? ')\nexcept NotImplementedError as e:\n"
                       "    print(type(e).__name__, e)", allow_stdin=False).ok()
    assert x.stdout == ("StdinNotImplementedError raw_input was called, but this "
                        "frontend does not support input requests.\n")


@needs["matplotlib"]
@pytest.mark.ferry_only("ipykernel sends no size with its PNGs")
def test_inline_png_is_labelled_with_the_size_of_the_image_sent(kernel):
    x = kernel.execute("%matplotlib inline\nimport matplotlib.pyplot as plt\n"
                       "plt.plot([1, 2])\nplt.show()", timeout=60).ok()
    [shown] = [d for d in displays(x) if "image/png" in d["data"]]
    png = base64.b64decode(shown["data"]["image/png"])
    width, height = struct.unpack(">II", png[16:24])
    assert shown["metadata"]["image/png"] == {"width": width, "height": height}
