# Tests: cmocka programs in tests/unit (one per API area), the interop
# vectors against jupyter_client, and the libFuzzer harnesses.
#
#   make test                      all of it (what CI runs)
#   make SANITIZE=address,undefined test    the same under ASan/LSan/UBSan
#   make unit | interop | fuzz     one part
#   make fuzz FUZZ_RUNS=5000000    fuzz longer (the corpus is kept in
#                                  $(B)/fuzz/corpus-*)

UNIT_SRCS   := $(wildcard tests/unit/test_*.c)
UNIT_BINS   := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
CMOCKA_LIBS  = $(shell pkg-config --libs cmocka)

# Sanitizer settings for every program we run; harmless without sanitizers.
# Leaks are always detected; libpython's (by design) are suppressed only.
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:check_initialization_order=1 \
           LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
           UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# Links a test program: $1 = its source.
define link_test
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CCLD    $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(TEST_CFLAGS) $(ALL_LDFLAGS) $(TEST_LDFLAGS) -o $@ $1 \
	    $(TEST_OBJS) $(JP_LIB) $(CMOCKA_LIBS) $(PKG_LIBS) -lpthread
endef

# test_alloc makes libjp's allocations fail one by one (see the file).
$(B)/tests/test_alloc: TEST_LDFLAGS = -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup

$(UNIT_BINS): $(B)/tests/%: tests/unit/%.c tests/unit/jp_test.h protocol/jp.h $(JP_LIB)
	$(call link_test,$<)

# The pool's parts are tested on their own: the core (kernel/pool/sched*.c)
# driven by events, the process supervision on real children.  Their tests
# link those objects and the log they write to, nothing else of the kernel.
POOL_TEST_OBJS := $(B)/kernel/pool/sched.o $(B)/kernel/pool/sched_list.o \
                  $(B)/kernel/pool/sched_query.o \
                  $(B)/kernel/pool/procs.o $(B)/kernel/pool/wire.o \
                  $(B)/kernel/pool/results.o $(B)/kernel/pool/template_client.o \
                  $(B)/kernel/pool/worker_output.o $(B)/kernel/pool/shared_pages.o \
                  $(B)/kernel/pool/spin.o \
                  $(B)/common/child.o $(B)/kernel/log.o
POOL_TESTS     := $(filter $(B)/tests/test_pool_%,$(UNIT_BINS))
$(POOL_TESTS): TEST_OBJS = $(POOL_TEST_OBJS)
$(POOL_TESTS): TEST_CFLAGS = -Ikernel -Ikernel/pool -Icommon
$(POOL_TESTS): $(POOL_TEST_OBJS) $(wildcard kernel/pool/*.h)

# The shell's and control's serving (kernel/serve.c) is tested without
# Python: a stand-in interpreter behind it, the real publisher around it.
SERVE_TEST_OBJS := $(B)/kernel/serve.o $(B)/kernel/request.o $(B)/kernel/iopub.o \
                   $(B)/kernel/iopub_capture.o $(B)/kernel/iopub_heap.o $(B)/kernel/utf8.o $(B)/kernel/log.o \
                   $(B)/kernel/guard.o
$(B)/tests/test_serve: TEST_OBJS = $(SERVE_TEST_OBJS)
$(B)/tests/test_serve: TEST_CFLAGS = -Ikernel
$(B)/tests/test_serve: $(SERVE_TEST_OBJS) kernel/serve.h kernel/request.h kernel/iopub.h

unit: $(UNIT_BINS)
	$(Q)set -e; for t in $(UNIT_BINS); do echo "== $$t"; $(SAN_ENV) $$t; done

# ------------------------------------------------------------ interop
# Python -> C: jupyter_client's Session writes vectors, libjp decodes them.
# C -> Python: libjp writes messages, jupyter_client's Session reads them.

.PHONY: interop
INTEROP      := $(B)/interop
INTEROP_BINS := $(B)/tests/check_py_vectors $(B)/tests/write_c_vectors

$(INTEROP_BINS): $(B)/tests/%: tests/interop/%.c protocol/jp.h $(JP_LIB)
	$(call link_test,$<)

$(INTEROP)/py2c.json: tests/interop/make_vectors.py
	@mkdir -p $(INTEROP)
	$(Q)$(PYTHON) tests/interop/make_vectors.py $(INTEROP)

interop: $(INTEROP_BINS) $(INTEROP)/py2c.json
	@echo "== interop: python -> C"
	$(Q)$(SAN_ENV) $(B)/tests/check_py_vectors $(INTEROP)
	@echo "== interop: C -> python"
	$(Q)$(SAN_ENV) $(B)/tests/write_c_vectors $(INTEROP)/c2py.json
	$(Q)$(PYTHON) tests/interop/check_c_vectors.py $(INTEROP)/c2py.json

# ------------------------------------------------------------- fuzzing
# libFuzzer harnesses, always built with clang and ASan+UBSan, whatever
# SANITIZE says.  Seeds come from the interop vectors.  Both run at once
# (one per core); any crash, leak or sanitizer report fails the target.

FUZZ_CC    ?= clang
FUZZ_RUNS  ?= 500000
FUZZ_ARGS  ?=
FUZZ_FLAGS := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
              -fno-omit-frame-pointer -g -O1
FUZZ_BINS  := $(B)/fuzz/fuzz_wire $(B)/fuzz/fuzz_connection

$(FUZZ_BINS): $(B)/fuzz/%: tests/fuzz/%.c $(JP_SRCS) protocol/jp.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ-CC $@")
	$(Q)$(FUZZ_CC) $(CSTD) $(WARNINGS) $(FUZZ_FLAGS) -Iprotocol $(PKG_CFLAGS) \
	    -o $@ $< $(JP_SRCS) $(PKG_LIBS) -lpthread

# Runs harness $1 on seed directory $2 in the background, logging to
# $(B)/fuzz/$1.log; run_fuzz_wait collects the results.
run_fuzz = mkdir -p $(B)/fuzz/corpus-$1 && \
	$(SAN_ENV) $(B)/fuzz/fuzz_$1 -runs=$(FUZZ_RUNS) -dict=tests/fuzz/$1.dict \
	    -max_len=16384 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix=$(B)/fuzz/$1- $(FUZZ_ARGS) \
	    $(B)/fuzz/corpus-$1 $2 >$(B)/fuzz/$1.log 2>&1

fuzz: $(FUZZ_BINS) $(INTEROP)/py2c.json
	@echo "== fuzz: jp_wire_decode and jp_connection_parse, $(FUZZ_RUNS) runs each"
	$(Q)set +e; \
	( $(call run_fuzz,wire,$(INTEROP)/seeds-wire) ) & w=$$!; \
	( $(call run_fuzz,connection,$(INTEROP)/seeds-connection) ) & c=$$!; \
	wait $$w; rw=$$?; wait $$c; rc=$$?; \
	for h in wire connection; do \
	    grep -h "DONE\|^Done\|stat::peak_rss" $(B)/fuzz/$$h.log | \
	        sed "s/^/   fuzz_$$h: /"; \
	done; \
	if [ $$rw -ne 0 ]; then tail -60 $(B)/fuzz/wire.log; fi; \
	if [ $$rc -ne 0 ]; then tail -60 $(B)/fuzz/connection.log; fi; \
	[ $$rw -eq 0 ] && [ $$rc -eq 0 ]

test: deps
	$(Q)$(MAKE) --no-print-directory format-check
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(MAKE) --no-print-directory unit
	$(Q)$(MAKE) --no-print-directory interop
	$(Q)$(MAKE) --no-print-directory fuzz
	$(Q)$(MAKE) --no-print-directory pytests
	$(Q)$(MAKE) --no-print-directory examples

# ------------------------------------------------------------- Python
# The re-export rules and the stdlib pools (tests/python), and the real
# kernel driven by jupyter_client (tests/integration), with Debian's
# interpreter like everything else.

.PHONY: pytests integration
PYTEST = $(SAN_ENV) FERRY_TEST_KERNEL=$(abspath $(B))/ferry-kernel \
         FERRY_BIN=$(abspath $(B))/ferry FERRY_REPL_TEST_KERNELS="python3 ferry" \
         $(PYTHON) -m pytest -q -p no:cacheprovider

pytests: all
	$(Q)$(PYTEST) tests/python tests/integration

# FERRY_TEST_KERNEL=ipykernel runs them against ipykernel, to check the tests.
integration: all
	$(Q)$(PYTEST) tests/integration
