"""Execute: execute_input, execute_result, rich reprs, history names, await."""

import base64

import pytest

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
    "AAAABJRU5ErkJggg==")

# mime type -> (repr method, value it returns, value expected in the bundle)
RICH = {
    "text/html": ("_repr_html_", "'<b>rich</b>'", "<b>rich</b>"),
    "text/markdown": ("_repr_markdown_", "'**rich**'", "**rich**"),
    "image/svg+xml": ("_repr_svg_",
                      "'<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1\" height=\"1\"></svg>'",
                      '<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"></svg>'),
    "text/latex": ("_repr_latex_", "r'$x^2$'", "$x^2$"),
    "application/json": ("_repr_json_", "{'a': [1, 2], 'b': None}", {"a": [1, 2], "b": None}),
    "image/png": ("_repr_png_", f"{PNG!r}", base64.b64encode(PNG).decode()),
}


def test_execute_input_carries_code_and_execution_count(kernel):
    code = "a_value = 3\na_value * 2"
    x = kernel.execute(code).ok()
    inputs = x.of_type("execute_input")
    assert len(inputs) == 1
    assert inputs[0]["content"]["code"] == code
    assert inputs[0]["content"]["execution_count"] == x.execution_count
    assert x.msg_types.index("execute_input") < x.msg_types.index("execute_result")


def test_execute_result_for_trailing_expression(kernel):
    x = kernel.execute("x = 20\nx + 1").ok()
    assert x.text == "21"
    assert x.result["content"]["execution_count"] == x.execution_count
    assert isinstance(x.result["content"]["metadata"], dict)


def test_execute_result_absent_without_trailing_expression(kernel):
    x = kernel.execute("y = 1\nif y:\n    z = 2").ok()
    assert x.result is None
    assert x.outputs == []


def test_execute_result_absent_for_none(kernel):
    x = kernel.execute("None").ok()
    assert x.result is None


def test_execute_runs_every_statement_and_prints_before_result(kernel):
    x = kernel.execute("a = 1\nb = a + 1\nprint(b)\nb * 10").ok()
    assert x.stdout == "2\n"
    assert x.text == "20"
    assert x.msg_types.index("stream") < x.msg_types.index("execute_result")


@pytest.mark.parametrize("mime", list(RICH))
def test_execute_result_includes_rich_repr(kernel, mime):
    method, value, expected = RICH[mime]
    code = (f"class Rich:\n"
            f"    def {method}(self):\n"
            f"        return {value}\n"
            f"    def __repr__(self):\n"
            f"        return 'Rich()'\n"
            f"Rich()")
    data = kernel.execute(code).ok().data
    assert data["text/plain"] == "Rich()"
    assert mime in data, f"{mime} missing from {sorted(data)}"
    if mime == "image/png":
        assert data[mime].replace("\n", "") == expected
    else:
        assert data[mime] == expected


def test_execute_result_from_repr_mimebundle(kernel):
    code = ("class Bundle:\n"
            "    def _repr_mimebundle_(self, include=None, exclude=None):\n"
            "        return {'text/plain': 'plain bundle',\n"
            "                'application/vnd.ferry.test+json': {'k': 1}}\n"
            "Bundle()")
    data = kernel.execute(code).ok().data
    assert data["text/plain"] == "plain bundle"
    assert data["application/vnd.ferry.test+json"] == {"k": 1}


def test_execute_result_repr_failure_falls_back_to_plain(kernel):
    code = ("class Broken:\n"
            "    def _repr_html_(self):\n"
            "        raise RuntimeError('no html')\n"
            "    def __repr__(self):\n"
            "        return 'Broken()'\n"
            "Broken()")
    x = kernel.execute(code)
    assert x.status == "ok", x.content
    assert x.text == "Broken()"
    assert "text/html" not in x.data


def test_underscore_names_hold_last_three_results(kernel):
    for v in ("111", "222", "333"):
        kernel.execute(v).ok()
    assert kernel.execute("(_, __, ___)").ok().text == "(333, 222, 111)"


def test_in_and_out_hold_history(kernel):
    first = kernel.execute("'abc'.upper()").ok()
    n = first.execution_count
    x = kernel.execute(f"(In[{n}], Out[{n}])").ok()
    assert x.text == "(\"'abc'.upper()\", 'ABC')"


def test_short_containers_print_on_one_line_long_ones_wrap(kernel):
    assert kernel.execute("{'b': 1, 'a': (2,)}").ok().text == "{'b': 1, 'a': (2,)}"
    assert kernel.execute("x = [1]; x.append(x); x").ok().text == "[1, [...]]"
    lines = kernel.execute("list(range(100))").ok().text.splitlines()
    assert lines[0] == "[0," and lines[-1] == " 99]" and len(lines) == 100


def test_out_is_bounded_by_cache_size_as_in_ipython(fresh_kernel):
    k = fresh_kernel
    # IPython's InteractiveShell.cache_size, 1000 by default.
    assert k.execute("get_ipython().cache_size").ok().text == "1000"


@pytest.mark.ferry_only("get_ipython().cache_size changes IPython's setting only at start")
def test_full_output_cache_drops_its_oldest_fifth_with_a_warning(fresh_kernel):
    k = fresh_kernel
    k.execute("get_ipython().cache_size = 5").ok()
    counts = [k.execute(f"{i} * 10").ok().execution_count for i in range(5)]
    x = k.execute("50").ok()  # Out is full (5): the oldest fifth, at least 2, goes
    assert "Output cache limit (currently 5 entries) hit.\nFlushing oldest 2 entries." \
        in x.stderr
    counts.append(x.execution_count)
    kept = k.execute("sorted(Out), sorted(n for n in range(1, 20) if f'_{n}' in globals()),"
                     f" Out[{counts[-1]}], _{counts[2]}, len(In), _i{counts[0]}").ok().text
    assert kept == repr((counts[2:], counts[2:], 50, 20, counts[-1] + 2, "0 * 10"))


def test_top_level_await_returns_value(kernel):
    x = kernel.execute("import asyncio\nawait asyncio.sleep(0, result=42)").ok()
    assert x.text == "42"


def test_top_level_async_for_and_with(kernel):
    code = ("import asyncio, contextlib\n"
            "async def agen():\n"
            "    for i in range(3):\n"
            "        await asyncio.sleep(0)\n"
            "        yield i\n"
            "@contextlib.asynccontextmanager\n"
            "async def ctx():\n"
            "    yield 'in'\n"
            "got = [i async for i in agen()]\n"
            "async with ctx() as c:\n"
            "    got.append(c)\n"
            "got")
    assert kernel.execute(code).ok().text == "[0, 1, 2, 'in']"
