"""The official conformance suite, jupyter_kernel_test 0.4.5, against the
kernel under test.

jupyter_kernel_test starts kernels by kernelspec name, so setUpClass writes a
temporary kernelspec "ferry" (argv from FERRY_TEST_KERNEL) and points
JUPYTER_PATH at it.

Every attribute of the suite is set, with real samples: stdout, stderr,
errors, execute_result (text/plain, text/html), display_data (text/html,
text/markdown, text/latex, image/png), completion (a builtin, a module
attribute, live attributes), is_complete (complete, incomplete, invalid),
history (tail with and without output, range, search), inspect,
clear_output and the pager.  jupyter_kernel_test waits only 0.1 s between
iopub messages, so no sample imports anything slow (IPython).

The kernel's history database is a temporary file (FERRY_HISTORY_FILE).
"""

import os
import shutil
import tempfile

import jupyter_kernel_test as jkt

import harness
from harness import DISPLAY_PRELUDE

# A 1x1 PNG, so the image/png sample needs no imaging library.
PNG_1X1 = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01"
           b"\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f"
           b"\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")


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
        {"code": DISPLAY_PRELUDE + ("class Md:\n"
                                    "    def _repr_markdown_(self):\n"
                                    "        return '**bold**'\n"
                                    "display(Md())"),
         "mime": "text/markdown"},
        {"code": DISPLAY_PRELUDE + ("class Png:\n"
                                    "    def _repr_png_(self):\n"
                                    f"        return {PNG_1X1!r}\n"
                                    "display(Png())"),
         "mime": "image/png"},
    ]

    completion_samples = [
        {"text": "zi", "matches": {"zip"}},
        {"text": "import itertools\nitertools.chai", "matches": {"chain"}},
        # Live objects of the namespace: In (a list) and get_ipython().
        {"text": "In.appe", "matches": {"append"}},
        {"text": "get_ipython().run_li", "matches": {"run_line_magic"}},
    ]
    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n\n",
                             "%time 1", "!ls", "zip?"]
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*2", "for i in range(3):",
                               "x = [1,", "%%time\nx = 1"]
    invalid_code_samples = ["import = 7q", "x = )"]
    code_inspect_sample = "zip"
    code_history_pattern = "1?2*"
    # ipykernel answers a range request from the wrong session (see test_history).
    supported_history_operations = ("tail", "search") if harness.is_ipykernel() \
        else ("tail", "range", "search")
    code_clear_output = DISPLAY_PRELUDE + "clear_output()"
    code_page_something = "zip?"

    @classmethod
    def setUpClass(cls):
        problem = harness.check_kernel_program()
        if problem:
            raise RuntimeError(problem)
        cls._tmp = tempfile.mkdtemp(prefix="ferry-jkt-")
        harness.make_kernelspec_dir(cls._tmp, cls.kernel_name)
        cls._saved_env = {k: os.environ.get(k)
                          for k in ("JUPYTER_PATH", "IPYTHONDIR", "FERRY_HISTORY_FILE")}
        os.environ["JUPYTER_PATH"] = cls._tmp
        os.environ["IPYTHONDIR"] = os.path.join(cls._tmp, "ipython")
        os.environ["FERRY_HISTORY_FILE"] = os.path.join(cls._tmp, "history.sqlite")
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
