# Tests: cmocka programs in tests/unit (one per API area), the interop
# vectors against jupyter_client, the fuzzers, and the pytest suites.

UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka)

$(B)/tests/%: tests/unit/%.c $(JP_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CCLD    $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(JP_LIB) $(CMOCKA_LIBS) $(PKG_LIBS) -lpthread

unit: $(UNIT_BINS)
	$(Q)set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

test: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(MAKE) --no-print-directory unit

# pytest suites that drive real kernels over the protocol (tests/integration).
# FERRY_TEST_KERNEL=ipykernel runs them against ipykernel, to check the tests.
integration: all
	$(Q)$(PYTHON) -m pytest tests/integration -q
