"""Streams: stdout/stderr as batched, ordered stream messages, fd level too."""

import pytest


def test_stdout_and_stderr_arrive_as_stream_messages(kernel):
    x = kernel.execute("import sys\nprint('to out')\nprint('to err', file=sys.stderr)").ok()
    assert x.stdout == "to out\n"
    assert x.stderr == "to err\n"
    assert {m["content"]["name"] for m in x.of_type("stream")} == {"stdout", "stderr"}


def test_many_prints_are_batched_in_order_without_loss(kernel):
    x = kernel.execute("for i in range(1000):\n    print(i)", settle=0.3).ok()
    assert x.stdout == "".join(f"{i}\n" for i in range(1000))
    n = len(x.of_type("stream"))
    assert n <= 50, f"{n} stream messages for 1000 prints: not batched"
    assert x.late == []


def test_stream_output_without_newline_arrives_before_idle(kernel):
    x = kernel.execute("import sys\nsys.stdout.write('no newline')\nsys.stdout.write('!')",
                       settle=0.3).ok()
    assert x.stdout == "no newline!"
    assert x.late == []


def test_stdout_and_stderr_keep_order_when_flushed(kernel):
    code = ("import sys\n"
            "for i in range(5):\n"
            "    print('o', i, flush=True)\n"
            "    print('e', i, file=sys.stderr, flush=True)")
    x = kernel.execute(code).ok()
    seq = "".join(m["content"]["text"] for m in x.of_type("stream"))
    assert seq == "".join(f"o {i}\ne {i}\n" for i in range(5))


def test_fd_level_writes_reach_cell(kernel):
    x = kernel.execute("import os\nos.write(1, b'fd out\\n')\nos.write(2, b'fd err\\n')",
                       settle=0.3).ok()
    assert "fd out\n" in x.stdout
    assert "fd err\n" in x.stderr
    assert x.late == []


def test_os_system_output_reaches_cell(kernel):
    x = kernel.execute("import os\nos.system('echo hi from shell')", settle=0.3).ok()
    assert "hi from shell\n" in x.stdout
    assert x.late == []


def test_subprocess_output_reaches_cell(kernel):
    code = ("import subprocess, sys\n"
            "subprocess.run([sys.executable, '-c',\n"
            "    'import sys; print(\"child out\"); print(\"child err\", file=sys.stderr)'])")
    x = kernel.execute(code, settle=0.3).ok()
    assert "child out\n" in x.stdout
    assert "child err\n" in x.stderr
    assert x.late == []


@pytest.mark.ferry_only("ipykernel's fd watcher loses a character split across reads",
                        strict=False)
def test_utf8_split_across_writes_stays_whole(kernel):
    code = ("import os\n"
            "e = 'é€'.encode()\n"
            "for i in range(len(e)):\n"
            "    os.write(1, e[i:i + 1])\n"
            "os.write(1, b'\\n')")
    x = kernel.execute(code, settle=0.3).ok()
    assert x.stdout == "é€\n"


@pytest.mark.ferry_only("ipykernel's fd watcher drops undecodable bytes (and stops)")
def test_invalid_utf8_is_replaced(fresh_kernel):
    x = fresh_kernel.execute("import os\nos.write(1, b'a\\xffb\\n')", settle=0.3).ok()
    assert x.stdout == "a\ufffdb\n"
