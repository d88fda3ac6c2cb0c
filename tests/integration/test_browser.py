"""A person's path through a real Notebook page, on ferry.

Debian's classic Notebook (6) serves on 127.0.0.1 with private Jupyter
directories; headless Chromium, driven by Selenium, works through a notebook
as a person does: run cells with Shift-Enter, pick Kernel > Interrupt and
Kernel > Restart from the menu, type into input(), press Tab, move a widget
slider with the keyboard.  A screenshot of each step is kept in
build/browser/ (build/browser/NN-step.png).

Every wait has a timeout; the server, the kernels it starts and the browser
are stopped by pid at the end, and the test fails if any of them stays.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import harness

try:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
except ImportError:  # said by the fixture, as a failure: make deps installs it
    webdriver = None

SHOTS = harness.REPO_ROOT / "build" / "browser"
WAIT = 30.0  # one step, under load
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"



def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, predicate, timeout=WAIT):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as e:  # the page may be mid-render
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Notebook:
    """The server and its private directories."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.token = os.urandom(12).hex()
        self.runtime = tmp / "runtime"
        self.proc = None
        self.port = None
        self.log = open(tmp / "notebook.log", "wb")

    def env(self):
        config = self.tmp / "config"
        (config / "nbconfig").mkdir(parents=True, exist_ok=True)
        # The widget extension Debian enables in /etc/jupyter; enabled here
        # too, in this server's own configuration only.
        (config / "nbconfig" / "notebook.json").write_text(json.dumps(
            {"load_extensions": {"jupyter-js-widgets/extension": True}}))
        harness.make_kernelspec_dir(self.tmp / "data", "ferry")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        env.update(JUPYTER_CONFIG_DIR=str(config), JUPYTER_DATA_DIR=str(self.tmp / "data"),
                   JUPYTER_PATH=str(self.tmp / "data"),
                   JUPYTER_RUNTIME_DIR=str(self.runtime),
                   IPYTHONDIR=str(self.tmp / "ipython"),
                   FERRY_HISTORY_FILE=str(self.tmp / "history.sqlite"))
        return env

    def start(self):
        env = self.env()
        for _ in range(5):  # a free port can be taken before the server binds it
            self.port = free_port()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "notebook", "--no-browser", "--ip=127.0.0.1",
                 f"--port={self.port}", "--port-retries=0",
                 f"--NotebookApp.token={self.token}",
                 f"--notebook-dir={self.tmp / 'nb'}",
                 "--MappingKernelManager.default_kernel_name=ferry"]
                + (["--allow-root"] if os.geteuid() == 0 else []),
                env=env, cwd=self.tmp, stdout=self.log, stderr=self.log,
                start_new_session=True)
            if wait_until("the notebook server", self._listening, timeout=30) == "up":
                return
        raise AssertionError("the notebook server did not start:\n" + self.log_tail())

    def _listening(self):
        """"up", "exited" (the port was taken: try another), or False."""
        if self.proc.poll() is not None:
            return "exited"
        with socket.socket() as s:
            s.settimeout(1)
            return "up" if s.connect_ex(("127.0.0.1", self.port)) == 0 else False

    def url(self, path):
        return f"http://127.0.0.1:{self.port}/{path}?token={self.token}"

    def log_tail(self):
        return (self.tmp / "notebook.log").read_text(errors="replace")[-3000:]

    def kernels(self):
        """Kernel processes started by this server (their connection files
        are in its private runtime directory)."""
        found = []
        for p in psutil.process_iter(["cmdline"]):
            if str(self.runtime) in " ".join(p.info["cmdline"] or []):
                found.append(p)
        return found

    def stop(self):
        procs = self.kernels()
        if self.proc is not None:
            procs += harness.process_tree(self.proc.pid)
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)  # asks twice: "Shutdown? (y/[n])"
                time.sleep(0.2)
                self.proc.send_signal(signal.SIGINT)
        self.log.close()
        harness.reap_and_check(procs, timeout=15)


NOTEBOOK_JSON = {
    "cells": [],
    "metadata": {"kernelspec": {"name": "ferry", "display_name": "ferry (under test)",
                                "language": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}


class Page:
    """The notebook page in headless Chromium."""

    def __init__(self, tmp, server):
        options = webdriver.ChromeOptions()
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--disable-gpu", "--window-size=1280,1400",
                    f"--user-data-dir={tmp / 'chrome'}"):
            options.add_argument(arg)
        service = webdriver.ChromeService(executable_path=CHROMEDRIVER,
                                          log_output=str(tmp / "chromedriver.log")) \
            if hasattr(webdriver, "ChromeService") else \
            webdriver.chrome.service.Service(executable_path=CHROMEDRIVER,
                                             log_path=str(tmp / "chromedriver.log"))
        self.driver = webdriver.Chrome(service=service, options=options)
        self.driver.set_page_load_timeout(WAIT)
        self.driver.set_script_timeout(WAIT)
        self.server = server
        self.step = 0

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def shot(self, name):
        self.step += 1
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(SHOTS / f"{self.step:02d}-{name}.png"))

    def kernel_idle(self):
        return self.js("var k = Jupyter.notebook && Jupyter.notebook.kernel;"
                       "return !!(k && k.is_connected() && "
                       "document.querySelector('#kernel_indicator_icon')"
                       ".classList.contains('kernel_idle_icon'));")

    def open(self, name):
        self.driver.get(self.server.url(f"notebooks/{name}"))
        wait_until("the kernel to be ready", self.kernel_idle, timeout=60)

    def new_cell(self, code):
        """Appends a cell holding code, selects it, returns its index."""
        return self.js("var nb = Jupyter.notebook, cells = nb.get_cells();"
                       "var last = cells[cells.length - 1];"
                       "var cell = last && last.cell_type == 'code' && !last.get_text() &&"
                       "    !last.output_area.outputs.length ? last :"
                       "    nb.insert_cell_at_bottom('code');"
                       "cell.set_text(arguments[0]);"
                       "var i = nb.find_cell_index(cell); nb.select(i);"
                       "nb.command_mode(); return i;", code)

    def run(self, code, wait_idle=True):
        """Types nothing: puts code in a new cell and presses Shift-Enter on it."""
        i = self.new_cell(code)
        self.cell(i).click()
        self.js("Jupyter.notebook.command_mode();")
        self.driver.switch_to.active_element.send_keys(Keys.SHIFT, Keys.ENTER)
        self.driver.switch_to.active_element.send_keys(Keys.NULL)
        if wait_idle:
            wait_until(f"cell {i} to finish", lambda: self.finished(i))
        return i

    def finished(self, i):
        return self.js("var c = Jupyter.notebook.get_cell(arguments[0]);"
                       "return c.input_prompt_number !== '*' && "
                       "c.input_prompt_number !== undefined && "
                       "c.input_prompt_number !== null;", i) and self.kernel_idle()

    def cell(self, i):
        return self.driver.find_elements(By.CSS_SELECTOR, "#notebook-container .cell")[i]

    def output_text(self, i):
        return self.js("return Jupyter.notebook.get_cell(arguments[0]).element"
                       ".find('.output_wrapper').text();", i)

    def wait_output(self, i, text, timeout=WAIT):
        return wait_until(f"{text!r} in the output of cell {i}",
                          lambda: text in self.output_text(i), timeout)

    def menu(self, menu_id, item_id):
        self.driver.find_element(By.ID, menu_id).click()
        wait_until(f"menu item {item_id}",
                   lambda: self.driver.find_element(By.ID, item_id).is_displayed())
        self.driver.find_element(By.CSS_SELECTOR, f"#{item_id} > a").click()

    def quit(self):
        procs = harness.process_tree(self.driver.service.process.pid)
        try:
            self.driver.quit()
        finally:
            harness.reap_and_check(procs, timeout=15)


@pytest.fixture
def page(tmp_path):
    problem = harness.check_kernel_program()
    if problem:
        pytest.fail(problem, pytrace=False)
    if webdriver is None or shutil.which("jupyter-notebook") is None or \
            not os.path.exists(CHROMEDRIVER):
        pytest.fail("the browser test needs python3-selenium, jupyter-notebook, chromium "
                    "and chromium-driver: run make deps", pytrace=False)
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "walk.ipynb").write_text(json.dumps(NOTEBOOK_JSON))
    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    server = Notebook(tmp_path)
    p = None
    try:
        server.start()
        p = Page(tmp_path, server)
        p.open("walk.ipynb")
        yield p
    finally:
        try:
            if p is not None:
                p.quit()
        finally:
            server.stop()


@pytest.mark.watchdog(300)  # about a minute; far more on a machine under load
@pytest.mark.ferry_only("the walk uses ferry.map")
def test_a_person_works_through_a_notebook_in_the_browser(page):
    try:
        walk(page)
    except BaseException:
        page.shot("failed")  # what the page showed when it went wrong
        raise


def walk(p):
    p.shot("start")
    assert "Dead kernel" not in p.driver.page_source

    i = p.run("print('hello from ferry')")
    p.wait_output(i, "hello from ferry")
    p.shot("print")

    i = p.run("from IPython.display import HTML, Markdown, display\n"
              "display(HTML('<b id=\"rich-html\">bold html</b>'), Markdown('*markdown* text'))")
    wait_until("rendered HTML and Markdown", lambda: p.js(
        "var o = Jupyter.notebook.get_cell(arguments[0]).element;"
        "return o.find('#rich-html').length == 1 && o.find('em')"
        ".text() == 'markdown';", i))
    p.shot("html-markdown")

    i = p.run("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('ferry')")
    size = wait_until("the figure", lambda: p.js(
        "var img = Jupyter.notebook.get_cell(arguments[0]).element.find('img')[0];"
        "return img && img.complete && img.naturalWidth > 0 && "
        "[img.naturalWidth, img.width, img.naturalHeight, img.height];", i))
    assert size[0] == size[1] and size[2] == size[3], size  # shown at its own size
    p.shot("matplotlib")

    i = p.run("def square(x):\n    return x * x\n"
              "from multiprocessing import get_context\n"
              "with get_context('spawn').Pool(2) as pool:\n"
              "    print(pool.map(square, range(6)))")
    p.wait_output(i, "[0, 1, 4, 9, 16, 25]", timeout=60)
    p.shot("spawn-pool")

    i = p.run("import ferry, time\n"
              "def slow(x):\n    time.sleep(0.05)\n    return x\n"
              "print(sum(ferry.map(slow, range(60), chunksize=1)))", wait_idle=False)
    wait_until("the progress bar", lambda: p.js(
        "return Jupyter.notebook.get_cell(arguments[0]).element.find('progress').length;",
        i), timeout=60)
    p.wait_output(i, "1770", timeout=60)
    wait_until("the progress bar at 100%", lambda: "(100%)" in p.output_text(i))
    assert p.js("var b = Jupyter.notebook.get_cell(arguments[0]).element.find('progress');"
                "return [b.attr('value'), b.attr('max')];", i) == ["60", "60"]
    wait_until("idle", p.kernel_idle)
    p.shot("ferry-map-progress")

    i = p.run("import time\nprint('sleeping', flush=True)\ntime.sleep(120)\nprint('woke')",
              wait_idle=False)
    p.wait_output(i, "sleeping")
    p.menu("kernellink", "int_kernel")
    p.wait_output(i, "KeyboardInterrupt")
    wait_until("idle after the interrupt", p.kernel_idle)
    assert "woke" not in p.output_text(i)
    p.shot("interrupt")

    i = p.run("name = input('your name? ')\nprint('hello', name)", wait_idle=False)
    box = wait_until("the input box", lambda: p.driver.find_element(
        By.CSS_SELECTOR, ".output_wrapper input.raw_input"))
    p.shot("input-asked")
    box.send_keys("ferry user", Keys.ENTER)
    p.wait_output(i, "hello ferry user")
    p.shot("input-answered")

    i = p.new_cell("import collections\ncollections.OrderedD")
    p.js("var c = Jupyter.notebook.get_cell(arguments[0]); Jupyter.notebook.edit_mode();"
         "c.code_mirror.focus(); c.code_mirror.setCursor(1, 20);", i)
    p.driver.switch_to.active_element.send_keys(Keys.TAB)
    wait_until("Tab to complete", lambda: "collections.OrderedDict" in p.js(
        "return Jupyter.notebook.get_cell(arguments[0]).get_text();", i))
    p.shot("tab-completion")
    p.js("Jupyter.notebook.command_mode();")

    i = p.run("def boom():\n    raise ValueError('boom from a cell')\nboom()")
    p.wait_output(i, "ValueError: boom from a cell")
    assert "Cell In[" in p.output_text(i) and "boom()" in p.output_text(i)
    p.shot("traceback")

    i = p.run("from ipywidgets import IntSlider, Output, interact\n"
              "slider = IntSlider(value=2, min=0, max=10, description='slider')\n"
              "display(slider)")
    readout = f"return Jupyter.notebook.get_cell({i}).element.find('.widget-readout').text();"
    wait_until("the slider", lambda: p.js(readout) == "2")
    assert "IntSlider(" not in p.output_text(i)  # a slider, not its repr
    p.shot("widget-slider")
    p.run("slider.value = 7")
    wait_until("the kernel to move the slider", lambda: p.js(readout) == "7")
    p.shot("widget-moved-by-kernel")
    handle = p.cell(i).find_element(By.CSS_SELECTOR, ".ui-slider-handle")
    handle.click()
    handle.send_keys(Keys.ARROW_RIGHT)
    wait_until("the page to move the slider", lambda: p.js(readout) == "8")
    j = p.run("print('kernel sees', slider.value)")
    p.wait_output(j, "kernel sees 8")
    p.shot("widget-moved-in-page")

    i = p.run("def show(x):\n    print('x is', x)\ninteract(show, x=(0, 10))")
    p.wait_output(i, "x is 5")
    handle = p.cell(i).find_element(By.CSS_SELECTOR, ".ui-slider-handle")
    handle.click()
    handle.send_keys(Keys.ARROW_RIGHT)
    p.wait_output(i, "x is 6")
    p.shot("interact")

    i = p.run("out = Output()\ndisplay(out)\nwith out:\n    print('inside the output widget')")
    wait_until("the Output widget's text", lambda: p.js(
        "return Jupyter.notebook.get_cell(arguments[0]).element"
        ".find('.widget-subarea').text();", i).count("inside the output widget") == 1)
    p.shot("output-widget")

    p.menu("kernellink", "restart_kernel")
    button = wait_until("the restart dialog", lambda: p.driver.find_element(
        By.CSS_SELECTOR, ".modal-footer .btn-danger"))
    p.shot("restart-asked")
    button.click()
    wait_until("the restarted kernel", lambda: p.js(
        "return !document.querySelector('.modal-dialog');") and p.kernel_idle(), timeout=60)
    i = p.run("print('after restart:', 'slider' in dir())")
    p.wait_output(i, "after restart: False")
    time.sleep(1)  # a "Dead kernel" dialog would come now
    assert "Dead kernel" not in p.driver.page_source
    assert "Kernel Restarting" not in p.js("return document.body.innerText;")
    p.shot("after-restart")
