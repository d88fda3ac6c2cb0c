# ferry-kernel: the kernel and, in the same binary, its workers' role.
# The worker pool is a part of its own, in kernel/pool/; docs/architecture.md
# says what each file does.
POOL_SRCS   := kernel/pool/pool.c kernel/pool/sched.c kernel/pool/sched_list.c \
               kernel/pool/sched_query.c kernel/pool/pool_lone.c \
               kernel/pool/procs.c kernel/pool/link.c kernel/pool/results.c \
               kernel/pool/pool_py.c kernel/pool/worker.c kernel/pool/pyframe.c \
               kernel/pool/groupwatch.c kernel/pool/wire.c kernel/pool/template.c \
               kernel/pool/template_client.c kernel/pool/worker_output.c \
               kernel/pool/roles.c kernel/pool/shared_pages.c kernel/pool/pool_watch.c \
               kernel/pool/spin.c
KERNEL_SRCS := kernel/main.c kernel/kernel.c kernel/control.c kernel/iopub.c \
               kernel/iopub_capture.c kernel/iopub_heap.c \
               kernel/pyrt.c kernel/log.c kernel/runtime.c kernel/utf8.c \
               kernel/install.c kernel/paths.c kernel/pyprint.c kernel/request.c \
               kernel/serve.c kernel/parent.c kernel/guard.c \
               $(POOL_SRCS) common/child.c
KERNEL_OBJS := $(KERNEL_SRCS:%.c=$(B)/%.o)
KERNEL_BIN  := $(B)/ferry-kernel
PY_PREFIX    = $(shell $(PYTHON) -c 'import sys; print(sys.prefix)')

# Kernel files name each other from kernel/ ("log.h", "pool/pool.h").
$(KERNEL_OBJS): EXTRA_CFLAGS += -Ikernel -Icommon
# Only the files that embed Python see its headers.
$(B)/kernel/pyrt.o $(B)/kernel/pool/pool_py.o $(B)/kernel/pool/pyframe.o \
$(B)/kernel/pyprint.o: EXTRA_CFLAGS += $(PY_CFLAGS)
$(B)/kernel/kernel.o $(B)/kernel/main.o: EXTRA_CFLAGS += -DFERRY_PYTHON='"$(PYTHON)"'
$(B)/kernel/install.o: EXTRA_CFLAGS += -DFERRY_PYTHON_PREFIX='"$(PY_PREFIX)"'

all: $(KERNEL_BIN)

# CPython is linked in statically, as Debian links /usr/bin/python3: code in
# cells and in workers runs about a quarter faster than with Debian's
# libpython3.11.so (measured on a pure-Python loop: 0.095 s against 0.121 s,
# /usr/bin/python3 0.094 s).  The C-API is exported for extension modules.
# Sanitizer builds keep the shared library, which the LSan suppressions
# name.
PY_VAR       = $(shell $(PYTHON) -c 'import sysconfig, sys; print(" ".join(str(sysconfig.get_config_var(v) or "") for v in sys.argv[1:]))' $(1))
PY_STATIC    = $(call PY_VAR,LIBPL)/$(call PY_VAR,LIBRARY)
ifdef SANITIZE
KERNEL_PY_LIBS = $(PY_LIBS)
else
KERNEL_PY_LIBS = -no-pie -Wl,--dynamic-list=kernel/python-exports.list $(PY_STATIC) \
                 $(call PY_VAR,MODLIBS LIBS SYSLIBS)
endif

$(KERNEL_BIN): $(KERNEL_OBJS) $(JP_LIB) kernel/python-exports.list
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(KERNEL_OBJS) $(JP_LIB) $(PKG_LIBS) $(KERNEL_PY_LIBS) \
	    -lpthread

# ferry-groupwatch: the watcher of a worker's process group
# (kernel/pool/groupwatch.h), libc alone: workers start it with posix_spawn.
GROUPWATCH_BIN := $(B)/ferry-groupwatch

all: $(GROUPWATCH_BIN)

$(GROUPWATCH_BIN): $(B)/kernel/pool/groupwatch_main.o
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $<

KERNEL_PY := $(wildcard kernel/python/ferry/*.py)

# The Python part's bytecode is made here, as Debian does for installed
# packages: with PYTHONDONTWRITEBYTECODE set, or a package directory the
# user cannot write, nothing caches it, and every kernel and every worker
# compiled the sources again at start (the kernel's warm-up took 43 ms
# instead of 28).  Python still checks each .pyc against its source.
KERNEL_PYC := $(B)/kernel/python-bytecode.stamp

all: $(KERNEL_PYC)

$(KERNEL_PYC): $(KERNEL_PY)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  PYC     kernel/python/ferry")
	$(Q)$(PYTHON) -m compileall -q kernel/python/ferry
	$(Q)touch $@

# Installed layout: PREFIX/bin/ferry-kernel, the Python part in
# PREFIX/lib/ferry/ferry (found by the kernel itself, no PYTHONPATH), the
# logo in PREFIX/share/ferry and the kernelspec in
# PREFIX/share/jupyter/kernels/ferry.

install: all
	$(Q)install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/ferry/ferry \
	    $(DESTDIR)$(PREFIX)/share/ferry $(DESTDIR)$(PREFIX)/share/jupyter/kernels/ferry
	$(Q)install -m 0755 $(KERNEL_BIN) $(DESTDIR)$(PREFIX)/bin/
	$(Q)install -m 0755 $(GROUPWATCH_BIN) $(DESTDIR)$(PREFIX)/lib/ferry/
	$(Q)$(if $(wildcard $(B)/ferry),install -m 0755 $(B)/ferry $(DESTDIR)$(PREFIX)/bin/)
	$(Q)install -m 0644 $(KERNEL_PY) $(DESTDIR)$(PREFIX)/lib/ferry/ferry/
	$(Q)$(PYTHON) -m compileall -q -d $(PREFIX)/lib/ferry/ferry \
	    $(DESTDIR)$(PREFIX)/lib/ferry/ferry
	$(Q)install -m 0644 kernel/logo-64x64.png $(DESTDIR)$(PREFIX)/share/ferry/
	$(Q)install -m 0644 kernel/logo-64x64.png $(DESTDIR)$(PREFIX)/share/jupyter/kernels/ferry/
	$(Q)printf '{\n "argv": ["%s", "-f", "{connection_file}"],\n "display_name": "Python 3 (ferry)",\n "language": "python",\n "interrupt_mode": "signal",\n "metadata": {"debugger": false}\n}\n' \
	    "$(PREFIX)/bin/ferry-kernel" > $(DESTDIR)$(PREFIX)/share/jupyter/kernels/ferry/kernel.json
	@echo "installed ferry under $(DESTDIR)$(PREFIX)"
