"""complete, inspect, is_complete and comm requests."""

import pytest

from harness import strip_ansi

SETUP = (
    "settings = {'alpha': 1, 'beta': 2, 'another': 3}\n"
    "class Widget:\n"
    "    '''A widget for tests.'''\n"
    "    def frobnicate(self, level, *, loud=False):\n"
    "        '''Frobnicates at the given level.'''\n"
    "        return level\n"
    "widget = Widget()\n"
    "naïve_ünïcode = 1\n"
)


@pytest.fixture
def k(kernel):
    kernel.execute(SETUP).ok()
    return kernel


def complete(k, code, cursor=None):
    cursor = len(code) if cursor is None else cursor
    x = k.request("complete_request", {"code": code, "cursor_pos": cursor}).ok()
    c = x.content
    assert c["cursor_end"] == cursor
    return c["matches"], c["cursor_start"]


def inspect(k, code, detail=0, cursor=None):
    cursor = len(code) if cursor is None else cursor
    x = k.request("inspect_request", {"code": code, "cursor_pos": cursor,
                                      "detail_level": detail}).ok()
    c = x.content
    if "text/plain" in c.get("data", {}):  # IPython colours it
        c["data"]["text/plain"] = strip_ansi(c["data"]["text/plain"])
    return c


def is_complete(k, code):
    x = k.request("is_complete_request", {"code": code})
    assert x.reply is not None
    return x.content


# -- complete -----------------------------------------------------------------

def test_complete_builtin(k):
    assert complete(k, "zi") == (["zip"], 0)


def test_complete_attribute_of_a_live_object(k):
    matches, start = complete(k, "widget.frob")
    assert matches == ["frobnicate"] and start == len("widget.")


@pytest.mark.ferry_only("IPython offers the keys without the closing quote and bracket")
def test_complete_dict_keys(k):
    matches, start = complete(k, "settings['a")
    assert set(matches) == {"alpha']", "another']"} and start == len("settings['")


def test_complete_module_names_in_import(k):
    matches, _ = complete(k, "import collec")
    assert "collections" in matches
    matches, start = complete(k, "from os.path import joi")
    assert matches == ["join"] and start == len("from os.path import ")


def test_complete_locals_through_jedi(k):
    code = "def f(parameter_one):\n    return parameter_"
    assert complete(k, code)[0] == ["parameter_one"]


def test_complete_cursor_positions_count_code_points(k):
    # U+1F600 is one code point but two UTF-16 units: offsets are code points.
    code = "s = '\U0001F600'; naïve_"
    matches, start = complete(k, code)
    assert matches == ["naïve_ünïcode"] and start == len(code) - len("naïve_")


def test_complete_in_the_middle_of_the_code(k):
    code = "print(zi)"
    assert complete(k, code, cursor=8) == (["zip"], 6)


def test_complete_magics(k):
    matches, start = complete(k, "%ti")  # line and cell magics, as IPython offers
    assert sorted(matches) == ["%%time", "%%timeit", "%time", "%timeit"] and start == 0
    assert complete(k, "x = 1\n%%wr")[0] == ["%%writefile"]


def test_complete_nothing_is_an_empty_list(k):
    assert complete(k, "qqqzzz_nothing")[0] == []


# -- inspect ------------------------------------------------------------------

def test_inspect_gives_signature_and_docstring(k):
    c = inspect(k, "widget.frobnicate")
    assert c["found"]
    text = c["data"]["text/plain"]
    assert "frobnicate(level, *, loud=False)" in text
    assert "Frobnicates at the given level." in text


def test_inspect_inside_call_parentheses_inspects_the_callee(k):
    c = inspect(k, "sorted(settings, ")
    assert c["found"] and "sorted(iterable, /, *, key=None, reverse=False)" in \
        c["data"]["text/plain"]


@pytest.mark.ferry_only("IPython finds no source for a class defined in a cell")
def test_inspect_detail_1_gives_source_of_a_cell_class(k):
    c = inspect(k, "Widget", detail=1)
    assert c["found"] and "def frobnicate(self, level" in c["data"]["text/plain"]


def test_inspect_builtin_gives_the_same_signature_every_time(k):
    for _ in range(3):
        c = inspect(k, "print")
        assert c["found"]
        text = c["data"]["text/plain"]
        assert "print(*args, sep=' ', end='\\n', file=None, flush=False)" in text
        assert "Prints the values to a stream" in text


def test_inspect_follows_a_name_rebound_to_a_cell_function(k):
    assert "len(obj, /)" in inspect(k, "len")["data"]["text/plain"]
    k.execute('def len(seq, extra=None):\n    "Mine."\n    return 0').ok()
    text = inspect(k, "len")["data"]["text/plain"]
    assert "len(seq, extra=None)" in text and "Mine." in text
    k.execute("del len").ok()
    assert "len(obj, /)" in inspect(k, "len")["data"]["text/plain"]


def test_inspect_of_a_bound_method_does_not_keep_its_object_alive(k):
    k.execute("import gc, weakref\n"
              "class Bag(list):\n    pass\n"
              "bag = Bag()\n"
              "bag_ref = weakref.ref(bag)").ok()
    assert "append(object, /)" in inspect(k, "bag.append")["data"]["text/plain"]
    assert k.execute("del bag\ngc.collect()\nbag_ref() is None").text == "True"


def test_inspect_unknown_name_is_not_found(k):
    c = inspect(k, "no_such_thing_anywhere")
    assert c["found"] is False and c["data"] == {}


# -- is_complete --------------------------------------------------------------

@pytest.mark.parametrize("code", ["1", "print('hi')", "def f(x):\n  return x*2\n\n",
                                  "%time 1", "!ls -l", "zip?", "%%time\nx = 1\n\n", ""])
def test_is_complete_complete(k, code):
    assert is_complete(k, code)["status"] == "complete"


@pytest.mark.parametrize("code, indent", [
    ("def f(x):\n  x*2", "  "),
    ("for i in range(3):", "    "),
    ("print('''hello", ""),
    ("x = [1,", ""),
    ("%%time\nx = 1", ""),
])
def test_is_complete_incomplete_suggests_indent(k, code, indent):
    c = is_complete(k, code)
    assert c["status"] == "incomplete" and c["indent"] == indent


@pytest.mark.parametrize("code", ["import = 7q", "x = )", "1 +* 2"])
def test_is_complete_invalid(k, code):
    assert is_complete(k, code)["status"] == "invalid"


# -- comms --------------------------------------------------------------------

def test_comm_info_has_no_comms(kernel):
    c = kernel.request("comm_info_request", {}).ok().content
    assert c["comms"] == {}
    c = kernel.request("comm_info_request", {"target_name": "jupyter.widget"}).ok().content
    assert c["comms"] == {}


def test_comm_open_to_unknown_target_is_closed(kernel):
    p = kernel.send("comm_open", {"comm_id": "c0ffee", "target_name": "no.such.target",
                                  "data": {}}, expect_reply=False)
    x = p.wait_for(lambda x: x.of_type("comm_close"), what="comm_close")
    assert x.of_type("comm_close")[0]["content"]["comm_id"] == "c0ffee"
    assert not x.of_type("error")
    # and the kernel is fine afterwards
    assert kernel.execute("1 + 1").text == "2"


def test_inspect_with_question_marks_inspects_the_name(k):
    assert inspect(k, "widget.frobnicate?")["found"]


def test_complete_survives_objects_whose_dir_raises(kernel):
    kernel.execute("class Hostile:\n    def __dir__(self):\n        raise RuntimeError('no')\n"
                   "hostile = Hostile()").ok()
    x = kernel.request("complete_request", {"code": "hostile.x", "cursor_pos": 9})
    assert x.content["status"] == "ok" and x.content["matches"] == []
    assert kernel.execute("1 + 1").text == "2"


def test_complete_metadata_gives_types(k):
    def types(code):
        x = k.request("complete_request", {"code": code, "cursor_pos": len(code)}).ok()
        return {t["text"]: t["type"] for t in
                x.content["metadata"]["_jupyter_types_experimental"]}

    assert types("zi")["zip"] in ("class", "function")  # a class; jedi says function
    assert types("widget.frob")["frobnicate"] == "function"
    assert types("impo")["import"] == "keyword"
    assert types("import collec")["collections"] == "module"
