# The example notebooks (examples/), executed headless with the ferry kernel.
#
#   make examples         execute every notebook and demo.py; fails on any
#                         unexpected error or stderr output (copies with their
#                         outputs land in $(B)/examples)
#   make examples-sync    regenerate examples/*.ipynb from examples/src/*.py
#   make examples-refresh execute, and store the outputs in examples/*.ipynb
#   make docs             the executed notebooks as static HTML, a page each
#                         and index.html in lesson order, in $(B)/docs
#
# The kernelspec is installed into a private prefix under $(B) and found
# through JUPYTER_PATH, so nothing is written to the user's Jupyter setup.

.PHONY: examples examples-sync examples-refresh docs

EXAMPLES_OUT := $(B)/examples
EXAMPLES_ENV  = JUPYTER_PATH=$(CURDIR)/$(EXAMPLES_OUT)/jupyter/share/jupyter \
                JUPYTER_RUNTIME_DIR=$(CURDIR)/$(EXAMPLES_OUT)/runtime \
                IPYTHONDIR=$(CURDIR)/$(EXAMPLES_OUT)/ipython PYTHONDONTWRITEBYTECODE=1
EXAMPLES_RUN  = $(EXAMPLES_ENV) $(PYTHON) examples/tools/run_examples.py

$(EXAMPLES_OUT)/jupyter/share/jupyter/kernels/ferry/kernel.json: $(KERNEL_BIN)
	$(Q)$(KERNEL_BIN) install --prefix $(CURDIR)/$(EXAMPLES_OUT)/jupyter >/dev/null

# Once the terminal REPL is built, demo.py also runs the way its docstring
# says, `ferry examples/demo.py` (the REPL exits non-zero when the cell fails).
EXAMPLES_REPL = $(if $(wildcard repl/build.mk),$(B)/ferry)

examples: all $(EXAMPLES_OUT)/jupyter/share/jupyter/kernels/ferry/kernel.json
	@echo "== examples: notebooks and demo.py under the ferry kernel"
	$(Q)$(EXAMPLES_RUN) $(EXAMPLES_OUT)
ifneq ($(EXAMPLES_REPL),)
	@echo "== examples: $(EXAMPLES_REPL) examples/demo.py"
	$(Q)$(EXAMPLES_ENV) timeout 120 $(EXAMPLES_REPL) examples/demo.py \
	    >$(EXAMPLES_OUT)/demo-repl.out 2>&1 || { cat $(EXAMPLES_OUT)/demo-repl.out; exit 1; }
endif

examples-refresh: all $(EXAMPLES_OUT)/jupyter/share/jupyter/kernels/ferry/kernel.json
	$(Q)$(EXAMPLES_RUN) --refresh $(EXAMPLES_OUT)

examples-sync:
	$(Q)$(PYTHON) examples/tools/run_examples.py --sync

docs: examples
	$(Q)$(PYTHON) examples/tools/make_docs.py $(EXAMPLES_OUT) $(B)/docs
