# ferry-kernel: the kernel (and, later, its worker role).
KERNEL_SRCS := kernel/main.c kernel/kernel.c kernel/control.c kernel/iopub.c \
               kernel/pyrt.c kernel/log.c kernel/runtime.c kernel/utf8.c \
               kernel/install.c
KERNEL_OBJS := $(KERNEL_SRCS:%.c=$(B)/%.o)
KERNEL_BIN  := $(B)/ferry-kernel
PY_PREFIX    = $(shell $(PYTHON) -c 'import sys; print(sys.prefix)')

# Only the embedding file sees Python's headers.
$(B)/kernel/pyrt.o: EXTRA_CFLAGS += $(PY_CFLAGS)
$(B)/kernel/kernel.o: EXTRA_CFLAGS += -DFERRY_PYTHON='"$(PYTHON)"'
$(B)/kernel/install.o: EXTRA_CFLAGS += -DFERRY_PYTHON_PREFIX='"$(PY_PREFIX)"'

all: $(KERNEL_BIN)

$(KERNEL_BIN): $(KERNEL_OBJS) $(JP_LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(KERNEL_OBJS) $(JP_LIB) $(PKG_LIBS) $(PY_LIBS) -lpthread
