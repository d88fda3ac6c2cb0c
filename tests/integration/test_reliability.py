"""What a careless client, a tired machine and an attacker do to a kernel:
interrupts that land at the wrong moment, signals, hostile input.  Each test
names the failure it guards against."""

import os
import random
import signal
import time

import pytest

# A profile hook that sends SIGINT to the kernel the moment ferry's own code
# (not the cell's) calls `name`: an interrupt that arrives just as a cell ends
# lands there, deterministically.
INTERRUPT_IN_FERRY = (
    "import os, signal, sys\n"
    "def _hook(frame, event, arg, _pid=os.getpid()):\n"
    "    if event == 'call' and frame.f_code.co_name == {name!r} \\\n"
    "            and '/ferry/' in frame.f_code.co_filename:\n"
    "        sys.setprofile(None)\n"
    "        os.kill(_pid, signal.SIGINT)\n"
    "sys.setprofile(_hook)\n"
)


@pytest.mark.ferry_only("ipykernel raises in its own code too")
@pytest.mark.parametrize("name", ["store", "post_execute", "_user_expressions"])
def test_interrupt_landing_in_the_kernels_code_is_dropped(kernel, name):
    x = kernel.execute(INTERRUPT_IN_FERRY.format(name=name) + "'done'", stop_on_error=False)
    assert x.status in ("ok", "error"), x.describe()
    if x.status == "error":  # it may still reach the cell's last statement
        assert x.content["ename"] == "KeyboardInterrupt", x.content
    assert x.content.get("ename") != "InternalError", x.content
    assert "ferry/_" not in x.stderr, x.stderr
    assert kernel.execute("1 + 1").ok().text == "2"


def test_interrupts_near_a_cells_end_interrupt_it_or_are_dropped(kernel):
    # Seeded and bounded: 30 interrupts spread around the end of a short sleep.
    rng = random.Random(14)
    outcomes = set()
    for _ in range(30):
        p = kernel.submit("import time\nprint('started', flush=True)\ntime.sleep(0.1)",
                          stop_on_error=False)
        p.wait_until_running()
        time.sleep(rng.uniform(0.05, 0.15))
        os.kill(kernel.pid, signal.SIGINT)
        x = p.finish(timeout=30)
        if x.status == "error":
            assert x.content["ename"] == "KeyboardInterrupt", x.content
        outcomes.add(x.status)
        assert x.content.get("ename") != "InternalError", x.content
        assert "ferry/_" not in x.stderr, x.stderr
    assert kernel.execute("1 + 1").ok().text == "2"


def test_sigterm_from_a_cell_ends_the_kernel_without_a_reply(fresh_kernel):
    k = fresh_kernel
    p = k.submit("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n"
                 "import time\ntime.sleep(30)")
    rc = k.wait_exit()
    assert rc in (0, -signal.SIGTERM), rc
    k.flush()
    assert p.x.reply is None, p.x.content  # no error reply: the kernel died
