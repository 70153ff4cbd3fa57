#!/usr/bin/env bash
# make fuzz FUZZTIME=30s: runs every go fuzz target for FUZZTIME each.
# New crashers land in the package's testdata/fuzz/<Target>/ and become
# regression seeds that plain `go test` replays.
set -euo pipefail
t=${1:-30s}
cd "$(dirname "$0")/.."
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "== $pkg $target ($t)"
    go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$t" -fuzzminimizetime 200x
  done
done
