# ferry -- top-level build.  Each part keeps its rules in its own fragment
# (protocol/build.mk, kernel/build.mk, repl/build.mk, tests/build.mk) so they
# can change independently.  `make V=1` shows the commands.

.DELETE_ON_ERROR:
.SUFFIXES:
MAKEFLAGS += --no-builtin-rules

PYTHON        ?= /usr/bin/python3
PYTHON_CONFIG ?= /usr/bin/python3-config
PREFIX        ?= /usr/local
DESTDIR       ?=
B             ?= build

CC ?= cc
ifeq ($(origin CC),default)
CC := cc
endif

WARNINGS := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wold-style-definition -Wformat=2 \
            -Wwrite-strings -Wvla -fno-common
CSTD     := -std=c11 -D_POSIX_C_SOURCE=200809L
OPT      ?= -O2 -g
CFLAGS   ?=
LDFLAGS  ?=

# Third-party headers come in through -isystem so our warnings stay ours.
PKGS          := libzmq jansson libcrypto uuid
PKG_CFLAGS    = $(shell pkg-config --cflags $(PKGS) | sed 's/-I/-isystem /g')
PKG_LIBS      = $(shell pkg-config --libs $(PKGS))
# --includes, not --cflags: the latter brings -DNDEBUG and disables asserts.
PY_CFLAGS     = $(shell $(PYTHON_CONFIG) --includes | sed 's/-I/-isystem /g')
PY_LIBS       = $(shell $(PYTHON_CONFIG) --ldflags --embed)

ifdef SANITIZE
SAN_FLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

ALL_CFLAGS  = $(CSTD) $(OPT) $(WARNINGS) $(SAN_FLAGS) -Iprotocol $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN_FLAGS) $(LDFLAGS)

ifeq ($(V),1)
Q :=
else
Q := @
endif

.PHONY: all deps test unit integration clean install run fuzz format-check
all:

include protocol/build.mk
-include kernel/build.mk
-include repl/build.mk
include tests/build.mk
-include examples/build.mk
-include bench/build.mk

# The terminal REPL when it is built, else jupyter console on ferry.
RUN_CMD = $(if $(wildcard repl/build.mk),$(B)/ferry,jupyter console --kernel ferry)

deps:
	$(Q)sh tools/deps.sh

# Starts ferry on a fresh kernel: the kernelspec is installed for the user so
# that any frontend finds it too.
run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(KERNEL_BIN) install --user >/dev/null
	$(Q)$(RUN_CMD)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(EXTRA_CFLAGS) -MMD -MP -c -o $@ $<

-include $(shell find $(B) -name '*.d' 2>/dev/null)

format-check:
	$(Q)clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(B)
