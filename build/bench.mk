# Load benchmark (bench/README.md): ours vs C xenstored 4.22 and 4.17,
# oxenstored 4.17 and two do-nothing servers (Go nullstored, C cnull), same
# scenarios, one invocation.
#   make bench                                   ~2-3 minutes
#   make bench BENCH_DURATION=5s BENCH_REPEAT=3  longer, steadier
#   make bench BENCH_TARGETS="go null"           a subset
#   make bench BENCH_SCENARIOS=rw-1x1 BENCH_REPEAT=7   depth 1 only, medians
#   make storm                                   the creation storm up to 1000
#                                                domains (ours, C 4.22, C 4.17), ~5 min
BENCH_DURATION ?= 2s
BENCH_REPEAT ?= 2
BENCH_TARGETS ?= go c422 c417 ox null cnull
BENCH_PNG ?= images/bench.png

.PHONY: bench storm
bench: build
	@if [[ " $(BENCH_TARGETS) " == *" c4"* || " $(BENCH_TARGETS) " == *" ox "* ]]; then bash build/test-deps.sh; fi
	@BENCH_SCENARIOS="$(BENCH_SCENARIOS)" BENCH_DURATION=$(BENCH_DURATION) BENCH_REPEAT=$(BENCH_REPEAT) BENCH_TARGETS="$(BENCH_TARGETS)" \
	  bash build/bench.sh $(BIN)/xenstored $(BENCH_PNG)

# The creation storm alone, up to STORM_N domains (bench/README.md).
STORM_N ?= 1,10,100,1000
STORM_TARGETS ?= go c422 c417
storm: build
	@bash build/test-deps.sh
	@BENCH_PARTS=storm BENCH_STORM=$(STORM_N) BENCH_TARGETS="$(STORM_TARGETS)" bash build/bench.sh $(BIN)/xenstored $(BENCH_PNG)
