package integration

// The hardening suite: attacks on the daemon through its socket, kept so
// that they keep failing. `make hardening` runs them at full size
// (HARDENING_FULL=1); `make test` at a size that fits its time. The
// malformed-request part compares with C xenstored: difftest/hardening_test.go.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xsclient"
)

// hardSize is full when HARDENING_FULL is set, else reduced.
func hardSize(reduced, full int) int {
	if os.Getenv("HARDENING_FULL") != "" {
		return full
	}
	return reduced
}

// liveness runs a well-behaved client in the background: a write and a
// read back, over and over, each answered within readyTimeout. stop ends
// it and reports the rounds done or the first failure.
func liveness(t *testing.T, d *Daemon) (stop func() int) {
	t.Helper()
	c := d.Client(t)
	done := make(chan struct{})
	var rounds int
	var failure error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
			v := strconv.Itoa(i)
			_, err := c.Do(ctx, wire.Msg{Type: wire.Write, Payload: []byte("/live\x00" + v)})
			if err == nil {
				var m wire.Msg
				m, err = c.Do(ctx, wire.Msg{Type: wire.Read, Payload: []byte("/live\x00")})
				if err == nil && string(m.Payload) != v {
					err = fmt.Errorf("read back %q, wrote %q", m.Payload, v)
				}
			}
			cancel()
			if err != nil {
				failure = err
				return
			}
			rounds++
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return func() int {
		close(done)
		wg.Wait()
		if failure != nil {
			t.Fatalf("well-behaved client: %v\n%s", failure, d.Log())
		}
		return rounds
	}
}

// Many connections, some slow: clients stalled half-way through a header,
// clients that send requests and never read the replies, and idle ones.
// A well-behaved client is served throughout and the store stays sound.
func TestHardeningConnections(t *testing.T) {
	d := startDaemon(t)
	raiseFileLimit(t)
	stop := liveness(t, d)
	n := hardSize(2000, 15000)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	req := rawMsg(wire.Read, 1, 0, []byte("/live\x00"))
	for i := 0; i < n; i++ {
		c, err := net.Dial("unix", d.Sock)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		switch i % 4 {
		case 1: // stalls inside a header
			c.Write(req[:7])
		case 2: // floods requests and never reads (until the socket is full)
			c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			for j := 0; j < 200; j++ {
				if _, err := c.Write(req); err != nil {
					break
				}
			}
		}
	}
	if rounds := stop(); rounds == 0 {
		t.Fatal("the well-behaved client made no round trip")
	}
	d.mustServe(t, "with many connections open")
	c := d.Client(t)
	if out, err := c.Control("check"); err != nil {
		t.Fatalf("check: %q %v", out, err)
	}
}

// raiseFileLimit lets the test open as many sockets as its hard limit
// allows; the daemon does the same itself (the Go runtime raises it).
func raiseFileLimit(t *testing.T) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Fatal(err)
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Fatal(err)
	}
	if need := uint64(hardSize(2000, 15000)) + 100; l.Cur < need {
		t.Fatalf("RLIMIT_NOFILE %d is below the %d sockets the test opens", l.Cur, need)
	}
}

// Many transactions open at once (a socket client is privileged: no
// transaction quota), each having rewritten its own node; then each
// commits or aborts, and exactly the committed values are there.
func TestHardeningOpenTransactions(t *testing.T) {
	d := startDaemon(t)
	n := hardSize(2000, 20000)
	const perConn = 1000
	setup := d.Client(t)
	for i := 0; i < n; i++ {
		if err := setup.Write(0, fmt.Sprintf("/tx/%d", i), []byte("before")); err != nil {
			t.Fatal(err)
		}
	}
	var clients []*xsclient.Client
	var txs []uint32
	for i := 0; i < n; i++ {
		if i%perConn == 0 {
			clients = append(clients, d.Client(t))
		}
		c := clients[len(clients)-1]
		tx, err := c.TransactionStart()
		if err != nil {
			t.Fatalf("transaction %d: %v", i, err)
		}
		if err := c.Write(tx, fmt.Sprintf("/tx/%d", i), []byte("after")); err != nil {
			t.Fatalf("write in transaction %d: %v", i, err)
		}
		txs = append(txs, tx)
	}
	d.mustServe(t, "with transactions open")
	for i, tx := range txs {
		if err := clients[i/perConn].TransactionEnd(tx, i%2 == 0); err != nil {
			t.Fatalf("end of transaction %d: %v", i, err)
		}
	}
	for i := 0; i < n; i++ {
		want := map[bool]string{true: "after", false: "before"}[i%2 == 0]
		if v, err := setup.Read(0, fmt.Sprintf("/tx/%d", i)); err != nil || string(v) != want {
			t.Fatalf("/tx/%d after the ends: %q %v, want %q", i, v, err, want)
		}
	}
}

// Deep and wide trees: a path as deep as path-max allows, a node with
// many children (DIRECTORY gets E2BIG past 4096 bytes, DIRECTORY_PART
// pages it), then both removed at once.
func TestHardeningTrees(t *testing.T) {
	d := startDaemon(t)
	c := d.Client(t)
	deep := "/deep"
	for len(deep)+2 <= 2048 {
		deep += "/d"
	}
	if err := c.Write(0, deep, []byte("bottom")); err != nil {
		t.Fatalf("write %d levels: %v", strings.Count(deep, "/"), err)
	}
	if err := c.Write(0, deep+"/d", nil); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("write past path-max: %v, want EINVAL", err)
	}
	wide := hardSize(5000, 50000)
	for i := 0; i < wide; i++ {
		if err := c.Write(0, fmt.Sprintf("/wide/child%06d", i), nil); err != nil {
			t.Fatalf("child %d: %v", i, err)
		}
	}
	if _, err := c.Directory(0, "/wide"); !errors.Is(err, syscall.E2BIG) {
		t.Fatalf("directory of %d children: %v, want E2BIG", wide, err)
	}
	got, off := 0, 0
	for {
		m, err := c.Call(wire.DirectoryPart, 0, "/wide", strconv.Itoa(off))
		if err != nil {
			t.Fatalf("directory-part at %d: %v", off, err)
		}
		_, list, _ := strings.Cut(string(m), "\x00")
		if list == "\x00" || list == "" {
			break
		}
		done := strings.HasSuffix(list, "\x00\x00")
		list = strings.TrimSuffix(list, "\x00")
		got += strings.Count(list, "\x00")
		off += len(list)
		if done {
			break
		}
	}
	if got != wide {
		t.Fatalf("directory-part listed %d children, want %d", got, wide)
	}
	for _, p := range []string{"/deep", "/wide"} {
		if err := c.Rm(0, p); err != nil {
			t.Fatalf("rm %s: %v", p, err)
		}
	}
	if out, err := c.Control("check"); err != nil {
		t.Fatalf("check: %q %v", out, err)
	}
	d.mustServe(t, "after deep and wide trees")
}

// Signals: the daemon ignores what C xenstored ignores or handles (SIGPIPE;
// SIGHUP, on which C reopens its trace file) and those Go's runtime
// catches (SIGUSR1, SIGUSR2, SIGALRM: C would die of them), keeps
// serving through job-control and child signals, and exits cleanly on
// SIGTERM (the harness's stop) and SIGINT.
func TestHardeningSignals(t *testing.T) {
	d := startDaemon(t)
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGPIPE, syscall.SIGUSR1, syscall.SIGUSR2,
		syscall.SIGALRM, syscall.SIGCHLD, syscall.SIGWINCH, syscall.SIGURG, syscall.SIGCONT} {
		if err := d.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		if !d.Alive() {
			t.Fatalf("%v killed the daemon:\n%s", sig, d.Log())
		}
		d.mustServe(t, "after "+sig.String())
	}
	sock := filepath.Join(shortTempDir(t), "socket")
	cmd := exec.Command(daemonBin(t), "-N", "--socket", sock)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for !unixsockServing(sock) {
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("SIGINT: exit %v", err)
		}
	case <-afterReady():
		cmd.Process.Kill()
		t.Fatal("SIGINT ignored")
	}
}

func unixsockServing(sock string) bool {
	c, err := net.Dial("unix", sock)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// A full disk: the trace file on /dev/full (every write fails with
// ENOSPC) must not stop the daemon serving; a pid file that cannot be
// written on a full file system is a start-up error, said as such.
func TestHardeningFullDisk(t *testing.T) {
	d := startDaemon(t, "-T", "/dev/full")
	c := d.Client(t)
	for i := 0; i < 100; i++ {
		if err := c.Write(0, "/traced", []byte(strconv.Itoa(i))); err != nil {
			t.Fatalf("write %d with the trace file full: %v", i, err)
		}
	}
	if _, err := c.Control("log", "off"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Control("log", "on"); err != nil {
		t.Fatal(err)
	}
	d.mustServe(t, "with the trace file full")

	dir := shortTempDir(t)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("no tmpfs to fill (needs root): %v %s", err, out)
	}
	defer exec.Command("umount", dir).Run()
	filler, _ := os.Create(filepath.Join(dir, "filler"))
	filler.Write(make([]byte, 64<<10)) // fills it: the rest fails with ENOSPC
	filler.Close()
	cmd := exec.Command(daemonBin(t), "-N", "--socket", filepath.Join(shortTempDir(t), "socket"), "-F", filepath.Join(dir, "pid"))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "pid file") {
		t.Fatalf("pid file on a full file system: %v\n%s", err, out)
	}
}

// Live updates in a row under a checking load: a client keeps writing a
// counter and reading it back, another watches it; both keep their
// connections through every update, with no error and no lost write.
// Updates alternate between -f (a path) and the binary sent in chunks.
func TestHardeningRepeatedLiveUpdates(t *testing.T) {
	d := startDaemon(t)
	ctl := needXenTool(t, "xenstore-control")
	stop := liveness(t, d)
	watcher := d.Client(t)
	if err := watcher.Watch("/live", "w"); err != nil {
		t.Fatal(err)
	}
	bin := daemonBin(t)
	pid := d.cmd.Process.Pid
	for i := 0; i < 5; i++ {
		args := []string{"live-update", "-f", bin}
		if i%2 == 1 {
			args = []string{"live-update", bin}
		}
		d.ok(t, ctl, args...)
		if !d.Alive() || d.cmd.Process.Pid != pid {
			t.Fatalf("update %d: daemon gone:\n%s", i, d.Log())
		}
	}
	rounds := stop()
	if n := strings.Count(d.Log(), "live-update: serving the state handed over"); n != 5 {
		t.Fatalf("%d of 5 updates took over:\n%s", n, d.Log())
	}
	// The watcher, connected before the first update, still gets events.
	if err := d.Client(t).Write(0, "/live", []byte("last")); err != nil {
		t.Fatal(err)
	}
	for ev := range watcher.Events() {
		if ev.Path == "/live" && ev.Token == "w" {
			break
		}
	}
	t.Logf("%d checked round trips across 5 updates", rounds)
}

// Every misuse of the live-update sub-operations: data without a begin,
// a start without a binary, aborts without a session, bad sizes, too much
// data, a second session, another connection's session, bad timeouts.
// Each is answered (an error or a reason, never "OK" where it cannot
// be), the daemon is not replaced and keeps serving, and an abort ends
// the session so that a new one can begin.
func TestHardeningLiveUpdateMisuse(t *testing.T) {
	d := startDaemon(t)
	a, b := d.Client(t), d.Client(t)
	pid := d.cmd.Process.Pid
	type step struct {
		c      *xsclient.Client
		args   []string
		wantOK bool
	}
	lu := func(c *xsclient.Client, wantOK bool, args ...string) step {
		return step{c, append([]string{"live-update"}, args...), wantOK}
	}
	steps := []step{
		lu(a, false, "-d", "data"),
		lu(a, false, "-s"),
		lu(a, false, "-s", "-t", "1"),
		lu(a, false, "-a"),
		lu(a, false, "-b", "abc"),
		lu(a, false, "-b", "-5"),
		lu(a, false, "-b", "0"),
		lu(a, false, "-b", "99999999999999999999"),
		lu(a, false, "-f"),
		lu(a, false, "-f", "/nonexistent"),
		lu(a, false, "-c"),
		lu(a, false),
		lu(a, false, "-x"),
		lu(a, true, "-b", "4"),
		lu(a, false, "-b", "4"),        // a session is active
		lu(b, false, "-d", "abcd"),     // not b's session
		lu(b, false, "-s"),             // nor to start
		lu(a, false, "-d", "abcdefgh"), // more than announced
		lu(a, false, "-s", "-t", "x"),
		lu(a, false, "-s"),     // 4 bytes of garbage: cannot be run
		lu(b, true, "-a"),      // any connection may abort, as in C
		lu(a, false, "-a"),     // nothing left to abort
		lu(b, true, "-b", "4"), // the abort freed the session
		lu(b, true, "-a"),
	}
	for i, s := range steps {
		out, err := s.c.Control(s.args...)
		if gotOK := err == nil && strings.TrimRight(out, "\x00") == "OK"; gotOK != s.wantOK {
			t.Errorf("step %d %q: %q %v, want OK %t", i, s.args, out, err, s.wantOK)
		}
		if !d.Alive() || d.cmd.Process.Pid != pid {
			t.Fatalf("step %d %q: daemon gone:\n%s", i, s.args, d.Log())
		}
	}
	if strings.Contains(d.Log(), "live-update: serving") {
		t.Fatalf("a misuse replaced the daemon:\n%s", d.Log())
	}
	d.mustServe(t, "after live-update misuse")
}
