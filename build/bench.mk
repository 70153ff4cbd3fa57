# Load benchmark (bench/README.md): ours vs C xenstored 4.17, oxenstored
# 4.17 and a do-nothing server, same scenarios, one invocation.
#   make bench                                   ~2-3 minutes
#   make bench BENCH_DURATION=5s BENCH_REPEAT=3  longer, steadier
#   make bench BENCH_TARGETS="go null"           a subset
BENCH_DURATION ?= 2s
BENCH_REPEAT ?= 2
BENCH_TARGETS ?= go c ox null
BENCH_PNG ?= images/bench.png

.PHONY: bench
bench: build
	@if [[ " $(BENCH_TARGETS) " == *" c "* || " $(BENCH_TARGETS) " == *" ox "* ]]; then bash build/test-deps.sh; fi
	@BENCH_DURATION=$(BENCH_DURATION) BENCH_REPEAT=$(BENCH_REPEAT) BENCH_TARGETS="$(BENCH_TARGETS)" \
	  bash build/bench.sh $(BIN)/xenstored $(BENCH_PNG)
