"""Errors: one iopub error plus an error reply, tracebacks that point at cells."""

import re

import harness


def test_execute_reports_error_with_iopub_error_and_error_reply(kernel):
    x = kernel.execute("raise ValueError('boom')", stop_on_error=False)
    assert x.status == "error"
    assert x.content["ename"] == "ValueError"
    assert x.content["evalue"] == "boom"
    tb = x.content["traceback"]
    assert isinstance(tb, list) and tb and all(isinstance(s, str) for s in tb)
    errors = x.of_type("error")
    assert len(errors) == 1, x.describe()
    for key in ("ename", "evalue", "traceback"):
        assert errors[0]["content"][key] == x.content[key]
    assert x.result is None


def test_execute_reports_error_with_cell_location(kernel):
    code = "def f():\n    return 1 / 0\nx = 1\nf()"
    x = kernel.execute(code, stop_on_error=False)
    assert x.content["ename"] == "ZeroDivisionError"
    n = x.execution_count
    text = x.traceback_text()
    # IPython 8.5 (ipykernel here) writes "Cell In [N]"; later ones "Cell In[N]".
    assert re.search(rf"Cell In ?\[{n}\], line 4", text), text
    assert re.search(rf"Cell In ?\[{n}\], line 2", text), text
    assert "f()" in text and "return 1 / 0" in text
    assert text.index("line 4") < text.index("line 2"), "outermost frame first"


def test_traceback_shows_lines_of_a_function_from_an_earlier_cell(kernel):
    kernel.execute("def far_away():\n    return 1 / 0").ok()
    for i in range(30):
        kernel.execute(f"{i}").ok()
    # Something in the session may clear linecache; cells stay readable.
    kernel.execute("import linecache; linecache.clearcache()").ok()
    text = kernel.execute("far_away()", stop_on_error=False).traceback_text()
    assert "return 1 / 0" in text, text


def test_source_of_a_function_from_a_silent_cell(kernel):
    kernel.execute("def said_quietly():\n    return 'q'", silent=True).ok()
    x = kernel.execute("import inspect\nprint(inspect.getsource(said_quietly))").ok()
    assert x.stdout.startswith("def said_quietly():\n    return 'q'\n")


def test_traceback_hides_kernel_frames(kernel):
    x = kernel.execute("def g():\n    raise KeyError('k')\ng()", stop_on_error=False)
    text = x.traceback_text()
    assert x.content["ename"] == "KeyError"
    assert not re.search(r"\.py\b", text), f"kernel frames in traceback:\n{text}"
    assert "ferry" not in text.lower() and "ipykernel" not in text, text


def test_syntax_error_reported_with_line(kernel):
    x = kernel.execute("x = 1\ny = (1,\nprint('never')\nz = ]", stop_on_error=False)
    assert x.status == "error"
    assert x.content["ename"] == "SyntaxError"
    text = x.traceback_text()
    assert "line 4" in text or "line 2" in text, text
    assert x.stdout == "", "nothing of a cell that does not compile runs"


def test_error_stops_rest_of_cell(kernel):
    x = kernel.execute("print('before')\n1 / 0\nprint('after')", stop_on_error=False)
    assert x.status == "error"
    assert x.stdout == "before\n"


def test_kernel_serves_after_error(kernel):
    kernel.execute("undefined_name_xyz", stop_on_error=False)
    x = kernel.execute("'fine'").ok()
    assert x.text == "'fine'"


def test_error_with_unprintable_exception_still_reported(kernel):
    code = ("class Bad(Exception):\n"
            "    def __str__(self):\n"
            "        raise RuntimeError('no str')\n"
            "raise Bad()")
    x = kernel.execute(code, stop_on_error=False)
    assert x.status == "error"
    # IPython names the error raised while formatting; either is honest.
    assert x.content["ename"] in ("Bad", "RuntimeError")
    assert len(x.of_type("error")) == 1
    assert harness.strip_ansi("\n".join(x.content["traceback"]))
