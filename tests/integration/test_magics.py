"""IPython habits in cells: %magics, %%cell magics, !shell, obj? and obj??."""

import importlib.util
import time

import pytest

# What ipykernel does differently (or not at all); the rest holds for both.
FERRY_ONLY = pytest.mark.ferry_only("ferry's magics go further than IPython's here")



def test_time_prints_times_and_returns_the_value(kernel):
    x = kernel.execute("%time sum(range(10))").ok()
    assert "CPU times: user" in x.stdout and "Wall time:" in x.stdout
    assert x.text == "45"


def test_time_runs_a_statement_in_the_namespace(kernel):
    kernel.execute("%time timed_value = 6 * 7").ok()
    assert kernel.execute("timed_value").text == "42"


def test_cell_time_runs_the_body_and_shows_its_result(kernel):
    x = kernel.execute("%%time\ndef cell_timed(n):\n    return n + 1\ncell_timed(1)").ok()
    assert "Wall time:" in x.stdout
    assert x.text == "2"
    assert kernel.execute("cell_timed(41)").text == "42"


@FERRY_ONLY
def test_cell_time_error_points_at_the_body_line(kernel):
    x = kernel.execute("%%time\na = 1\n1/0")
    assert x.status == "error" and x.content["ename"] == "ZeroDivisionError"
    assert "line 3" in x.traceback_text() and "1/0" in x.traceback_text()


def test_timeit_reports_mean_and_spread(kernel):
    x = kernel.execute("%timeit -n 10 -r 3 sum(range(100))").ok()
    assert "per loop (mean ± std. dev. of 3 runs, 10 loops each)" in x.stdout


def test_timeit_o_returns_a_result(kernel):
    x = kernel.execute("r = %timeit -o -q -n 5 -r 2 len('abc')\n(r.loops, r.repeat, r.best > 0)")
    assert x.ok().text == "(5, 2, True)"


def test_cell_timeit_times_the_body_after_setup(kernel):
    x = kernel.execute("%%timeit -n 3 -r 2 data = list(range(50))\nsorted(data)").ok()
    assert "2 runs, 3 loops each" in x.stdout


def test_shell_escape_streams_output_and_keeps_the_exit_status(kernel):
    x = kernel.execute("!echo hello from the shell\n!exit 3").ok()
    assert "hello from the shell" in x.stdout
    assert kernel.execute("_exit_code").text == "3"


def test_shell_escape_expands_python_values(kernel):
    kernel.execute("who = 'ferry'").ok()
    assert "hi ferry 5" in kernel.execute("!echo hi $who {2 + 3}").ok().stdout


def test_shell_output_assigned_to_a_name_is_a_list_of_lines(kernel):
    x = kernel.execute("lines = !printf 'a\\nb\\n'\nlines").ok()
    assert x.text == "['a', 'b']"


def test_shell_escape_inside_a_block(kernel):
    x = kernel.execute("for i in range(2):\n    !echo loop{i}").ok()
    assert "loop0" in x.stdout and "loop1" in x.stdout


def test_cd_and_pwd(kernel, tmp_path):
    x = kernel.execute(f"%cd {tmp_path}").ok()
    assert str(tmp_path) in x.stdout
    assert kernel.execute("%pwd").text == repr(str(tmp_path))
    assert kernel.execute("import os; os.getcwd()").text == repr(str(tmp_path))
    kernel.execute("%cd -").ok()
    assert kernel.execute("%pwd").text != repr(str(tmp_path))


def test_env_sets_and_reads_variables(kernel):
    x = kernel.execute("%env FERRY_MAGIC_TEST=on").ok()
    assert "env: FERRY_MAGIC_TEST=on" in x.stdout
    assert kernel.execute("%env FERRY_MAGIC_TEST").text == "'on'"
    assert kernel.execute("import os; os.environ['FERRY_MAGIC_TEST']").text == "'on'"
    assert "FERRY_MAGIC_TEST" in kernel.execute("%env").text


def test_env_listing_hides_likely_secrets(kernel):
    kernel.execute("%env FERRY_API_TOKEN=s3cr3t").ok()
    listing = kernel.execute("%env").text
    assert "s3cr3t" not in listing and "'FERRY_API_TOKEN': '<hidden>'" in listing


def test_who_lists_user_variables_only(fresh_kernel):
    k = fresh_kernel
    k.execute("alpha = 1\nbeta = 'b'\ndef gamma(): pass").ok()
    assert k.execute("%who").stdout.split() == ["alpha", "beta", "gamma"]
    assert k.execute("%who int").stdout.split() == ["alpha"]
    assert k.execute("%who_ls").text == "['alpha', 'beta', 'gamma']"
    whos = k.execute("%whos").stdout
    assert "Variable" in whos and "alpha" in whos and "int" in whos


def test_matplotlib_inline_is_accepted(kernel):
    kernel.execute("%matplotlib inline").ok()


@FERRY_ONLY
def test_matplotlib_gui_backends_are_refused_clearly(kernel):
    x = kernel.execute("%matplotlib qt")
    assert x.content["ename"] == "UsageError" and "inline" in x.content["evalue"]


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                    reason="matplotlib is not installed")
def test_matplotlib_figures_show_inline_at_cell_end_and_at_show(kernel):
    x = kernel.execute("%matplotlib inline\nimport matplotlib.pyplot as plt\n"
                       "plt.plot([1, 2, 3]);", timeout=60).ok()
    (fig,) = x.of_type("display_data")
    assert fig["content"]["data"]["image/png"].startswith("iVBORw0KGgo")
    x = kernel.execute("plt.figure(); plt.plot([3, 1]); plt.show()\nprint('after')\n"
                       "len(plt.get_fignums())").ok()
    assert len(x.of_type("display_data")) == 1 and x.text == "0"


def test_unknown_magic_is_a_clear_error(kernel):
    x = kernel.execute("%nosuchmagic 1 2")
    assert x.status == "error"
    assert x.content["ename"] == "UsageError"
    assert "%nosuchmagic" in x.content["evalue"]
    # as in IPython, the message alone: no traceback through the kernel
    assert "Traceback" not in x.traceback_text()


def test_unknown_cell_magic_is_a_clear_error(kernel):
    x = kernel.execute("%%nosuchcell\nbody")
    assert x.content["ename"] == "UsageError" and "%%nosuchcell" in x.content["evalue"]


def test_valid_python_with_percent_and_bang_is_untouched(kernel):
    x = kernel.execute("s = '''\n%notamagic\n!notashell\n'''\nv = (10\n% 3)\n(s.split(), v)")
    assert x.ok().text == "(['%notamagic', '!notashell'], 1)"


def test_magic_after_code_runs_in_order(kernel):
    x = kernel.execute("order = [1]\n%time order.append(2)\norder").ok()
    assert x.text == "[1, 2]"


def test_question_mark_pages_help(kernel):
    x = kernel.execute("len?").ok()
    (page,) = x.content["payload"]
    assert page["source"] == "page" and page["start"] == 0
    assert "Return the number of items" in page["data"]["text/plain"]


@FERRY_ONLY
def test_double_question_mark_shows_source(kernel):
    kernel.execute("def documented(a, b=2):\n    '''Adds.'''\n    return a + b").ok()
    text = kernel.execute("documented??").ok().content["payload"][0]["data"]["text/plain"]
    assert "return a + b" in text and "documented(a, b=2)" in text


def test_question_mark_on_unknown_name_says_not_found(kernel):
    x = kernel.execute("no_such_name_here?").ok()
    assert "not found" in x.stdout and x.content["payload"] == []


def test_get_ipython_runs_line_magics(kernel):
    x = kernel.execute("ip = get_ipython()\n(ip.run_line_magic('pwd', '') == __import__('os').getcwd(), "
                       "'ip' in ip.user_ns)")
    assert x.ok().text == "(True, True)"


def test_writefile_and_bash_cell_magics(kernel, tmp_path):
    path = tmp_path / "out.txt"
    kernel.execute(f"%%writefile {path}\nline one\n").ok()
    assert path.read_text() == "line one\n"
    assert "from bash" in kernel.execute("%%bash\necho from bash").ok().stdout


@FERRY_ONLY
def test_exception_with_broken_str_reported_under_its_name(kernel):
    x = kernel.execute("class Odd(Exception):\n    def __str__(self):\n        raise RuntimeError\n"
                       "raise Odd()")
    assert x.status == "error" and x.content["ename"] == "Odd"
    assert any(m["content"]["ename"] == "Odd" for m in x.of_type("error"))


@FERRY_ONLY
def test_definitions_next_to_magics_are_exported_for_workers(kernel):
    # The re-export analysis sees the rewritten cell: definitions beside a
    # magic, and in a %%time body, are exported; the magic calls are not.
    kernel.execute("%time noop = None\ndef beside_magic(x):\n    return x * 3").ok()
    kernel.execute("%%time\ndef in_cell_magic(x):\n    return x").ok()
    names = kernel.execute("from ferry import _kernel\n_kernel.shell.recorder.exported_names()").text
    assert "'beside_magic'" in names and "'in_cell_magic'" in names


def test_time_inside_a_function_sees_its_locals(kernel):
    x = kernel.execute("def timed_inside():\n    local_value = 20\n"
                       "    result = %time local_value + 1\n    return result\ntimed_inside()").ok()
    assert x.text == "21" and "Wall time:" in x.stdout


@FERRY_ONLY
def test_html_and_markdown_cell_magics_display_the_cell(kernel):
    x = kernel.execute("%%html\n<b>bold</b>\n").ok()
    assert x.of_type("display_data")[0]["content"]["data"] == {"text/html": "<b>bold</b>"}
    x = kernel.execute("%%markdown\n# Title").ok()
    assert x.of_type("display_data")[0]["content"]["data"] == {"text/markdown": "# Title"}


@FERRY_ONLY
def test_interrupt_stops_a_shell_command(fresh_kernel, tmp_path):
    import psutil
    k = fresh_kernel
    marker = tmp_path / "pid"
    p = k.submit(f"!echo started; sleep 30 & echo $! > {marker}; wait")
    p.wait_for_stdout("started")
    p.wait_for(lambda x: marker.exists() and marker.read_text().strip(), what="pid file")
    pid = int(marker.read_text())
    k.km.interrupt_kernel()
    x = p.finish(timeout=10)
    assert x.content["ename"] == "KeyboardInterrupt"

    def gone():
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True
    # SIGKILL is sent before the reply, but on a loaded machine the process
    # may take a moment to be scheduled and die.
    deadline = time.monotonic() + 30
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone()
    assert k.execute("1 + 1").text == "2"


def test_pip_runs_the_kernels_own_pip(kernel):
    x = kernel.execute("%pip --version", timeout=30).ok()
    assert "pip " in x.stdout and kernel.execute("_exit_code").text == "0"


def test_run_executes_a_script_as_main_with_argv(kernel, tmp_path):
    script = tmp_path / "script.py"
    script.write_text("import sys\nargs = sys.argv[1:]\n"
                      "if __name__ == '__main__':\n    print('ran as main')\n")
    x = kernel.execute(f"%run {script} one two").ok()
    assert "ran as main" in x.stdout
    assert kernel.execute("args").text == "['one', 'two']"


@FERRY_ONLY
def test_run_missing_file_is_a_usage_error(kernel):
    x = kernel.execute("%run /no/such/script.py")
    assert x.content["ename"] == "UsageError" and "not found" in x.content["evalue"]


def test_autoreload_picks_up_edited_modules(fresh_kernel):
    k = fresh_kernel
    mod = k.cwd / "edited_mod.py"
    mod.write_text("def answer():\n    return 1\n")
    k.execute("%load_ext autoreload\n%autoreload 2\nimport edited_mod\n"
              "f = edited_mod.answer\nf()").ok()
    mod.write_text("def answer():\n    return 4200  # edited\n")
    # both the module and the function object taken before the edit see it
    assert k.execute("(edited_mod.answer(), f())").ok().text == "(4200, 4200)"


def test_load_ext_of_other_extensions_is_a_clear_error(kernel):
    x = kernel.execute("%load_ext some_extension_nobody_has")
    assert x.status == "error" and "some_extension_nobody_has" in x.content["evalue"]


@FERRY_ONLY
@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                    reason="matplotlib is not installed")
def test_child_processes_can_still_import_pyplot(kernel):
    # The inline backend is chosen in the kernel process only: a script run
    # from a cell inherits the environment and must not be sent to ferry's.
    x = kernel.execute("import matplotlib\n"
                       "out = !/usr/bin/python3 -c 'import matplotlib.pyplot as p; print(p.get_backend())'\n"
                       "(matplotlib.get_backend(), out[-1].lower())", timeout=60).ok()
    assert x.text == "('module://ferry._mpl_inline', 'agg')"


def test_capture_holds_output_back_and_keeps_it(kernel):
    x = kernel.execute("%%capture cap\nprint('hidden out')\nimport sys\n"
                       "print('hidden err', file=sys.stderr)\n!echo hidden shell\n"
                       "display('hidden display')\n42").ok()
    assert "hidden" not in x.stdout + x.stderr
    assert not x.of_type("display_data") and x.result is None
    x = kernel.execute("(cap.stdout.replace('\\r', ''), cap.stderr, len(cap.outputs))").ok()
    assert x.text == "('hidden out\\nhidden shell\\n', 'hidden err\\n', 2)"  # IPython: \r\n
    shown = kernel.execute("cap.show()").ok()
    assert "hidden out" in shown.stdout and len(shown.of_type("display_data")) == 2


def test_reset_f_deletes_user_variables(fresh_kernel):
    k = fresh_kernel
    k.execute("doomed = 1\ndef doomed_f(): pass").ok()
    k.execute("%reset -f").ok()
    x = k.execute("[n for n in ('doomed', 'doomed_f', 'In', 'Out') if n in globals()]").ok()
    assert x.text == "['In', 'Out']"


def test_reset_asks_first(fresh_kernel):
    k = fresh_kernel
    k.execute("kept = 1").ok()
    x = k.execute("%reset", stdin_handler=lambda content: "n").ok()
    assert "Nothing done." in x.stdout
    assert k.execute("kept").text == "1"
