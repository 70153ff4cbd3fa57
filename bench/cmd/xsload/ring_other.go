//go:build !linux

package main

import (
	"errors"
	"io"
	"time"

	"github.com/xsstub/xenstored/bench"
)

func runRing(int, int, bench.Mix, int, time.Duration, int64, bool, io.Writer) (string, error) {
	return "", errors.New("-ring needs Linux (the fake hypervisor uses memfd and eventfd)")
}

func runRingCeiling(time.Duration, int, bool, io.Writer) (string, error) {
	return "", errors.New("-ring-ceiling needs Linux (the fake hypervisor uses memfd and eventfd)")
}
