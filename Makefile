# Top-level targets. Component builds (kernel, image, e2e, bench) live in
# build/*.mk and are included below so each stays next to its scripts.
SHELL := /bin/bash
GO ?= go
BIN := bin
GOFLAGS_BUILD := -trimpath -ldflags='-s -w -buildid='
SOCKET ?= $(CURDIR)/run/socket

.PHONY: all build build-arm64 run test test-deps test-arm64 vet fmt-check fuzz bench clean hardening
all: build

build:
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/ ./stubdom/...

# The dom0 daemon for arm64 (Xen on Arm): bin/arm64/xenstored, static.
build-arm64:
	GOARCH=arm64 CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN)/arm64/ ./stubdom/xenstored

# Start the daemon in the foreground on a local socket.
run: build
	@bash build/run.sh $(BIN)/xenstored "$(SOCKET)"

# Everything the tests need, from Debian's packages (idempotent).
test-deps:
	@bash build/test-deps.sh

test: test-deps build
	@echo "== gofmt / go vet"
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; exit 1; }
	$(GO) vet ./...
	@echo "== go test"
	DIFFTEST_REQUIRE=1 XSTEST_BIN=$(CURDIR)/$(BIN)/xenstored $(GO) test -count=1 -timeout 20m ./...
	@bash build/test-arm64.sh

# arm64: vet and build for GOARCH=arm64, hypercall layouts under qemu-aarch64
# against Debian's arm64 headers (build/test-arm64.sh).
test-arm64:
	@bash build/test-arm64.sh

# The hardening suite at full size (make test runs it reduced).
hardening: test-deps build
	HARDENING_FULL=1 DIFFTEST_REQUIRE=1 XSTEST_BIN=$(CURDIR)/$(BIN)/xenstored $(GO) test -count=1 -timeout 20m -run 'Hardening' -v ./tests/integration ./difftest

FUZZTIME ?= 30s
fuzz:
	@bash build/fuzz.sh $(FUZZTIME)

clean:
	rm -rf $(BIN)

-include $(wildcard build/*.mk)
