//go:build linux

package difftest

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	flagSeqs   = flag.Int("difftest.seqs", envInt("DIFFTEST_SEQS", 300), "random sequences to run ($DIFFTEST_SEQS)")
	flagOps    = flag.Int("difftest.ops", envInt("DIFFTEST_OPS", 50), "ops per sequence ($DIFFTEST_OPS)")
	flagSeed   = flag.Uint64("difftest.seed", uint64(envInt("DIFFTEST_SEED", 1)), "seed of the first sequence; sequence i uses seed+i ($DIFFTEST_SEED)")
	flagReport = flag.String("difftest.report", os.Getenv("DIFFTEST_REPORT"), "append mismatch reports to this file ($DIFFTEST_REPORT)")
	flagMax    = flag.Int("difftest.maxfindings", envInt("DIFFTEST_MAXFINDINGS", 20), "stop after this many distinct mismatches ($DIFFTEST_MAXFINDINGS)")
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func TestMain(m *testing.M) {
	flag.Parse()
	tmp, err := os.MkdirTemp("", "difftest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	theEnv = setupEnv(tmp)
	code := m.Run()
	_ = os.RemoveAll(tmp)
	os.Exit(code)
}

// forPeers runs f as a subtest for each C peer selected by $DIFFTEST_PEERS
// (comma-separated keys, default all: c422,c417), skipping (or, with
// $DIFFTEST_REQUIRE, failing) those that cannot be run.
func forPeers(t *testing.T, f func(t *testing.T, p *peer)) {
	want := map[string]bool{}
	for _, k := range strings.Split(os.Getenv("DIFFTEST_PEERS"), ",") {
		if k = strings.TrimSpace(k); k != "" {
			want[k] = true
		}
	}
	for _, p := range theEnv.peers {
		if len(want) > 0 && !want[p.key] {
			continue
		}
		t.Run(p.key, func(t *testing.T) {
			for _, why := range []string{theEnv.skipWhy, p.skipWhy} {
				if why == "" {
					continue
				}
				if os.Getenv("DIFFTEST_REQUIRE") != "" {
					t.Fatal(why)
				}
				t.Skip(why)
			}
			f(t, p)
		})
	}
}

// report logs a mismatch against peer p (and appends it to the report
// file, if any).
func report(t *testing.T, p *peer, title string, ops []Op, m *mismatch) {
	t.Helper()
	text := fmt.Sprintf("### %s: %s\n\nsequence (%d ops), mismatch at op %d (%s):\n%s\n  %-6s %s  ours   %s",
		p.key, title, len(ops), m.index, m.what, formatSeq(ops), p.name, m.c, m.g)
	if len(m.masked) > 0 {
		text += fmt.Sprintf("  (intended differences passed over: %v)\n", m.masked)
	}
	t.Error(text)
	if *flagReport != "" {
		f, err := os.OpenFile(*flagReport, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintf(f, "%s\n\n", text)
			_ = f.Close()
		}
	}
}

// TestRandom replays seeded random sequences on ours and each C peer.
// Each distinct mismatch is minimised and reported; the test fails if any
// remain.
func TestRandom(t *testing.T) {
	forPeers(t, testRandom)
}

func testRandom(t *testing.T, p *peer) {
	start := time.Now()
	seen := map[string]bool{}
	var minimiseSpent time.Duration
	for i := range *flagSeqs {
		seed := *flagSeed + uint64(i)
		ops := genSeq(seed, *flagOps)
		m, err := runSeq(p, ops)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if m == nil {
			continue
		}
		sig := m.signature(ops)
		if seen[sig] {
			continue
		}
		seen[sig] = true
		// Minimising costs a daemon pair per attempt: bound it per finding
		// and for the whole run.
		budget := min(10*time.Second, 30*time.Second-minimiseSpent)
		t0 := time.Now()
		short, mm := ops[:m.index+1], m
		if budget > 0 {
			short, mm = minimise(p, ops, m, budget)
		}
		minimiseSpent += time.Since(t0)
		report(t, p, fmt.Sprintf("seed %d: %s", seed, sig), short, mm)
		if len(seen) >= *flagMax {
			t.Fatalf("stopping after %d distinct mismatches", len(seen))
		}
	}
	if testing.Verbose() {
		keys := slices.Sorted(maps.Keys(stats))
		for _, k := range keys {
			if strings.HasPrefix(k, p.key+": ") {
				t.Logf("%6d  %s", stats[k], k)
			}
		}
	}
	t.Logf("%d sequences x %d ops in %v, %d distinct mismatches", *flagSeqs, *flagOps, time.Since(start).Round(time.Millisecond), len(seen))
}
