"""ferry's private runtime directory (ferry only: ipykernel has none)."""

import os
import signal
import stat

import pytest

import harness

pytestmark = pytest.mark.skipif(harness.is_ipykernel(), reason="ferry's own runtime directory")

# ipc endpoint paths must fit in sun_path (108 bytes with the NUL).
MAX_RUNTIME_DIR_LEN = 80


def runtime_dir(k):
    return eval(k.execute("import ferry\nferry.runtime_dir").ok().text)


def test_runtime_dir_is_private_and_short(kernel):
    d = runtime_dir(kernel)
    st = os.stat(d)
    assert stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o700, oct(st.st_mode)
    assert st.st_uid == os.getuid()
    assert len(d) <= MAX_RUNTIME_DIR_LEN, d


def test_runtime_dir_removed_after_shutdown(fresh_kernel):
    d = runtime_dir(fresh_kernel)
    fresh_kernel.send("shutdown_request", {"restart": False}, channel="control").wait_for_reply()
    assert fresh_kernel.wait_exit() == 0
    assert not os.path.exists(d), f"{d} left behind"


def test_runtime_dir_removed_after_sigterm(fresh_kernel):
    d = runtime_dir(fresh_kernel)
    os.kill(fresh_kernel.pid, signal.SIGTERM)
    fresh_kernel.wait_exit()
    assert not os.path.exists(d), f"{d} left behind"
