package main

import (
	"io"
	"time"

	"github.com/xsstub/xenstored/bench"
)

// runRing drives the fake-ring rig (package bench, RingThroughput):
// domains guests, each keeping depth requests in flight on its own ring to
// an in-process engine behind the real ring transport. It returns the
// result line.
func runRing(domains, depth int, mix bench.Mix, size int, d time.Duration, ops int64, null bool, progress io.Writer) (string, error) {
	r, err := bench.RingThroughput(bench.RingOptions{
		Domains: domains, Depth: depth, Mix: mix, ValueSize: size, Duration: d, Ops: int(ops), Null: null, Progress: progress,
	})
	if err != nil {
		return "", err
	}
	return r.String(), nil
}

// runRingCeiling prints the ring ceiling table (bench.RingCeiling).
func runRingCeiling(d time.Duration, repeat int, md bool, log io.Writer) (string, error) {
	rows, err := bench.RingCeiling(d, repeat, log)
	if err != nil {
		return "", err
	}
	return bench.RingCeilingTable(rows, md), nil
}
