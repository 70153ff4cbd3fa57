// Command xsload is a load generator for xenstore servers on a local Unix
// socket, and for our store over the fake hypervisor's rings (package
// bench).
//
// One run:
//
//	xsload -socket PATH [-conns 4] [-depth 16] [-mix read=1,write=1]
//	       [-size 16] [-duration 5s | -ops N] ...
//
// prints ops/s and latency percentiles; with -progress (default for runs
// over 3 s) a line per second goes to stderr. It exits 1 on any
// unexpected error reply.
//
// Over rings:
//
//	xsload -ring N [-depth 4] [-mix read=1,write=1,dir=1] [-size 16]
//	       [-duration 5s | -ops N]
//
// starts N fake guest domains, each with its own grant-mapped ring page and
// event channel served by the real ring transport (transport/xenring) and
// an in-process engine, and has every guest keep -depth requests in flight
// (READ / WRITE of its data/counter, DIRECTORY of its data; transactions
// and watches only on the socket). Any error reply ends the run.
//
// The benchmark suite of `make bench`:
//
//	xsload -suite -target go=SOCK -target c422=SOCK ... [-baseline c422]
//	       [-duration 2s] [-repeat 2] [-png images/bench.png]
//
// runs every scenario of bench.Suite against every target and prints a
// table with ratios against the baseline.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/xsstub/xenstored/bench"
)

type targets []bench.Target

func (t *targets) String() string { return fmt.Sprint(*t) }
func (t *targets) Set(s string) error {
	name, sock, ok := strings.Cut(s, "=")
	if !ok || name == "" || sock == "" {
		return fmt.Errorf("want NAME=SOCKET, got %q", s)
	}
	*t = append(*t, bench.Target{Name: name, Socket: sock})
	return nil
}

func main() {
	var (
		cfg      bench.Config
		mix      = flag.String("mix", "read=1,write=1", "operation weights: read, write, dir, txn, watch (watch alone)")
		progress = flag.Bool("progress", false, "print a progress line per second on stderr (default: on for runs over 3s)")
		suite    = flag.Bool("suite", false, "run the benchmark suite against -target servers")
		tgts     targets
		baseline = flag.String("baseline", "c422", "suite: the target ratios are computed against")
		repeat   = flag.Int("repeat", 2, "suite: runs per scenario and target (the best is reported)")
		png      = flag.String("png", "", "suite: write a chart to this PNG file")
		md       = flag.String("markdown", "", "suite: also write the table as Markdown to this file")
		only     = flag.String("scenarios", "", "suite: comma-separated scenario names to run (default all)")
	)
	flag.StringVar(&cfg.Socket, "socket", "", "Unix socket of the server")
	flag.IntVar(&cfg.Conns, "conns", 1, "connections (1-1000)")
	flag.IntVar(&cfg.Depth, "depth", 1, "requests in flight per connection (1-256)")
	flag.IntVar(&cfg.ValueSize, "size", 16, "value size in bytes")
	flag.IntVar(&cfg.Keys, "keys", 128, "distinct keys")
	flag.IntVar(&cfg.DirEntries, "dir-entries", 16, "children of the listed directory")
	flag.IntVar(&cfg.Watchers, "watchers", 10, "watcher connections for -mix watch")
	flag.DurationVar(&cfg.Duration, "duration", 0, "measured duration (default 5s, or 2s per run with -suite; 0 with -ops: until done)")
	flag.DurationVar(&cfg.Warmup, "warmup", 300*time.Millisecond, "unmeasured time before the measurement (default 0 with -ops)")
	flag.Int64Var(&cfg.Ops, "ops", 0, "stop after this many operations")
	flag.StringVar(&cfg.Prefix, "prefix", "/bench", "base path of the nodes used")
	flag.Var(&tgts, "target", "suite: NAME=SOCKET (repeatable)")
	ringN := flag.Int("ring", 0, "drive N fake-ring guests of an in-process store instead of a socket")
	ringNull := flag.Bool("ring-null", false, "with -ring: serve the rings with the do-nothing ring server (the ceiling) instead of our store")
	ringCeiling := flag.Bool("ring-ceiling", false, "ours against the do-nothing ring server at 1x1 and 1x16 (-duration per run, -repeat runs)")
	storm := flag.String("storm", "", "replay xl create/destroy for these numbers of domains (e.g. 1,10,100,1000) against every -target; ratios against -baseline")
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if *storm != "" {
		if len(tgts) == 0 {
			fail(fmt.Errorf("-storm needs -target NAME=SOCKET"))
		}
		var sizes []int
		for _, f := range strings.Split(*storm, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > 30000 {
				fail(fmt.Errorf("-storm %q: want domain counts 1-30000", *storm))
			}
			sizes = append(sizes, n)
		}
		rows, err := bench.StormSuite(tgts, sizes, func(s string) { fmt.Fprintln(os.Stderr, s) })
		if err != nil {
			fail(err)
		}
		fmt.Print(bench.StormTable(rows, tgts, *baseline, false))
		if *md != "" {
			if err := os.WriteFile(*md, []byte(bench.StormTable(rows, tgts, *baseline, true)), 0o644); err != nil {
				fail(err)
			}
		}
		return
	}
	if *ringCeiling {
		d := cfg.Duration
		if d == 0 {
			d = 2 * time.Second
		}
		out, err := runRingCeiling(d, *repeat, false, os.Stderr)
		if err != nil {
			fail(err)
		}
		fmt.Print(out)
		return
	}
	if *suite {
		if len(tgts) == 0 {
			fail(fmt.Errorf("-suite needs -target NAME=SOCKET"))
		}
		d := cfg.Duration
		if d == 0 {
			d = 2 * time.Second
		}
		scs, err := pickScenarios(*only)
		if err != nil {
			fail(err)
		}
		rep, err := bench.RunSuite(bench.SuiteOptions{
			Targets: tgts, Baseline: *baseline, Duration: d, Warmup: cfg.Warmup,
			Repeat: *repeat, Log: os.Stderr, Scenarios: scs,
		})
		if err != nil {
			fail(err)
		}
		fmt.Print(rep.Table())
		if *md != "" {
			if err := os.WriteFile(*md, []byte(rep.Markdown()), 0o644); err != nil {
				fail(err)
			}
		}
		if *png != "" {
			if err := rep.WritePNG(*png); err != nil {
				fail(err)
			}
			fmt.Fprintln(os.Stderr, "xsload: wrote", *png)
		}
		return
	}

	m, err := bench.ParseMix(*mix)
	if err != nil {
		fail(err)
	}
	cfg.Mix = m
	if cfg.Duration == 0 && cfg.Ops == 0 {
		cfg.Duration = 5 * time.Second
	}
	if *ringN > 0 {
		if cfg.Socket != "" {
			fail(fmt.Errorf("-ring and -socket exclude each other"))
		}
		line, err := runRing(*ringN, cfg.Depth, m, cfg.ValueSize, cfg.Duration, cfg.Ops, *ringNull, progressTo(*progress, cfg.Duration, cfg.Ops))
		if err != nil {
			fail(err)
		}
		fmt.Printf("%s %d fake-ring guests x %d in flight, %d-byte values: %s\n", m, *ringN, cfg.Depth, cfg.ValueSize, line)
		return
	}
	if cfg.Socket == "" {
		fail(fmt.Errorf("-socket or -ring is required"))
	}
	if cfg.Ops > 0 && !flagSet("warmup") {
		cfg.Warmup = 0 // count every operation asked for
	}
	cfg.Progress = progressTo(*progress, cfg.Duration+cfg.Warmup, cfg.Ops)
	r, err := bench.Run(cfg)
	if err != nil {
		fail(err)
	}
	fmt.Printf("%s %d conns x %d in flight, %d-byte values: %s\n", cfg.Mix, cfg.Conns, cfg.Depth, cfg.ValueSize, r)
	if r.Errors > 0 {
		fmt.Fprintf(os.Stderr, "xsload: %d errors, first: %s\n", r.Errors, r.FirstErr)
		os.Exit(1)
	}
}

// progressTo is where progress lines go: stderr when asked for, or for
// timed runs over 3 s; nil otherwise.
func progressTo(asked bool, d time.Duration, ops int64) io.Writer {
	if asked || d > 3*time.Second && ops == 0 {
		return os.Stderr
	}
	return nil
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "xsload:", err)
	os.Exit(1)
}

// pickScenarios selects suite scenarios by name ("" is all of them).
func pickScenarios(names string) ([]bench.Scenario, error) {
	if names == "" {
		return nil, nil
	}
	var out []bench.Scenario
	for _, n := range strings.Split(names, ",") {
		found := false
		for _, sc := range bench.Suite {
			if sc.Name == n {
				out = append(out, sc)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("no scenario %q", n)
		}
	}
	return out, nil
}
