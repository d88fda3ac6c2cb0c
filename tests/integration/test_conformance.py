"""The official conformance suite, jupyter_kernel_test 0.4.5, against the
kernel under test.

jupyter_kernel_test starts kernels by kernelspec name, so setUpClass writes a
temporary kernelspec "ferry" (argv from FERRY_TEST_KERNEL) and points
JUPYTER_PATH at it.

FerryConformanceTests holds the samples the kernel core must pass now.
FerryFullConformanceTests adds completion, is_complete, inspect, history,
pager and clear_output; it runs only with FERRY_TEST_FULL_CONFORMANCE=1.
"""

import os
import shutil
import tempfile
import unittest

import jupyter_kernel_test as jkt

import harness
from harness import DISPLAY_PRELUDE

FULL = os.environ.get("FERRY_TEST_FULL_CONFORMANCE") == "1"


class FerryConformanceTests(jkt.KernelTests):
    kernel_name = "ferry"
    language_name = "python"
    file_extension = ".py"

    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('test', file=sys.stderr)"
    code_generate_error = "raise ValueError('conformance')"
    code_execute_result = [
        {"code": "1+2+3", "result": "6"},
        {"code": "[n*n for n in range(1, 4)]", "result": "[1, 4, 9]"},
        {"code": ("class H:\n"
                  "    def _repr_html_(self):\n"
                  "        return '<b>html</b>'\n"
                  "H()"),
         "mime": "text/html", "result": "<b>html</b>"},
    ]
    code_display_data = [
        {"code": DISPLAY_PRELUDE + ("class H:\n"
                                    "    def _repr_html_(self):\n"
                                    "        return '<b>test</b>'\n"
                                    "display(H())"),
         "mime": "text/html"},
        {"code": DISPLAY_PRELUDE + ("class M:\n"
                                    "    def _repr_latex_(self):\n"
                                    "        return r'$\\frac{1}{2}$'\n"
                                    "display(M())"),
         "mime": "text/latex"},
    ]

    @classmethod
    def setUpClass(cls):
        problem = harness.check_kernel_program()
        if problem:
            raise RuntimeError(problem)
        cls._tmp = tempfile.mkdtemp(prefix="ferry-jkt-")
        harness.make_kernelspec_dir(cls._tmp, cls.kernel_name)
        cls._saved_env = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "IPYTHONDIR")}
        os.environ["JUPYTER_PATH"] = cls._tmp
        os.environ["IPYTHONDIR"] = os.path.join(cls._tmp, "ipython")
        try:
            super().setUpClass()
        except BaseException:
            cls._restore()
            raise
        cls._procs = harness.process_tree(cls.km.provisioner.process.pid)
        cls._pgid = cls.km.provisioner.process.pid

    @classmethod
    def _restore(cls):
        for k, v in cls._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(cls._tmp, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        try:
            procs = harness.process_tree(cls._pgid) or cls._procs
            super().tearDownClass()
            harness.reap_and_check(procs, pgid=cls._pgid)
        finally:
            cls._restore()


@unittest.skipUnless(FULL, "set FERRY_TEST_FULL_CONFORMANCE=1 for the full suite")
class FerryFullConformanceTests(FerryConformanceTests):
    completion_samples = [
        {"text": "zi", "matches": {"zip"}},
        {"text": "import itertools\nitertools.chai", "matches": {"chain"}},
    ]
    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n\n"]
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*2", "for i in range(3):"]
    invalid_code_samples = ["import = 7q", "x = )"]
    code_inspect_sample = "zip"
    code_history_pattern = "1?2*"
    supported_history_operations = ("tail", "search")
    code_clear_output = DISPLAY_PRELUDE + "clear_output()"
    code_page_something = "zip?"
