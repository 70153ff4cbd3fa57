#!/usr/bin/env bash
# The arm64 checks of `make test` (make test-arm64): the whole module vets
# and builds for GOARCH=arm64, and the hypercall-layout tests (xen/...:
# TestLayout, TestAgainstC*, TestConstants, ctest's own, ioc's) run as arm64
# binaries under qemu-aarch64 (qemu-user), so unsafe.Sizeof/Offsetof are
# the arm64 compiler's, cross-checked against Debian 12's arm64 libxen-dev
# and linux-libc-dev headers through aarch64-linux-gnu-gcc (xen/internal/
# ctest, cross mode). build/test-deps.sh installs qemu-user and the cross
# compiler and unpacks those headers (build/e2e/fetch-arm64.sh); without
# the headers the C cross-checks skip saying so, the hand-derived layouts
# still run. Only the layout tests run under qemu-user: it answers ENOSYS
# for ioctls it does not know (the error-path tests on /dev/null want
# ENOTTY) and cannot exec the amd64 helper binaries other tests build.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
echo "== GOARCH=arm64 go vet ./..."
GOARCH=arm64 $GO vet ./...
echo "== GOARCH=arm64 go build ./stubdom/xenstored"
GOARCH=arm64 CGO_ENABLED=0 $GO build -o /dev/null ./stubdom/xenstored
if ! command -v qemu-aarch64 >/dev/null; then
	echo "== test-arm64: no qemu-aarch64 (package qemu-user): arm64 layout tests not run" >&2
	exit 0
fi
echo "== GOARCH=arm64 go test -exec qemu-aarch64: layout tests of ./xen/..., all of ./xen/ring ./xen/domains"
set +o pipefail
GOARCH=arm64 CGO_ENABLED=0 $GO test -count=1 -exec qemu-aarch64 -v \
	-run '^(TestLayout|TestAgainstC|TestAgainstC420|TestConstants|TestIoctlNumbers|TestDecodePorts|TestValues|TestParseAsm|TestIOC)$' ./xen/... |
	grep -E '^(--- (FAIL|SKIP)|ok|FAIL|panic)|skipped|_test\.go:'
rc=${PIPESTATUS[0]}
GOARCH=arm64 CGO_ENABLED=0 $GO test -count=1 -exec qemu-aarch64 ./xen/ring ./xen/domains || rc=1
exit $rc
