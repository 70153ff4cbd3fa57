package gctune

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	tests := []struct {
		live uint64
		want int
	}{
		{0, 100},
		{1 << 20, 100}, // the 2 MiB floor is 200%: capped
		{4 << 20, 50},  // the floor
		{10 << 20, 20}, // the floor
		{16 << 20, 12}, // floor and fraction meet
		{1 << 30, 12},  // an eighth
		{1 << 40, 12},  // no overflow
	}
	for _, tc := range tests {
		if got := Default.Percent(tc.live); got != tc.want {
			t.Errorf("Percent(%d) = %d, want %d", tc.live, got, tc.want)
		}
	}
	low := Policy{Floor: 1, Fraction: 0.01, MinPercent: 10, MaxPercent: 100}
	if got := low.Percent(1 << 30); got != 10 {
		t.Errorf("MinPercent not applied: %d", got)
	}
}

// TestTunerFollowsLiveHeap grows the live heap and checks that the tuner,
// run by real collections, lowers the GC percentage.
func TestTunerFollowsLiveHeap(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	tu := newTuner(Default)
	tu.arm()
	hold := make([][]byte, 0, 64)
	for i := 0; i < 64; i++ {
		hold = append(hold, make([]byte, 1<<20)) // 64 MiB live, no pointers
	}
	deadline := time.Now().Add(10 * time.Second)
	for tu.current() == -1 || tu.current() > 20 {
		if time.Now().After(deadline) {
			t.Fatalf("percent %d after 10 s with 64 MiB live", tu.current())
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	runtime.KeepAlive(hold)
}
