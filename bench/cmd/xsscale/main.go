// Command xsscale runs the scale measurements of `make scale` (package
// bench): the engine's per-operation cost and memory as the tree grows,
// the same with thousands of fake-ring domains, ring round trips and
// throughput over 1, 100 and 1000 fake domains, and the resident memory
// per node of our daemon against C xenstored's.
//
//	xsscale [-tree 1000,10000,100000,1000000] [-domains 10,100,1000,10000]
//	        [-ring 1,100,1000] [-ring-duration 1s]
//	        [-ours bin/xenstored] [-c /path/to/xenstored -shim xsshim.so]
//	        [-mem 10000,100000,200000] [-liveupdate 1000,10000] [-markdown FILE]
//
// An empty list skips that part. Progress goes to stderr, tables to
// stdout.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/xsstub/xenstored/bench"
)

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad count %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func main() {
	var (
		treeS    = flag.String("tree", "1000,10000,100000,1000000", "tree sizes (nodes)")
		domS     = flag.String("domains", "10,100,1000,10000", "domain counts (fake rings)")
		ringS    = flag.String("ring", "1,100,1000", "domain counts for ring throughput")
		ringDur  = flag.Duration("ring-duration", time.Second, "per ring throughput run")
		ours     = flag.String("ours", "", "our xenstored binary, for the process memory comparison")
		cbin     = flag.String("c", "", "C xenstored 4.17 binary, for the process memory comparison")
		shim     = flag.String("shim", "", "LD_PRELOAD shim for C xenstored (difftest/shim/xsshim.c, compiled)")
		memS     = flag.String("mem", "10000,100000,200000", "process memory comparison sizes (nodes)")
		luS      = flag.String("liveupdate", "1000,10000", "domain counts for the live-update cost (fake rings)")
		mdPath   = flag.String("markdown", "", "also write the tables as Markdown to this file")
		opsN     = flag.Int("ops", 20000, "engine operations per timed batch")
		progress = flag.Bool("progress", true, "progress lines on stderr")
		cpuProf  = flag.String("cpuprofile", "", "write a CPU profile of the whole run (go tool pprof)")
	)
	flag.Parse()
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "xsscale:", err)
		os.Exit(1)
	}
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	say := func(s string) {
		if *progress {
			fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), s)
		}
	}
	tree, err := ints(*treeS)
	if err != nil {
		fail(err)
	}
	doms, err := ints(*domS)
	if err != nil {
		fail(err)
	}
	rings, err := ints(*ringS)
	if err != nil {
		fail(err)
	}
	mems, err := ints(*memS)
	if err != nil {
		fail(err)
	}
	lus, err := ints(*luS)
	if err != nil {
		fail(err)
	}
	var md strings.Builder
	emit := func(title string, text, mdText string) {
		fmt.Printf("== %s\n%s\n", title, text)
		fmt.Fprintf(&md, "#### %s\n\n%s\n", title, mdText)
	}

	if len(tree) > 0 {
		say("tree scale")
		rows, err := bench.TreeScale(bench.TreeScaleOptions{Sizes: tree, Ops: *opsN, Progress: say})
		if err != nil {
			fail(err)
		}
		emit("Engine, tree growing (in-process, dom0, random nodes; mean per operation)", bench.TreeTable(rows, false), bench.TreeTable(rows, true))
	}
	if len(lus) > 0 {
		var rows []*bench.LiveUpdateRow
		for _, n := range lus {
			say(fmt.Sprintf("live update with %d domains", n))
			row, err := bench.LiveUpdateCost(n)
			if err != nil {
				fail(err)
			}
			rows = append(rows, row)
		}
		emit("Live update (fake rings, ~100 nodes and a watch per guest; live heap after a collection plus the stream's memfd)", bench.LiveUpdateTable(rows, false), bench.LiveUpdateTable(rows, true))
	}
	if len(doms) > 0 {
		say("domain scale")
		res, err := bench.DomainScale(bench.DomainScaleOptions{Counts: doms, Ops: *opsN, Progress: say})
		if err != nil {
			fail(err)
		}
		emit("Domains growing (fake rings, ~100 nodes and 9 watches per guest)", bench.DomainTables(res, false), bench.DomainTables(res, true))
	}
	if len(rings) > 0 {
		var rs []*bench.RingResult
		for _, n := range rings {
			for _, depth := range []int{1, 4} {
				say(fmt.Sprintf("ring throughput: %d domains x %d in flight", n, depth))
				r, err := bench.RingThroughput(bench.RingOptions{Domains: n, Depth: depth, Duration: *ringDur, Mix: bench.Mix{bench.OpRead: 1, bench.OpWrite: 1}})
				if errors.Is(err, bench.ErrSkipped) {
					say(err.Error())
					continue
				}
				if err != nil {
					fail(err)
				}
				rs = append(rs, r)
			}
		}
		say("ring round trip through ringclient (1 domain)")
		rc, err := bench.RingThroughput(bench.RingOptions{Domains: 1, Depth: 1, Duration: *ringDur, Mix: bench.Mix{bench.OpRead: 1, bench.OpWrite: 1}, Clients: true})
		if err != nil {
			fail(err)
		}
		t := bench.RingTable(rs, false)
		m := bench.RingTable(rs, true)
		note := fmt.Sprintf("through xen/ringclient instead (1 domain, 1 in flight): %.0f ops/s, p50 %v, p99 %v\n",
			rc.Rate(), rc.Lat.Quantile(0.5).Round(100*time.Nanosecond), rc.Lat.Quantile(0.99).Round(100*time.Nanosecond))
		emit("Ring transport: READ/WRITE alternating, one driver thread for all guests", t+"\n"+note, m+"\n"+note)
	}
	if len(mems) > 0 && (*ours != "" || *cbin != "") {
		dir, err := os.MkdirTemp("", "xsscale")
		if err != nil {
			fail(err)
		}
		defer os.RemoveAll(dir)
		var ts []bench.MemTarget
		if *ours != "" {
			sock := filepath.Join(dir, "go.sock")
			ts = append(ts, bench.MemTarget{Name: "go", Cmd: []string{*ours, "-N", "--socket", sock}, Socket: sock})
		}
		if *cbin != "" {
			if *shim == "" {
				fail(errors.New("-c needs -shim"))
			}
			run := filepath.Join(dir, "c")
			if err := os.MkdirAll(run, 0o755); err != nil {
				fail(err)
			}
			ts = append(ts, bench.MemTarget{Name: "c", Cmd: []string{*cbin, "-N"},
				Env: []string{"XENSTORED_RUNDIR=" + run, "LD_PRELOAD=" + *shim}, Socket: filepath.Join(run, "socket")})
		}
		rows, err := bench.ProcMemScale(ts, mems, say)
		if err != nil {
			fail(err)
		}
		emit("Daemon resident memory per node (socket fill, VmRSS)", bench.ProcMemTable(rows, false), bench.ProcMemTable(rows, true))
	}
	if *mdPath != "" {
		if err := os.WriteFile(*mdPath, []byte(md.String()), 0o644); err != nil {
			fail(err)
		}
	}
}
