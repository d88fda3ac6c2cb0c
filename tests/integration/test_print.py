"""print(): every keyword and corner behaves as Python's own print.

ferry writes a print() to its own streams in one piece (kernel/pyprint.c);
these pin down that nothing a user can see differs from the builtin."""

import pytest


def test_arguments_are_joined_by_spaces_and_end_with_a_newline(kernel):
    code = "print(1, 'a', 2.5, True, None, -7, 10**30)\nprint()\nprint('')"
    assert kernel.execute(code).ok().stdout == "1 a 2.5 True None -7 " + "1" + "0" * 30 + "\n\n\n"


def test_sep_and_end(kernel):
    code = ("print(1, 2, 3, sep='-', end='!')\n"
            "print(1, 2, sep='', end='')\n"
            "print(1, 2, sep=None, end=None)\n"
            "print('x', sep='unused', end='\\n\\n')\n"
            "print(sep='-', end='.')\n"
            "print('é', '€', sep='→')")
    assert kernel.execute(code).ok().stdout == "1-2-3!121 2\nx\n\n.é→€\n"


def test_bad_sep_or_end_is_the_builtins_type_error(kernel):
    x = kernel.execute("print(1, 2, sep=5)")
    assert (x.content["ename"], x.content["evalue"]) == \
        ("TypeError", "sep must be None or a string, not int")
    x = kernel.execute("print(1, end=b'')")
    assert (x.content["ename"], x.content["evalue"]) == \
        ("TypeError", "end must be None or a string, not bytes")
    x = kernel.execute("print(1, colour='red')")
    assert x.content["ename"] == "TypeError"
    assert "colour" in x.content["evalue"]
    assert x.stdout == ""


def test_str_subclasses_as_sep_end_and_arguments_use_their_str(kernel):
    code = ("class S(str):\n"
            "    def __str__(self):\n"
            "        return '<' + self + '>'\n"
            "print(S('a'), 'b', sep=S('-'), end=S('.'))\n"
            "print()")
    assert kernel.execute(code).ok().stdout == "<a><->b<.>\n"


def test_file_argument_writes_there_and_not_to_the_cell(kernel):
    code = ("import io, sys\n"
            "buf = io.StringIO()\n"
            "print('into', 'buf', sep='_', file=buf)\n"
            "print('err', file=sys.stderr)\n"
            "print('out', file=None)\n"
            "print(repr(buf.getvalue()))")
    x = kernel.execute(code).ok()
    assert x.stdout == "out\n'into_buf\\n'\n"
    assert x.stderr == "err\n"


def test_redirected_stdout_receives_print(kernel):
    code = ("import contextlib, io\n"
            "buf = io.StringIO()\n"
            "with contextlib.redirect_stdout(buf):\n"
            "    print('hidden', 1)\n"
            "print('seen', repr(buf.getvalue()))")
    assert kernel.execute(code).ok().stdout == "seen 'hidden 1\\n'\n"


def test_stdout_none_swallows_print(kernel):
    code = ("import sys\n"
            "saved, sys.stdout = sys.stdout, None\n"
            "try:\n"
            "    print('nowhere')\n"
            "finally:\n"
            "    sys.stdout = saved\n"
            "print('back')")
    assert kernel.execute(code).ok().stdout == "back\n"


def test_flush_calls_the_streams_flush_once_per_flushing_print(kernel):
    code = ("import sys\n"
            "calls = []\n"
            "sys.stdout.flush = lambda: calls.append('f')\n"
            "try:\n"
            "    print('a', flush=True)\n"
            "    print('b')\n"
            "    print('c', flush=1)\n"
            "    print('d', flush=0)\n"
            "finally:\n"
            "    del sys.stdout.flush\n"
            "print(calls)")
    assert kernel.execute(code).ok().stdout == "a\nb\nc\nd\n['f', 'f']\n"


def test_replaced_write_is_used(kernel):
    code = ("import sys\n"
            "seen = []\n"
            "real = sys.stdout.write\n"
            "sys.stdout.write = seen.append\n"
            "try:\n"
            "    print('a', 1)\n"
            "finally:\n"
            "    sys.stdout.write = real\n"
            "print(seen)")
    assert kernel.execute(code).ok().stdout == "['a', ' ', '1', '\\n']\n"


def test_output_made_by_str_lands_where_print_puts_it(kernel):
    # print(1, A(), 2) writes "1", " ", then calls str(A()), then writes.
    code = ("class A:\n"
            "    def __str__(self):\n"
            "        print('inner')\n"
            "        return 'a'\n"
            "print(1, A(), 2)")
    assert kernel.execute(code).ok().stdout == "1 inner\na 2\n"


@pytest.mark.ferry_only("ipykernel orders fd-level output with print() only by chance",
                        strict=False)
def test_fd_output_made_by_str_lands_where_print_puts_it(kernel):
    code = ("import os\n"
            "class A:\n"
            "    def __str__(self):\n"
            "        os.write(1, b'fd\\n')\n"
            "        return 'a'\n"
            "print(1, A(), 2)")
    assert kernel.execute(code).ok().stdout == "1 fd\na 2\n"


def test_exception_in_str_keeps_what_was_printed_before_it(kernel):
    code = ("class Bad:\n"
            "    def __str__(self):\n"
            "        raise ValueError('no str')\n"
            "print('kept', Bad(), 'lost')")
    x = kernel.execute(code)
    assert (x.content["ename"], x.content["evalue"]) == ("ValueError", "no str")
    assert x.stdout == "kept "


def test_int_too_large_for_str_keeps_what_was_printed_before_it(kernel):
    code = ("import sys\n"
            "sys.set_int_max_str_digits(1000)\n"
            "try:\n"
            "    print('big', 10**2000)\n"
            "finally:\n"
            "    sys.set_int_max_str_digits(0)")
    x = kernel.execute(code)
    assert x.content["ename"] == "ValueError"
    assert x.stdout == "big "


@pytest.mark.ferry_only("ipykernel takes the lone surrogate and fails when it sends")
def test_unencodable_text_raises_after_what_came_before(kernel):
    x = kernel.execute("print('ok', '\\ud800')")
    assert x.content["ename"] == "UnicodeEncodeError"
    assert x.stdout == "ok "


def test_print_still_looks_like_the_builtin(kernel):
    code = ("import builtins, inspect, pickle\n"
            "print(type(print).__name__, print.__name__, print.__module__,\n"
            "      print.__self__ is builtins, print is builtins.print,\n"
            "      pickle.loads(pickle.dumps(print)) is print)\n"
            "print(inspect.signature(print))\n"
            "print(print.__doc__.splitlines()[0])")
    assert kernel.execute(code).ok().stdout == (
        "builtin_function_or_method print builtins True True True\n"
        "(*args, sep=' ', end='\\n', file=None, flush=False)\n"
        "Prints the values to a stream, or to sys.stdout by default.\n")


@pytest.mark.ferry_only("ipykernel's forked child repeats the parent's unsent output")
def test_print_in_a_forked_child_reaches_the_cell(kernel):
    code = ("import os\n"
            "print('parent before')\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    print('child', 1)\n"
            "    os._exit(0)\n"
            "os.waitpid(pid, 0)\n"
            "print('parent after')")
    assert kernel.execute(code).ok().stdout == "parent before\nchild 1\nparent after\n"
