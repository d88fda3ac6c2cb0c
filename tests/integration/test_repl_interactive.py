"""The interactive prompt of `ferry`, typed at through tmux."""

import os
import re
import time

import psutil
import pytest

from repl_harness import (env, kernel_args, repl_kernel,  # noqa: F401
                          tmux_factory)


@pytest.fixture
def repl(repl_kernel, tmux_factory):
    """ferry at its first prompt, on the kernel under test."""
    t = tmux_factory(kernel_args(repl_kernel))
    t.wait_prompt(1)
    return t


def test_prompt_runs_cell_and_numbers_output(repl):
    repl.type("6 * 7")
    repl.send("Enter")
    screen = repl.wait_prompt(2)
    assert "Out[1]: 42" in screen


def test_incomplete_cell_continues_with_suggested_indent(repl):
    repl.type("def twice(x):")
    repl.send("Enter")
    repl.wait_for(r"^   \.\.\.: {5}$")  # prompt, then the indent already typed
    repl.type("return 2 * x")
    repl.send("Enter")
    repl.wait_for(r"^   \.\.\.: {5}$")
    repl.send("Enter")  # a blank line ends the block
    repl.wait_prompt(2)
    repl.type("twice(21)")
    repl.send("Enter")
    assert "Out[2]: 42" in repl.wait_prompt(3)


def test_tab_completes_from_the_kernel(repl):
    repl.type("import collec")
    repl.send("Tab")
    repl.wait_for(r"^In \[1\]: import collections\s*$")
    repl.send("Enter")
    repl.wait_prompt(2)
    repl.type("collections.OrderedD")
    repl.send("Tab")
    repl.wait_for(r"^In \[2\]: collections\.OrderedDict\s*$")


def test_tab_lists_several_matches(repl):
    repl.type("zz_alpha = zz_beta = 1")
    repl.send("Enter")
    repl.wait_prompt(2)
    repl.type("zz_")
    repl.send("Tab")
    screen = repl.wait_for(r"zz_alpha\s+zz_beta")
    assert re.search(r"^In \[2\]: zz_\s*$", screen, re.M)


def test_history_is_recalled_and_kept_across_sessions(env, repl_kernel, tmux_factory):
    first = tmux_factory(kernel_args(repl_kernel))
    first.wait_prompt(1)
    first.type("answer = 41 + 1")
    first.send("Enter")
    first.wait_prompt(2)
    first.send("Up")
    first.wait_for(r"^In \[2\]: answer = 41 \+ 1\s*$")
    first.send("C-u", "C-d")
    assert first.exit_status() == 0
    first.close()

    second = tmux_factory(kernel_args(repl_kernel))
    second.wait_prompt(1)
    second.send("C-r")
    second.type("41")
    second.wait_for(r"answer = 41 \+ 1")
    second.send("Enter")
    second.wait_prompt(2)
    second.type("answer")
    second.send("Enter")
    assert "Out[2]: 42" in second.wait_prompt(3)


def test_ctrl_c_interrupts_a_running_cell(repl):
    repl.type("import time; print('sleeping', flush=True); time.sleep(60)")
    repl.send("Enter")
    repl.wait_for(r"^sleeping")  # the cell runs: the interrupt has something to end
    repl.send("C-c")
    screen = repl.wait_prompt(2, timeout=15)
    assert "KeyboardInterrupt" in screen
    # The interrupted cell took number 1, as in IPython.
    repl.type("'still alive'")
    repl.send("Enter")
    assert "Out[2]: 'still alive'" in repl.wait_prompt(3)


def test_ctrl_c_at_the_prompt_discards_the_line(repl):
    repl.type("this is not python")
    repl.wait_for("this is not python")
    repl.send("C-c")
    repl.wait_for(r"this is not python\^C\s*\nIn \[1\]: $")
    repl.type("1 + 1")
    repl.send("Enter")
    screen = repl.wait_prompt(2)
    assert "Out[1]: 2" in screen
    assert "SyntaxError" not in screen


def test_ctrl_c_discards_a_half_typed_cell(repl):
    repl.type("for i in range(3):")
    repl.send("Enter")
    repl.wait_for(r"^   \.\.\.: ")
    repl.send("C-c")
    repl.wait_for(r"\^C\s*\nIn \[1\]: $")
    repl.type("'fresh'")
    repl.send("Enter")
    assert "Out[1]: 'fresh'" in repl.wait_prompt(2)


def test_input_prompt_and_password_without_echo(repl):
    repl.type("name = input('name? ')")
    repl.send("Enter")
    repl.wait_for(r"^name\? $")
    repl.type("Ada")
    repl.send("Enter")
    repl.wait_prompt(2)
    repl.type("import getpass; pw = getpass.getpass('password: ')")
    repl.send("Enter")
    repl.wait_for(r"^password: $")
    repl.type("hunter2")
    repl.send("Enter")
    repl.wait_prompt(3)
    repl.type("print(name, len(pw))")
    repl.send("Enter")
    screen = repl.wait_prompt(4)
    assert "Ada 7" in screen
    assert "hunter2" not in screen


def test_ctrl_c_during_input_interrupts_the_cell(repl):
    repl.type("input('wait: ')")
    repl.send("Enter")
    repl.wait_for(r"^wait: $")
    repl.send("C-c")
    screen = repl.wait_prompt(2, timeout=15)
    assert "KeyboardInterrupt" in screen


def test_ctrl_d_exits_and_stops_the_kernel(repl, env):
    kernels = [p.pid for p in psutil.Process(repl.pid()).children(recursive=True)]
    assert kernels, "no kernel process under ferry"
    repl.send("C-d")
    assert repl.exit_status() == 0
    for pid in kernels:
        assert not psutil.pid_exists(pid) or \
            psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_exit_command_ends_the_session(repl):
    repl.type("exit()")
    repl.send("Enter")
    assert repl.exit_status() == 0


def test_background_output_appears_above_the_prompt(repl, tmp_path):
    # The thread prints once the test says so, after the line is half typed
    # (a timer could fire before, on a loaded machine, and prove nothing).
    flag = tmp_path / "print-now"
    repl.type("import os, threading, time; threading.Thread(daemon=True, target=lambda: "
              f"([time.sleep(0.05) for _ in iter(lambda: os.path.exists({str(flag)!r}), True)], "
              "print('from the background'))).start()")
    repl.send("Enter")
    repl.wait_prompt(2)
    repl.type("half typed")
    repl.wait_for(r"^In \[2\]: half typed")
    flag.touch()
    repl.wait_for(r"^from the background\s*$")
    # The prompt and what was typed come back below the output.
    repl.wait_for(r"from the background\s*\nIn \[2\]: half typed")
    repl.send("C-u")
    repl.type("'done'")
    repl.send("Enter")
    assert "Out[2]: 'done'" in repl.wait_prompt(3)


def test_stderr_is_red_on_a_terminal(repl):
    repl.type("import sys; print('to-err', file=sys.stderr)")
    repl.send("Enter")
    repl.wait_prompt(2)
    assert "\x1b[31mto-err" in repl.screen(escapes=True)


def test_traceback_keeps_the_kernels_colours(repl):
    repl.type("1 / 0")
    repl.send("Enter")
    screen = repl.wait_prompt(2)
    assert "ZeroDivisionError" in screen
    assert "\x1b[" in repl.screen(escapes=True).split("1 / 0", 1)[1]


def test_output_appears_while_the_cell_runs(repl):
    repl.type("import time; [(print('tick', i, flush=True), time.sleep(1)) for i in range(3)];")
    repl.send("Enter")
    repl.wait_for(r"^tick 0\s*$", timeout=10)
    assert "In [2]" not in repl.screen()
    repl.wait_prompt(2, timeout=15)


def test_update_display_redraws_in_place(repl, repl_kernel):
    repl.type("from IPython.display import display, clear_output; import time")
    repl.send("Enter")
    repl.wait_prompt(2)
    repl.type("h = display('first', display_id=True); time.sleep(0.3); "
              "h.update('second')")
    repl.send("Enter")
    screen = repl.wait_prompt(3)
    assert re.search(r"^'second'\s*$", screen, re.M)
    assert not re.search(r"^'first'\s*$", screen, re.M)


def test_clear_output_makes_a_progress_line(repl, repl_kernel):
    repl.type("from IPython.display import clear_output; import time")
    repl.send("Enter")
    repl.wait_prompt(2)
    repl.type("for i in range(5): clear_output(wait=True); print('step', i); time.sleep(0.1)")
    repl.send("Enter")
    repl.send("Enter")
    screen = repl.wait_prompt(3)
    assert re.search(r"^step 4\s*$", screen, re.M)
    assert not re.search(r"^step 1\s*$", screen, re.M)


def test_page_payload_goes_through_the_pager(env, repl_kernel, tmux_factory):
    t = tmux_factory(kernel_args(repl_kernel), extra_env={"PAGER": "cat"})
    t.wait_prompt(1)
    t.type("len?")
    t.send("Enter")
    screen = t.wait_prompt(2)
    assert re.search(r"Return the number of items in a container", screen)


def test_dead_kernel_is_reported_and_restarted(repl):
    repl.type("import os; os._exit(3)")
    repl.send("Enter")
    repl.wait_for(r"exited with status 3", timeout=20)
    repl.wait_for(r"Restart the kernel\? \[Y/n\] $")
    repl.send("Enter")
    repl.wait_for(r"kernel restarted", timeout=60)
    repl.wait_prompt(1)
    repl.type("'again'")
    repl.send("Enter")
    assert "Out[1]: 'again'" in repl.wait_prompt(2)


def test_dead_kernel_not_restarted_ends_the_session(repl):
    repl.type("import os; os._exit(0)")
    repl.send("Enter")
    repl.wait_for(r"Restart the kernel\? \[Y/n\] $", timeout=20)
    repl.type("n")
    repl.send("Enter")
    assert repl.exit_status() == 1


def test_hangup_stops_the_kernel(repl, env):
    repl.type("import time; print('sleeping', flush=True); time.sleep(60)")
    repl.send("Enter")
    repl.wait_for(r"^sleeping")  # a kernel busy in a cell
    pid = repl.pid()
    os.kill(pid, 1)  # SIGHUP, as when the terminal goes away
    assert repl.exit_status(timeout=30) == 1
    env.guard.check()


def test_sigkill_of_ferry_ends_its_kernel_and_leaves_no_runtime_files(repl, env,
                                                                     repl_kernel):
    kernel_dir = None
    if repl_kernel == "ferry":
        repl.type("import ferry; print('dir=' + ferry.runtime_dir)")
        repl.send("Enter")
        kernel_dir = re.search(r"^dir=(\S+)", repl.wait_prompt(2), re.M).group(1)
        assert os.path.isdir(kernel_dir)
    else:
        repl.type("x = 1")
        repl.send("Enter")
        repl.wait_prompt(2)
    os.kill(repl.pid(), 9)  # no chance to clean up
    assert repl.exit_status(timeout=30) == 137
    env.guard.check(timeout=20)  # the kernel (and what it started) went too
    deadline = time.monotonic() + 20
    while (os.listdir(env.runtime_dir) or kernel_dir and os.path.exists(kernel_dir)) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert os.listdir(env.runtime_dir) == []  # the REPL's connection file and log
    assert not (kernel_dir and os.path.exists(kernel_dir))  # the kernel's own


@pytest.mark.parametrize("kind", ["ferry", "ipykernel"])
def test_ctrl_c_at_an_attached_prompt_interrupts_the_running_cell(kind, env, tmux_factory,
                                                                   tmp_path):
    import harness
    # The kernel under test (FERRY_TEST_KERNEL: a sanitizer build has no build/).
    argv = harness.IPYKERNEL_ARGV if kind == "ipykernel" else harness.kernel_argv()
    k = harness.start_kernel(tmp_path, argv=argv)
    try:
        repl = tmux_factory(["--existing", k.km.connection_file])
        repl.wait_prompt(1)
        repl.type("import time; print('sleeping', flush=True); time.sleep(60)")
        repl.send("Enter")
        repl.wait_for(r"^sleeping", timeout=30)
        repl.send("C-c")
        screen = repl.wait_prompt(2, timeout=30)
        assert "KeyboardInterrupt" in screen
        repl.type("'still alive'")
        repl.send("Enter")
        assert "Out[2]: 'still alive'" in repl.wait_prompt(3)
        ferry = psutil.Process(repl.pid())
        repl.send("C-d")
        ferry.wait(timeout=20)
        assert k.returncode() is None  # an attached REPL leaves the kernel running
        assert k.execute("1 + 1").ok().text == "2"
    finally:
        k.stop()
