# Differential tests against Debian's C xenstored 4.17 (difftest/README.md).
#   make difftest                         default run (~300 sequences x 50 ops)
#   make difftest DIFFTEST_SEQS=5000 DIFFTEST_OPS=100 DIFFTEST_SEED=7
#   make difftest-long                    a longer run
DIFFTEST_SEQS ?= 300
DIFFTEST_OPS ?= 50
DIFFTEST_SEED ?= 1
DIFFTEST_FLAGS ?=

.PHONY: difftest difftest-long
difftest: build
	@bash build/test-deps.sh
	cd difftest && DIFFTEST_REQUIRE=1 XSTEST_BIN=$(CURDIR)/$(BIN)/xenstored \
	  DIFFTEST_SEQS=$(DIFFTEST_SEQS) DIFFTEST_OPS=$(DIFFTEST_OPS) DIFFTEST_SEED=$(DIFFTEST_SEED) \
	  $(GO) test -count=1 -timeout 60m $(DIFFTEST_FLAGS) .

difftest-long:
	@$(MAKE) --no-print-directory difftest DIFFTEST_SEQS=5000 DIFFTEST_OPS=100
