# ferry -- the terminal REPL: a readline client for any Jupyter kernel, on libjp.
# common/child.c: the fork set-up it shares with the kernel's workers.
REPL_SRCS := $(wildcard repl/*.c) common/child.c
REPL_OBJS := $(REPL_SRCS:%.c=$(B)/%.o)
REPL_LIBS  = -lreadline -lpthread

# kernel_launch.c (setsid, prctl, killpg), signals.c (SIGWINCH) and render.c
# (TIOCGWINSZ) need more than POSIX; _GNU_SOURCE only in those.
$(REPL_OBJS): EXTRA_CFLAGS += -Irepl -Icommon
$(B)/repl/kernel_launch.o $(B)/repl/signals.o $(B)/repl/render.o: \
    EXTRA_CFLAGS += -D_GNU_SOURCE

all: $(B)/ferry

$(B)/ferry: $(REPL_OBJS) $(JP_LIB)
	@$(if $(Q),echo "  CCLD    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(REPL_OBJS) $(JP_LIB) $(PKG_LIBS) $(REPL_LIBS)
