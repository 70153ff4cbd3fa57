package bench

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/transport/unixsock"
	"github.com/xsstub/xenstored/xsclient"
)

// engineSocket serves our store engine in-process on a temporary socket.
func engineSocket(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "socket")
	ln, err := unixsock.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e := store.New(store.Config{Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = unixsock.Serve(ctx, e, ln, log)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return sock
}

func nullSocket(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "null")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := &NullServer{}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { s.Close() })
	return sock
}

func checkResult(t *testing.T, r *Result, wantOps int64) {
	t.Helper()
	t.Logf("%s", r)
	if r.Errors != 0 {
		t.Fatalf("%d errors, first: %s", r.Errors, r.FirstErr)
	}
	if wantOps > 0 && r.Ops != wantOps {
		t.Fatalf("completed %d ops, want %d", r.Ops, wantOps)
	}
	if r.Ops == 0 || r.Rate() <= 0 || r.Elapsed <= 0 {
		t.Fatalf("nothing measured: %+v", r)
	}
	if uint64(r.Ops) != r.Hist.Count() {
		t.Fatalf("%d ops but %d latencies", r.Ops, r.Hist.Count())
	}
	p50, p99, p999 := r.Hist.Quantile(0.5), r.Hist.Quantile(0.99), r.Hist.Quantile(0.999)
	if !(0 < p50 && p50 <= p99 && p99 <= p999 && p999 <= r.Hist.Max()) {
		t.Fatalf("percentiles out of order: p50 %v p99 %v p99.9 %v max %v", p50, p99, p999, r.Hist.Max())
	}
}

// Every operation against the real engine, by op count: all of them
// must complete without errors, and leave the state they claim to.
func TestRunAgainstEngine(t *testing.T) {
	sock := engineSocket(t)
	cases := []struct {
		name string
		cfg  Config
	}{
		{"rw-1x1", Config{Conns: 1, Depth: 1, Mix: Mix{OpRead: 1, OpWrite: 1}, ValueSize: 16}},
		{"rw-4x16", Config{Conns: 4, Depth: 16, Mix: Mix{OpRead: 1, OpWrite: 1}, ValueSize: 100}},
		{"dir", Config{Conns: 2, Depth: 8, Mix: Mix{OpDirectory: 1}, DirEntries: 20}},
		{"txn", Config{Conns: 3, Depth: 4, Mix: Mix{OpTxn: 1}, Keys: 12}},
		{"mixed", Config{Conns: 50, Depth: 2, Mix: Mix{OpRead: 3, OpWrite: 1, OpDirectory: 1, OpTxn: 1}, Keys: 20}},
		{"watch", Config{Conns: 2, Mix: Mix{OpWatch: 1}, Watchers: 5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Socket = sock
			cfg.Ops = 2000
			cfg.Duration = 8 * time.Second // bounds a run that stops making progress
			cfg.Prefix = "/t/" + tc.name
			r, err := Run(cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, r, 2000)
			if cfg.Mix[OpWatch] > 0 && r.Events != 2000*int64(cfg.Watchers) {
				t.Errorf("%d watch events, want %d", r.Events, 2000*cfg.Watchers)
			}
		})
	}

	// The nodes the runs used hold what they wrote.
	c, err := xsclient.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := c.Read(0, "/t/rw-4x16/k/0")
	if err != nil || string(v) != strings.Repeat("abcdefghijklmnopqrstuvwxyz", 4)[:100] {
		t.Errorf("value after rw-4x16: %q, %v", v, err)
	}
	kids, err := c.Directory(0, "/t/dir/dir")
	if err != nil || len(kids) != 20 {
		t.Errorf("directory: %d children, %v", len(kids), err)
	}
	kids, err = c.Directory(0, "/t/watch/watch")
	if err != nil || len(kids) != 2 {
		t.Errorf("watch writers' nodes: %v, %v", kids, err)
	}
}

// A duration-bounded run against the do-nothing server stops on time and
// reports progress lines.
func TestRunDurationAndProgress(t *testing.T) {
	var progress strings.Builder
	start := time.Now()
	r, err := Run(Config{Socket: nullSocket(t), Conns: 3, Depth: 16, Mix: Mix{OpRead: 1, OpTxn: 1},
		Duration: 1200 * time.Millisecond, Warmup: 100 * time.Millisecond, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	checkResult(t, r, 0)
	if took > 3*time.Second || r.Elapsed < time.Second || r.Elapsed > 1500*time.Millisecond {
		t.Errorf("run took %v, measured %v; want about 1.3s and 1.2s", took, r.Elapsed)
	}
	if !strings.Contains(progress.String(), "ops/s") {
		t.Errorf("no progress line in %q", progress.String())
	}
}

// Errors from the server are counted, not hidden: the do-nothing server
// cannot serve watches, and a read of a missing node is an error.
func TestRunReportsErrors(t *testing.T) {
	r, err := Run(Config{Socket: nullSocket(t), Mix: Mix{OpWatch: 1}, Watchers: 2, Ops: 10,
		Timeout: 200 * time.Millisecond})
	if err != nil || r.Errors != 1 || !strings.Contains(r.FirstErr, "only 0 of 2") {
		t.Errorf("watch against the do-nothing server: %v, %v", r, err)
	}
	sock := engineSocket(t)
	if _, err := Run(Config{Socket: sock, Mix: Mix{OpRead: 1}, Ops: 10, Prefix: "/bad//prefix"}); err == nil ||
		!strings.Contains(err.Error(), "EINVAL") {
		t.Errorf("invalid paths: %v", err)
	}
	if _, err := Run(Config{Socket: sock, Conns: 1001, Ops: 1}); err == nil {
		t.Error("1001 connections accepted")
	}
	if _, err := Run(Config{Socket: sock}); err == nil {
		t.Error("a run with neither duration nor op count accepted")
	}
}

func TestParseMix(t *testing.T) {
	m, err := ParseMix("read=3, write,dir=0,transaction=2")
	if err != nil || m != (Mix{OpRead: 3, OpWrite: 1, OpTxn: 2}) {
		t.Fatalf("got %v, %v", m, err)
	}
	if _, err := ParseMix("frob=1"); err == nil {
		t.Error("unknown op accepted")
	}
	if _, err := Run(Config{Socket: "x", Mix: Mix{OpWatch: 1, OpRead: 1}, Ops: 1}); err == nil {
		t.Error("watch mixed with read accepted")
	}
}

func TestHistogram(t *testing.T) {
	var h Histogram
	for i := 1; i <= 100000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, q := range []float64{0.5, 0.99, 0.999} {
		want := q * 100000 * float64(time.Microsecond)
		got := float64(h.Quantile(q))
		if got < want || got > want*1.01 {
			t.Errorf("q%v = %v, want %v within +1%%", q, time.Duration(got), time.Duration(want))
		}
	}
	if h.Max() != 100*time.Millisecond || h.Min() != time.Microsecond || h.Count() != 100000 {
		t.Errorf("min %v max %v count %d", h.Min(), h.Max(), h.Count())
	}
	var a, b Histogram
	a.Record(5)
	b.Record(7 * time.Second)
	a.Merge(&b)
	if a.Quantile(0.5) != 5 || a.Quantile(1) != 7*time.Second {
		t.Errorf("merged: p50 %v p100 %v", a.Quantile(0.5), a.Quantile(1))
	}
	for v := uint64(0); v < 1<<40; v = v*3/2 + 1 {
		i := bucketOf(v)
		if bucketLow(i) > v || bucketHigh(i) < v {
			t.Fatalf("value %d in bucket %d [%d, %d]", v, i, bucketLow(i), bucketHigh(i))
		}
	}
}
