package bench

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"
)

// RingCeilingCase is one row pair of the ring ceiling: domains x depth,
// read/write 50/50 of 16-byte values, against our store and RingNull.
type RingCeilingCase struct {
	Name           string
	Domains, Depth int
}

// RingCeilingCases: one ring at depth 1 and one at 16 in flight.
var RingCeilingCases = []RingCeilingCase{{"ring-1x1", 1, 1}, {"ring-1x16", 1, 16}}

// RingCeilingRow is one case's outcome: the best run of each server and
// every run's rate.
type RingCeilingRow struct {
	Case             RingCeilingCase
	Go, Null         *RingResult
	GoRates, NullRts []float64
	GoCPU, NullCPU   []float64 // µs of process CPU per request, per run
}

// RingCeiling runs every case against ours and the null ring server in
// turn (interleaved, so a noisy neighbour hurts both), repeat times.
func RingCeiling(d time.Duration, repeat int, log io.Writer) ([]RingCeilingRow, error) {
	rows := make([]RingCeilingRow, len(RingCeilingCases))
	for i, c := range RingCeilingCases {
		rows[i].Case = c
	}
	for k := 0; k < repeat; k++ {
		for i, c := range RingCeilingCases {
			for _, null := range []bool{false, true} {
				r, err := RingThroughput(RingOptions{Domains: c.Domains, Depth: c.Depth, Duration: d,
					Mix: Mix{OpRead: 1, OpWrite: 1}, ValueSize: 16, Null: null})
				if err != nil {
					return nil, fmt.Errorf("%s (null=%v): %w", c.Name, null, err)
				}
				name, best, rates, cpu := "go", &rows[i].Go, &rows[i].GoRates, &rows[i].GoCPU
				if null {
					name, best, rates, cpu = "ringnull", &rows[i].Null, &rows[i].NullRts, &rows[i].NullCPU
				}
				*rates = append(*rates, r.Rate())
				*cpu = append(*cpu, r.CPUPerOp())
				if *best == nil || r.Rate() > (*best).Rate() {
					*best = r
				}
				if log != nil {
					fmt.Fprintf(log, "  %s %s run %d: %.0f ops/s\n", c.Name, name, k+1, r.Rate())
				}
			}
		}
	}
	return rows, nil
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// RingCeilingTable renders the rows and the target (ours >= 90% of the
// null ring server, on medians).
func RingCeilingTable(rows []RingCeilingRow, md bool) string {
	h := []string{"scenario", "server", "ops/s", "median", "vs ringnull", "cpu µs/op", "p50", "p99", "p99.9"}
	var out [][]string
	var targets string
	for _, r := range rows {
		gm, nm := median(r.GoRates), median(r.NullRts)
		for i, res := range []*RingResult{r.Go, r.Null} {
			name, m, cpu := "go", gm, median(r.GoCPU)
			if i == 1 {
				name, m, cpu = "ringnull", nm, median(r.NullCPU)
			}
			first := r.Case.Name
			if i == 1 {
				first = ""
			}
			out = append(out, []string{first, name, fmt.Sprintf("%.0f", res.Rate()), fmt.Sprintf("%.0f", m),
				fmt.Sprintf("%.2fx", m/nm), fmt.Sprintf("%.2f", cpu), fmtNs(res.Lat.Quantile(0.5)), fmtNs(res.Lat.Quantile(0.99)), fmtNs(res.Lat.Quantile(0.999))})
		}
		verdict := "met"
		if gm < 0.9*nm {
			verdict = "NOT met"
		}
		targets += "target go >= 90% of ringnull at " + r.Case.Name + ": " + strconv.Itoa(int(100*gm/nm+0.5)) +
			fmt.Sprintf("%% of medians (%.0f / %.0f ops/s) (%s)\n", gm, nm, verdict)
	}
	return table(md, h, out) + targets
}
