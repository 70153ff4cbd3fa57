package bench

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Target is a server under test.
type Target struct {
	Name   string
	Socket string
}

// Scenario is one row of the suite.
type Scenario struct {
	Name  string
	About string
	Cfg   Config // Socket, Duration, Warmup, Prefix are filled in per run
	// NeedsState marks scenarios a stateless server cannot serve (the
	// watch fan-out): do-nothing targets (Stateless) skip them.
	NeedsState bool
}

// Stateless reports whether a target name is one of the do-nothing
// servers: "null" (bench/cmd/nullstored, Go) or "cnull" (bench/cnull, a
// single-threaded C epoll server answering the same).
func Stateless(name string) bool { return name == "null" || name == "cnull" }

// Suite is what `make bench` measures.
var Suite = []Scenario{
	{Name: "rw-1x1", About: "read/write 50/50, 16-byte values, 1 conn x 1 in flight",
		Cfg: Config{Conns: 1, Depth: 1, Mix: Mix{OpRead: 1, OpWrite: 1}, ValueSize: 16}},
	{Name: "rw-4x16", About: "read/write 50/50, 16-byte values, 4 conns x 16 in flight",
		Cfg: Config{Conns: 4, Depth: 16, Mix: Mix{OpRead: 1, OpWrite: 1}, ValueSize: 16}},
	{Name: "read-4x16", About: "read, 16-byte values, 4 conns x 16 in flight",
		Cfg: Config{Conns: 4, Depth: 16, Mix: Mix{OpRead: 1}, ValueSize: 16}},
	{Name: "rw-100x1", About: "read/write 50/50, 16-byte values, 100 conns x 1 in flight",
		Cfg: Config{Conns: 100, Depth: 1, Mix: Mix{OpRead: 1, OpWrite: 1}, ValueSize: 16}},
	{Name: "dir-4x16", About: "DIRECTORY of 16 children, 4 conns x 16 in flight",
		Cfg: Config{Conns: 4, Depth: 16, Mix: Mix{OpDirectory: 1}, ValueSize: 16, DirEntries: 16}},
	{Name: "txn-4x4", About: "transaction read-modify-write (4 requests), own key per lane, 4 conns x 4 in flight",
		Cfg: Config{Conns: 4, Depth: 4, Mix: Mix{OpTxn: 1}, ValueSize: 16, Keys: 16}},
	{Name: "watch-10", About: "write fanned out to 10 watcher conns, 1 writer x 1 in flight, latency to the 10th event",
		Cfg: Config{Conns: 1, Depth: 1, Mix: Mix{OpWatch: 1}, ValueSize: 16, Watchers: 10}, NeedsState: true},
}

// SuiteOptions controls RunSuite.
type SuiteOptions struct {
	Targets   []Target
	Baseline  string        // target name ratios are against
	Scenarios []Scenario    // default Suite
	Duration  time.Duration // measured per run
	Warmup    time.Duration
	Repeat    int       // runs per scenario and target; the best counts
	Log       io.Writer // progress, one line per run
}

// Report is a suite's outcome.
type Report struct {
	Targets   []string
	Baseline  string
	Scenarios []Scenario
	// Results[scenario][target] is the best run, nil if skipped or failed.
	Results [][]*Result
	// Rates[scenario][target] is every successful run's ops/s, in order.
	Rates [][][]float64
	Notes []string // failures
}

// RunSuite runs every scenario against every target, interleaving the
// targets within each repetition so that a noisy neighbour hurts all of
// them alike.
func RunSuite(o SuiteOptions) (*Report, error) {
	if len(o.Scenarios) == 0 {
		o.Scenarios = Suite
	}
	if o.Repeat < 1 {
		o.Repeat = 1
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	rep := &Report{Baseline: o.Baseline, Scenarios: o.Scenarios}
	for _, t := range o.Targets {
		rep.Targets = append(rep.Targets, t.Name)
	}
	rep.Results = make([][]*Result, len(o.Scenarios))
	rep.Rates = make([][][]float64, len(o.Scenarios))
	for si, sc := range o.Scenarios {
		rep.Results[si] = make([]*Result, len(o.Targets))
		rep.Rates[si] = make([][]float64, len(o.Targets))
		for r := 0; r < o.Repeat; r++ {
			for ti, t := range o.Targets {
				if sc.NeedsState && Stateless(t.Name) {
					continue
				}
				cfg := sc.Cfg
				cfg.Socket = t.Socket
				cfg.Duration = o.Duration
				cfg.Warmup = o.Warmup
				cfg.Prefix = "/bench/" + sc.Name
				cfg.Seed = uint64(r + 1)
				res, err := Run(cfg)
				if err == nil && res.Errors > 0 {
					err = fmt.Errorf("%d errors, first: %s", res.Errors, res.FirstErr)
				}
				if err != nil {
					rep.Notes = append(rep.Notes, fmt.Sprintf("%s on %s: %v", sc.Name, t.Name, err))
					fmt.Fprintf(o.Log, "bench: %-10s %-5s FAILED: %v\n", sc.Name, t.Name, err)
					continue
				}
				fmt.Fprintf(o.Log, "bench: %-10s %-5s %s\n", sc.Name, t.Name, res)
				rep.Rates[si][ti] = append(rep.Rates[si][ti], res.Rate())
				if best := rep.Results[si][ti]; best == nil || res.Rate() > best.Rate() {
					rep.Results[si][ti] = res
				}
			}
		}
	}
	return rep, nil
}

func (rep *Report) baseIndex() int {
	for i, n := range rep.Targets {
		if n == rep.Baseline {
			return i
		}
	}
	return -1
}

// Ratio is target ti's throughput over the baseline's in scenario si
// (0 when either is missing).
func (rep *Report) Ratio(si, ti int) float64 {
	b := rep.baseIndex()
	if b < 0 {
		return 0
	}
	r, base := rep.Results[si][ti], rep.Results[si][b]
	if r == nil || base == nil || base.Rate() == 0 {
		return 0
	}
	return r.Rate() / base.Rate()
}

func us(d time.Duration) string {
	v := float64(d) / 1e3
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func (rep *Report) rows() (header []string, rows [][]string) {
	header = []string{"scenario", "server", "ops/s", "median", "vs " + rep.Baseline, "p50 µs", "p99 µs", "p99.9 µs", "conflicts"}
	for si, sc := range rep.Scenarios {
		for ti, name := range rep.Targets {
			r := rep.Results[si][ti]
			first := ""
			if ti == 0 {
				first = sc.Name
			}
			if r == nil {
				rows = append(rows, []string{first, name, "n/a", "", "", "", "", "", ""})
				continue
			}
			ratio := ""
			if x := rep.Ratio(si, ti); x > 0 {
				ratio = fmt.Sprintf("%.2fx", x)
			}
			rows = append(rows, []string{first, name, fmt.Sprintf("%.0f", r.Rate()),
				fmt.Sprintf("%.0f", rep.Median(sc.Name, name)), ratio,
				us(r.Hist.Quantile(0.5)), us(r.Hist.Quantile(0.99)), us(r.Hist.Quantile(0.999)),
				fmt.Sprint(r.Conflicts)})
		}
	}
	return header, rows
}

// Table formats the report as aligned text.
func (rep *Report) Table() string {
	header, rows := rep.rows()
	width := make([]int, len(header))
	all := append([][]string{header}, rows...)
	for _, r := range all {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	for ri, r := range all {
		if ri > 0 && r[0] != "" {
			b.WriteString("\n")
		}
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if i >= 2 {
				b.WriteString(pad + c)
			} else {
				b.WriteString(c + pad)
			}
			if i < len(r)-1 {
				b.WriteString("  ")
			}
		}
		b.WriteString("\n")
	}
	b.WriteString(rep.summary())
	return b.String()
}

// Markdown formats the report as a Markdown table.
func (rep *Report) Markdown() string {
	header, rows := rep.rows()
	var b strings.Builder
	b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for i := range header {
		if i >= 2 {
			b.WriteString("---:|")
		} else {
			b.WriteString("---|")
		}
	}
	b.WriteString("\n")
	for _, r := range rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	b.WriteString("\n")
	for _, sc := range rep.Scenarios {
		fmt.Fprintf(&b, "- `%s`: %s\n", sc.Name, sc.About)
	}
	if s := rep.summary(); s != "" {
		b.WriteString("\n```\n" + s + "```\n")
	}
	return b.String()
}

func (rep *Report) find(scenario, target string) (*Result, int, int) {
	for si, sc := range rep.Scenarios {
		if sc.Name != scenario {
			continue
		}
		for ti, n := range rep.Targets {
			if n == target {
				return rep.Results[si][ti], si, ti
			}
		}
	}
	return nil, -1, -1
}

// summary checks the project's targets: ours at least 2x C (the baseline,
// c422 or c417) at 4 conns x 16 in flight, and at least 90% of the
// do-nothing server at 1 in flight.
func (rep *Report) summary() string {
	var b strings.Builder
	if r, si, ti := rep.find("rw-4x16", "go"); r != nil && strings.HasPrefix(rep.Baseline, "c4") {
		x := rep.Ratio(si, ti)
		fmt.Fprintf(&b, "target go >= 2.00x %s at rw-4x16: %.2fx %s\n", rep.Baseline, x, verdict(x >= 2))
	}
	// At 1 in flight the runs differ more than the servers: medians.
	g := rep.Median("rw-1x1", "go")
	for _, ceil := range []string{"cnull", "null"} {
		n := rep.Median("rw-1x1", ceil)
		if g > 0 && n > 0 {
			x := g / n
			fmt.Fprintf(&b, "target go >= 90%% of %s at rw-1x1: %.0f%% of medians (%.0f / %.0f ops/s) %s\n",
				ceil, 100*x, g, n, verdict(x >= 0.9))
		}
	}
	notes := append([]string(nil), rep.Notes...)
	sort.Strings(notes)
	for _, n := range notes {
		fmt.Fprintf(&b, "failed: %s\n", n)
	}
	return b.String()
}

// Median is the median ops/s of target's runs of scenario (0: none).
func (rep *Report) Median(scenario, target string) float64 {
	_, si, ti := rep.find(scenario, target)
	if si < 0 || ti < 0 || si >= len(rep.Rates) || len(rep.Rates[si][ti]) == 0 {
		return 0
	}
	v := append([]float64(nil), rep.Rates[si][ti]...)
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func verdict(ok bool) string {
	if ok {
		return "(met)"
	}
	return "(NOT met)"
}
