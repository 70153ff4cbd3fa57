// Package gctune bounds the Go collector's headroom for a long-running
// daemon whose heap is mostly long-lived data.
//
// With the default GOGC=100 the heap may grow to twice the live heap
// before a collection, so a store holding 100 MB of nodes sits at up to
// 200 MB of resident memory. Most of xenstored's live heap is the node
// table, which holds no pointers and is cheap to mark, so collecting more
// often costs little; what matters is the garbage each request leaves,
// which needs a fixed amount of room, not room proportional to the store.
// The tuner therefore keeps the headroom near a fixed floor plus a small
// fraction of the live heap, by adjusting the GC percentage after every
// collection.
//
// Limits: it acts only between collections, so a sudden burst still uses
// the percentage set after the last one; an explicit GOGC in the
// environment turns it off (the operator's choice wins).
package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Policy is the headroom to keep: Floor bytes or Fraction of the live
// heap, whichever is larger, expressed as a GC percentage within
// [MinPercent, MaxPercent].
type Policy struct {
	Floor      uint64
	Fraction   float64
	MinPercent int
	MaxPercent int
}

// Default keeps 2 MiB or an eighth of the live heap, between 10% and
// Go's default 100%: room for thousands of requests' garbage between
// collections.
var Default = Policy{Floor: 2 << 20, Fraction: 0.125, MinPercent: 10, MaxPercent: 100}

// Percent is the GC percentage giving p's headroom over live bytes.
func (p Policy) Percent(live uint64) int {
	if live == 0 {
		return p.MaxPercent
	}
	room := max(float64(p.Floor), p.Fraction*float64(live))
	pct := int(100 * room / float64(live))
	return min(max(pct, p.MinPercent), p.MaxPercent)
}

// Start runs the tuner for the rest of the process's life, unless GOGC is
// set in the environment. It reports whether the tuner runs.
func Start(p Policy) bool {
	if os.Getenv("GOGC") != "" {
		return false
	}
	newTuner(p).arm()
	return true
}

func newTuner(p Policy) *tuner {
	return &tuner{policy: p, percent: -1, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
}

type tuner struct {
	mu      sync.Mutex
	policy  Policy
	percent int
	sample  []metrics.Sample
}

// sentinel is garbage from birth: its cleanup runs after the next
// collection. The pointer keeps it out of the tiny allocator, whose
// objects may never be cleaned up.
type sentinel struct {
	_ *int
	_ [16]byte
}

func (t *tuner) arm() {
	runtime.AddCleanup(new(sentinel), func(t *tuner) { t.afterGC() }, t)
}

func (t *tuner) afterGC() {
	t.mu.Lock()
	metrics.Read(t.sample)
	live := uint64(0)
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	if pct := t.policy.Percent(live); pct != t.percent {
		debug.SetGCPercent(pct)
		t.percent = pct
	}
	t.mu.Unlock()
	t.arm()
}

// current is the percentage last set (-1 before the first collection).
func (t *tuner) current() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.percent
}
