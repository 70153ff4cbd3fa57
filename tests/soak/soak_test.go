// Package soak is a bounded load and soak test of the built xenstored on a
// Unix socket: many well-behaved connections with watch fan-out, mixed with
// misbehaving clients, checking that no reply and no watch event is lost
// and that the daemon's memory stays under a stated bound.
//
// The daemon binary comes from $XSTEST_BIN (set by `make test`); without it
// the test builds ./stubdom/xenstored into a temporary directory.
//
// Budget (defaults: about a minute on a 2-core VM; XSSOAK_CONNS and
// XSSOAK_OPS change it):
//
//   - 1000 writer connections × 1000 operations each = 1 000 000 requests
//     (half WRITEs of distinct nodes, a quarter READs checking the value
//     just written, a quarter DIRECTORY checking the child count), all open
//     at once;
//   - watch fan-out: 2 watchers per group of writers (10 groups) and one
//     watcher of the whole tree, so every WRITE produces 3 events — 300 000
//     events per 200 000 requests; each watcher must receive exactly one event for each node
//     written under its path (paths are distinct, so xenstored's merging of
//     an event identical to a queued one never applies);
//   - misbehaving clients during the load: 4 that pipeline 4 MiB of
//     requests and never read, 3 that read replies slowly, 2 that read watch
//     events slowly, 200 that disconnect mid-message, 20 that send a header
//     longer than 4096 bytes;
//   - memory: the daemon's peak RSS (VmHWM) must stay below 512 MiB. The
//     run leaves 500 000 nodes in the store (measured peak: about 300 MiB,
//     i.e. ~600 bytes per node including queues, buffers and GC headroom).
package soak

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xsclient"
)

const (
	rssBoundKiB   = 512 * 1024 // the stated memory bound: 512 MiB
	groups        = 10
	watchersPer   = 2
	neverReaders  = 4
	slowReaders   = 3
	slowWatchers  = 2
	slowEvents    = 500 // per slow watcher: below maxwatchevents (1024)
	disconnectors = 200
	oversized     = 20
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func daemonBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("XSTEST_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("XSTEST_BIN=%s: %v (run `make build`)", p, err)
		}
		return p
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		t.Fatalf("go env GOMOD: %v %q", err, gomod)
	}
	bin := filepath.Join(t.TempDir(), "xenstored")
	cmd := exec.Command("go", "build", "-o", bin, "./stubdom/xenstored")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./stubdom/xenstored: %v\n%s", err, out)
	}
	return bin
}

type daemon struct {
	sock   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

func startDaemon(t *testing.T) *daemon {
	t.Helper()
	bin := daemonBin(t)
	dir, err := os.MkdirTemp("", "xssoak") // short: socket paths are limited to 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &daemon{sock: filepath.Join(dir, "socket"), log: filepath.Join(dir, "log"), exited: make(chan struct{})}
	logf, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	d.cmd = exec.Command(bin, "-N", "--socket", d.sock)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(10 * time.Second):
			d.cmd.Process.Kill()
			<-d.exited
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("unix", d.sock); err == nil {
			c.Close()
			return d
		}
		select {
		case <-d.exited:
			t.Fatalf("xenstored exited during start-up:\n%s", d.logText())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("xenstored does not serve %s:\n%s", d.sock, d.logText())
		}
	}
}

func (d *daemon) logText() string {
	b, _ := os.ReadFile(d.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (d *daemon) alive() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// memKiB returns VmRSS and VmHWM of the daemon in KiB.
func (d *daemon) memKiB() (rss, hwm int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rss, _ = strconv.Atoi(f[1])
		case "VmHWM:":
			hwm, _ = strconv.Atoi(f[1])
		}
	}
	return rss, hwm, nil
}

func enc(typ wire.Type, reqID uint32, payload []byte) []byte {
	return (&wire.Msg{Type: typ, ReqID: reqID, Payload: payload}).Encode()
}

// readMsg reads one message from r.
func readMsg(r io.Reader) (wire.Msg, error) {
	var h [wire.HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return wire.Msg{}, err
	}
	hd, err := wire.ParseHeader(h[:])
	if err != nil {
		return wire.Msg{}, err
	}
	p := make([]byte, hd.Len)
	if _, err := io.ReadFull(r, p); err != nil {
		return wire.Msg{}, err
	}
	return wire.Msg{Type: hd.Type, ReqID: hd.ReqID, Payload: p}, nil
}

// slowConn reads at most 256 bytes per millisecond.
type slowConn struct{ c net.Conn }

func (s slowConn) Read(p []byte) (int, error) {
	time.Sleep(time.Millisecond)
	if len(p) > 256 {
		p = p[:256]
	}
	return s.c.Read(p)
}

// watcher counts the events of one watch by path.
type watcher struct {
	c      *xsclient.Client
	path   string
	token  string
	mu     sync.Mutex
	seen   map[string]int
	total  atomic.Int64
	bad    atomic.Int64 // events with a foreign token or path
	closed chan struct{}
}

func newWatcher(t *testing.T, sock, path, token string) *watcher {
	t.Helper()
	c, err := xsclient.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	w := &watcher{c: c, path: path, token: token, seen: map[string]int{}, closed: make(chan struct{})}
	go func() {
		defer close(w.closed)
		for ev := range c.Events() {
			if ev.Token != token || !(ev.Path == path || strings.HasPrefix(ev.Path, path+"/")) {
				w.bad.Add(1)
				continue
			}
			w.mu.Lock()
			w.seen[ev.Path]++
			w.mu.Unlock()
			w.total.Add(1)
		}
	}()
	if err := c.Watch(path, token); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test skipped in -short mode")
	}
	conns := envInt("XSSOAK_CONNS", 1000)
	ops := envInt("XSSOAK_OPS", 1000)
	ops -= ops % 4
	d := startDaemon(t)
	start := time.Now()

	// Peak memory, sampled as we go (VmHWM is checked at the end too).
	var maxRSS atomic.Int64
	stopSample := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if rss, _, err := d.memKiB(); err == nil && int64(rss) > maxRSS.Load() {
				maxRSS.Store(int64(rss))
			}
			select {
			case <-stopSample:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()

	admin, err := xsclient.Dial(d.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.Write(0, "/soak/read-me", []byte(strings.Repeat("r", 100))); err != nil {
		t.Fatal(err)
	}

	// Watchers: per group, and one for the whole tree.
	var watchers []*watcher
	for g := range groups {
		for k := range watchersPer {
			watchers = append(watchers, newWatcher(t, d.sock, "/soak/g"+strconv.Itoa(g), "w"+strconv.Itoa(g)+"."+strconv.Itoa(k)))
		}
	}
	all := newWatcher(t, d.sock, "/soak", "all")

	// Writers: all connections open before any load starts.
	writers := make([]*xsclient.Client, conns)
	for i := range writers {
		if writers[i], err = xsclient.Dial(d.sock); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	defer func() {
		for _, c := range writers {
			c.Close()
		}
	}()
	t.Logf("%d connections open after %v", conns+len(watchers)+2, time.Since(start))

	var bad sync.WaitGroup
	var badErrs []string
	var badMu sync.Mutex
	badFail := func(format string, args ...any) {
		badMu.Lock()
		badErrs = append(badErrs, fmt.Sprintf(format, args...))
		badMu.Unlock()
	}
	stopBad := make(chan struct{})

	// Never-readers: pipeline 4 MiB of READs and read nothing. The daemon
	// must stop reading them (bounded queues), so the write cannot finish.
	var neverConns []net.Conn
	for i := range neverReaders {
		c, err := net.Dial("unix", d.sock)
		if err != nil {
			t.Fatal(err)
		}
		neverConns = append(neverConns, c)
		bad.Add(1)
		go func() {
			defer bad.Done()
			req := enc(wire.Read, 1, wire.JoinStrings("/soak/read-me"))
			buf := make([]byte, 0, 4<<20)
			for len(buf)+len(req) <= cap(buf) {
				buf = append(buf, req...)
			}
			c.SetWriteDeadline(time.Now().Add(3 * time.Second))
			n, err := c.Write(buf)
			if err == nil {
				badFail("never-reader %d: daemon accepted all %d bytes of requests without back-pressure", i, n)
			}
		}()
	}

	// Slow readers: 3000 READs each, replies read at 256 bytes/ms; all
	// must arrive in order with the right value.
	for i := range slowReaders {
		c, err := net.Dial("unix", d.sock)
		if err != nil {
			t.Fatal(err)
		}
		bad.Add(1)
		go func() {
			defer bad.Done()
			defer c.Close()
			const n = 3000
			go func() {
				w := bufio.NewWriter(c)
				for j := range n {
					w.Write(enc(wire.Read, uint32(j+1), wire.JoinStrings("/soak/read-me")))
				}
				w.Flush()
			}()
			r := bufio.NewReaderSize(slowConn{c}, 256)
			c.SetReadDeadline(time.Now().Add(120 * time.Second))
			for j := range n {
				m, err := readMsg(r)
				if err != nil {
					badFail("slow reader %d: reply %d: %v", i, j, err)
					return
				}
				if m.ReqID != uint32(j+1) || len(m.Payload) != 100 {
					badFail("slow reader %d: reply %d: id %d, %d bytes", i, j, m.ReqID, len(m.Payload))
					return
				}
			}
		}()
	}

	// Slow event readers: each watches its own quiet subtree; a helper
	// writes slowEvents distinct nodes there.
	for i := range slowWatchers {
		c, err := net.Dial("unix", d.sock)
		if err != nil {
			t.Fatal(err)
		}
		path := "/soak-slow/" + strconv.Itoa(i)
		c.Write(enc(wire.Watch, 1, wire.JoinStrings(path, "slow")))
		bad.Add(1)
		go func() {
			defer bad.Done()
			defer c.Close()
			writer, err := xsclient.Dial(d.sock)
			if err != nil {
				badFail("slow watcher %d: %v", i, err)
				return
			}
			defer writer.Close()
			wrote := make(chan struct{})
			// The event for a write is queued before its reply: wait for
			// the writer's last reply before closing it.
			defer func() { <-wrote }()
			go func() {
				defer close(wrote)
				for j := range slowEvents {
					if err := writer.Write(0, path+"/e"+strconv.Itoa(j), []byte("x")); err != nil {
						badFail("slow watcher %d: write %d: %v", i, j, err)
						return
					}
				}
			}()
			r := bufio.NewReaderSize(slowConn{c}, 256)
			// Generous: the writer's 500 round trips share the daemon
			// with the whole load, which CI runs beside other packages.
			c.SetReadDeadline(time.Now().Add(120 * time.Second))
			seen := map[string]bool{}
			for len(seen) < slowEvents+1 {
				m, err := readMsg(r)
				if err != nil {
					badFail("slow watcher %d: after %d events: %v", i, len(seen), err)
					return
				}
				if m.Type == wire.WatchEvent {
					parts, _ := wire.SplitStrings(m.Payload)
					if seen[parts[0]] {
						badFail("slow watcher %d: duplicate event %s", i, parts[0])
					}
					seen[parts[0]] = true
				}
			}
		}()
	}

	// Disconnect mid-message, in several ways, repeatedly during the load.
	bad.Add(1)
	go func() {
		defer bad.Done()
		full := enc(wire.Write, 1, append(wire.JoinStrings("/soak-dc/x"), "value"...))
		for i := range disconnectors {
			select {
			case <-stopBad:
				return
			default:
			}
			c, err := net.Dial("unix", d.sock)
			if err != nil {
				badFail("disconnector %d: dial: %v", i, err)
				return
			}
			switch i % 4 {
			case 0: // half a header
				c.Write(full[:7])
			case 1: // header and half the payload
				c.Write(full[:wire.HeaderSize+5])
			case 2: // a whole request, gone before the reply
				c.Write(full)
			case 3: // 100 pipelined requests, then half of one more
				var b []byte
				for range 100 {
					b = append(b, full...)
				}
				c.Write(append(b, full[:20]...))
			}
			c.Close()
			time.Sleep(5 * time.Millisecond)
		}
	}()

	// Oversized headers: the daemon must drop each such connection.
	bad.Add(1)
	go func() {
		defer bad.Done()
		lens := []uint32{4097, 1 << 30, 1 << 31, 0xffffffff}
		for i := range oversized {
			c, err := net.Dial("unix", d.sock)
			if err != nil {
				badFail("oversized %d: dial: %v", i, err)
				return
			}
			var h [wire.HeaderSize]byte
			binary.LittleEndian.PutUint32(h[0:], uint32(wire.Write))
			binary.LittleEndian.PutUint32(h[12:], lens[i%len(lens)])
			c.Write(h[:])
			c.Write(make([]byte, 100))
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = c.Read(make([]byte, 16))
			if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
				badFail("oversized header len %#x: connection not dropped: %v", lens[i%len(lens)], err)
			}
			c.Close()
			time.Sleep(20 * time.Millisecond)
		}
	}()

	// The load.
	loadStart := time.Now()
	var wg sync.WaitGroup
	var failures atomic.Int64
	var firstErr atomic.Value
	fail := func(err error) {
		if failures.Add(1) == 1 {
			firstErr.Store(err)
		}
	}
	for i, c := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := i % groups
			dir := fmt.Sprintf("/soak/g%d/c%d", g, i)
			written := 0
			for j := 0; j < ops; j++ {
				switch j % 4 {
				case 0, 2:
					if err := c.Write(0, fmt.Sprintf("%s/n%d", dir, j), []byte(fmt.Sprintf("%d-%d", i, j))); err != nil {
						fail(fmt.Errorf("conn %d op %d: %w", i, j, err))
						return
					}
					written++
				case 1:
					v, err := c.Read(0, fmt.Sprintf("%s/n%d", dir, j-1))
					if err != nil || string(v) != fmt.Sprintf("%d-%d", i, j-1) {
						fail(fmt.Errorf("conn %d op %d: read %q, %v", i, j, v, err))
						return
					}
				case 3:
					ch, err := c.Directory(0, dir)
					if err != nil || len(ch) != written {
						fail(fmt.Errorf("conn %d op %d: directory has %d children, want %d (%v)", i, j, len(ch), written, err))
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	loadTime := time.Since(loadStart)
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d connections failed; first: %v\ndaemon log tail:\n%s", n, firstErr.Load(), d.logText())
	}
	requests := conns * ops
	t.Logf("load: %d requests on %d connections in %v (%.0f/s)", requests, conns, loadTime, float64(requests)/loadTime.Seconds())

	// Every write produced exactly one event per matching watcher (plus
	// the initial event on registration).
	writesPerConn := ops / 2
	perGroup := make([]int, groups)
	for i := range conns {
		perGroup[i%groups] += writesPerConn
	}
	want := func(w *watcher) int64 {
		if w == all {
			return int64(conns*writesPerConn) + 1
		}
		g, _ := strconv.Atoi(strings.TrimPrefix(w.path, "/soak/g"))
		return int64(perGroup[g]) + 1
	}
	everyone := append(append([]*watcher(nil), watchers...), all)
	deadline := time.Now().Add(20 * time.Second)
	for _, w := range everyone {
		for w.total.Load() < want(w) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	time.Sleep(100 * time.Millisecond) // let any surplus arrive
	for _, w := range everyone {
		if got := w.total.Load(); got != want(w) || w.bad.Load() != 0 {
			t.Errorf("watcher %s (%s): %d events, want %d; %d foreign", w.token, w.path, got, want(w), w.bad.Load())
			continue
		}
		w.mu.Lock()
		for p, n := range w.seen {
			if n != 1 {
				t.Errorf("watcher %s: %d events for %s", w.token, n, p)
				break
			}
		}
		w.mu.Unlock()
	}
	t.Logf("events: %d delivered and checked, %v after the load", func() (n int64) {
		for _, w := range everyone {
			n += w.total.Load()
		}
		return
	}(), time.Since(loadStart)-loadTime)

	close(stopBad)
	bad.Wait()
	for _, e := range badErrs {
		t.Error(e)
	}
	if !d.alive() {
		t.Fatalf("daemon died:\n%s", d.logText())
	}
	// Memory while the never-readers still hold their backlog.
	rss, hwm, err := d.memKiB()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range neverConns {
		c.Close()
	}
	for _, w := range everyone {
		w.c.Close()
	}
	close(stopSample)
	<-sampled
	t.Logf("daemon memory: VmRSS %d KiB now, max sampled %d KiB, VmHWM %d KiB (bound %d KiB)", rss, maxRSS.Load(), hwm, rssBoundKiB)
	if hwm > rssBoundKiB || maxRSS.Load() > rssBoundKiB {
		t.Errorf("daemon peak RSS %d KiB exceeds the bound of %d KiB", max(hwm, int(maxRSS.Load())), rssBoundKiB)
	}

	// Nothing leaked: the daemon still answers, the store is consistent,
	// and only the connections still open are known to it.
	if v, err := admin.Read(0, "/soak/g3/c3/n0"); err != nil || string(v) != "3-0" {
		t.Fatalf("daemon after the soak: %q %v", v, err)
	}
	if out, err := admin.Control("check"); err != nil {
		t.Fatalf("CONTROL check: %q %v", out, err)
	}
	for _, c := range writers {
		c.Close()
	}
	var out string
	ok := false
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if out, err = admin.Control("connections"); err != nil {
			out = "(" + err.Error() + ": more than ~24 connections)\n\n"
			continue
		}
		if strings.Count(out, "\n") == 1 {
			ok = true
			break
		}
	}
	if !ok {
		lines := strings.Split(out, "\n")
		t.Errorf("%d connections still known to the daemon after every client but one left; first: %q", len(lines)-1, lines[:min(3, len(lines))])
	}
	t.Logf("total %v", time.Since(start))
}
