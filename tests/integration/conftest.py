"""Fixtures for the integration tests: real kernels driven over the protocol.

Fixtures
    kernel          a kernel shared by the tests of one module (KernelUnderTest),
                    started again if an earlier test left it dead
    fresh_kernel    a kernel of the test's own, for life-cycle tests
    kernel_factory  kernel_factory(interrupt_mode="message") -> a started kernel
                    of the test's own; all are stopped at teardown

Every teardown shuts the kernel down, kills it if it does not go, and fails
the test if any process the kernel started outlives it.

Markers (both turn into xfail only when FERRY_TEST_KERNEL=ipykernel; strict,
unless the marker says strict=False because ipykernel only fails sometimes)
    ipykernel_wrong(reason)  ipykernel breaks the messaging spec here
    ferry_only(reason)       ferry promises more than the spec, ipykernel does not

A per-test watchdog (FERRY_TEST_WATCHDOG seconds, default 90) turns a hang
into a failure.
"""

import os
import signal

import pytest

import harness


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "ipykernel_wrong(reason): ipykernel breaks the spec; xfail against it")
    config.addinivalue_line(
        "markers", "ferry_only(reason): beyond the spec, ferry-specific; xfail on ipykernel")
    config.addinivalue_line(
        "markers", "watchdog(seconds): this test's own hang limit, when above the default")


def pytest_sessionstart(session):
    # One clear message instead of an error per test.
    problem = harness.check_kernel_program()
    if problem:
        raise pytest.UsageError(problem)


def pytest_report_header(config):
    return f"kernel under test: {' '.join(harness.kernel_argv())}"


def pytest_collection_modifyitems(config, items):
    if not harness.is_ipykernel():
        return
    for item in items:
        for name in ("ipykernel_wrong", "ferry_only"):
            m = item.get_closest_marker(name)
            if m is not None:
                reason = m.kwargs.get("reason") or (m.args[0] if m.args else name)
                strict = m.kwargs.get("strict", True)
                item.add_marker(pytest.mark.xfail(reason=f"{name}: {reason}", strict=strict))


class WatchdogTimeout(Exception):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    limit = float(os.environ.get("FERRY_TEST_WATCHDOG", "90"))
    longer = item.get_closest_marker("watchdog")  # a test that walks many steps
    if longer is not None:
        limit = max(limit, float(longer.args[0]))

    def expire(signum, frame):
        raise WatchdogTimeout(f"test still running after {limit}s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name in ("kernel", "fresh_kernel"):
            k = getattr(item, "funcargs", {}).get(name)
            if isinstance(k, harness.KernelUnderTest):
                report.sections.append((f"kernel log ({name})", k.log_tail()))


def _skip_or_fail_without_kernel():
    problem = harness.check_kernel_program()
    if problem:
        pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="module")
def _module_kernel(tmp_path_factory):
    holder = {"kernel": None}
    yield holder
    if holder["kernel"] is not None:
        holder["kernel"].stop()


@pytest.fixture
def kernel(_module_kernel, tmp_path_factory):
    """The module's shared kernel; replaced if an earlier test left it dead, so
    one crash fails one test, not the rest of the module."""
    _skip_or_fail_without_kernel()
    k = _module_kernel["kernel"]
    if k is not None and k.returncode() is not None:
        _module_kernel["kernel"] = None
        k.stop()  # still checks that the dead kernel left nothing behind
        k = None
    if k is None:
        k = _module_kernel["kernel"] = harness.start_kernel(tmp_path_factory.mktemp("kernel"))
    return k


@pytest.fixture
def kernel_factory(tmp_path_factory):
    _skip_or_fail_without_kernel()
    started = []

    def start(**kw):
        k = harness.start_kernel(tmp_path_factory.mktemp("kernel"), **kw)
        started.append(k)
        return k

    yield start
    errors = []
    for k in started:
        try:
            k.stop()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, errors


@pytest.fixture
def fresh_kernel(kernel_factory):
    return kernel_factory()
