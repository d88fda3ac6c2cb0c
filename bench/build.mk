# make bench: ferry against ipykernel, the standard pools and jupyter console.
# `make bench QUICK=1` (or `make bench-quick`) keeps every row with smaller
# counts and finishes in about a minute; BENCH_ARGS passes anything else to
# bench/bench.py (for example BENCH_ARGS='--only pool --rounds 3').
# The REPL row uses $(B)/ferry when it is built and says "not built" otherwise.
.PHONY: bench bench-quick

BENCH_ARGS ?=

bench: all
	$(Q)$(PYTHON) bench/bench.py $(if $(QUICK),--quick) $(BENCH_ARGS)

bench-quick: all
	$(Q)$(PYTHON) bench/bench.py --quick $(BENCH_ARGS)

# make soak: one kernel under mixed cells for SOAK_MINUTES (default 10);
# RSS and answer times at start and end, in bench/results/soak.json.
.PHONY: soak
SOAK_MINUTES ?= 10

soak: all
	$(Q)$(PYTHON) bench/soak.py --minutes $(SOAK_MINUTES)

# The transport probe: the floor of each transport the pool could use
# between the kernel and a worker (bench/transport_probe.c; figures in
# bench/README.md).  `make probe` builds and runs it.
.PHONY: probe
PROBE_BIN := $(B)/bench/transport_probe

$(PROBE_BIN): bench/transport_probe.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CCLD    $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< -lpthread

all: $(PROBE_BIN)

probe: $(PROBE_BIN)
	$(Q)$(PROBE_BIN)
