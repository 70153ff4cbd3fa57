package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xsclient"
)

// TestLiveUpdateDaemon: Xen's own xenstore-control replaces the running
// daemon with `live-update -f BINARY` (daemon mode). The process keeps its
// pid and pid file, the tree, quotas and permissions stay, and a client
// connected before the update keeps its connection and its watch, which
// fires on a change made afterwards; a request sent but not answered
// before the switch is answered once, after it.
func TestLiveUpdateDaemon(t *testing.T) {
	pidf := filepath.Join(shortTempDir(t), "pid")
	d := startDaemon(t, "-F", pidf)
	ctl := needXenTool(t, "xenstore-control")
	c := d.Client(t)
	if err := c.Write(0, "/lu/data", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	if err := c.SetPerms(0, "/lu/data", "n0", "r7"); err != nil {
		t.Fatal(err)
	}
	d.ok(t, ctl, "quota", "set", "nodes", "4321")
	if err := c.Watch("/lu", "tok"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, c, "/lu", "tok") // the initial event
	// A request the old daemon reads but never answers: its reply must
	// come from the new one, exactly once.
	raw := d.Raw(t)
	msg := wire.Msg{Type: wire.Read, ReqID: 77, Payload: []byte("/lu/data\x00")}
	enc := msg.Encode()
	if _, err := raw.Write(enc[:10]); err != nil { // a partial header
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let the old daemon read it

	bin := daemonBin(t)
	out := d.ok(t, ctl, "live-update", "-f", bin)
	if !strings.Contains(out, "OK") && strings.TrimSpace(out) != "" {
		t.Fatalf("live-update: %q", out)
	}
	if !d.Alive() {
		t.Fatalf("daemon gone after live-update:\n%s", d.Log())
	}
	if b, _ := os.ReadFile(pidf); strings.TrimSpace(string(b)) != strconv.Itoa(d.cmd.Process.Pid) {
		t.Fatalf("pid file %q, daemon %d", b, d.cmd.Process.Pid)
	}
	if !strings.Contains(d.Log(), "live-update: serving the state handed over") {
		t.Fatalf("the new daemon did not take over:\n%s", d.Log())
	}
	if _, err := raw.Write(enc[10:]); err != nil {
		t.Fatal(err)
	}
	m, err := readMsg(t, raw)
	if err != nil || m.ReqID != 77 || string(m.Payload) != "kept" {
		t.Fatalf("reply to the request split across the update: %+v, %v", m, err)
	}
	raw.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _ := raw.Read(make([]byte, 64)); n > 0 {
		t.Fatalf("a second reply (%d bytes)", n)
	}

	v, err := c.Read(0, "/lu/data")
	if err != nil || string(v) != "kept" {
		t.Fatalf("read after update: %q, %v", v, err)
	}
	perms, err := c.GetPerms(0, "/lu/data")
	if err != nil || strings.Join(perms, ",") != "n0,r7" {
		t.Fatalf("perms after update: %v, %v", perms, err)
	}
	if q := d.ok(t, ctl, "quota"); !strings.Contains(q, "4321") {
		t.Fatalf("quota after update:\n%s", q)
	}
	if err := c.Write(0, "/lu/new", []byte("x")); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, c, "/lu/new", "tok")
	d.mustServe(t, "after live-update")
}

// TestLiveUpdateRefusals: what the client is told when the update cannot
// happen, and the old daemon serving on with its store. A binary that
// execs but is not a working xenstored (truncated, a script that exits 0,
// a command line it rejects) is run with --live-update-check first and
// refused.
func TestLiveUpdateRefusals(t *testing.T) {
	d := startDaemon(t)
	ctl := needXenTool(t, "xenstore-control")
	c := d.Client(t)
	if err := c.Write(0, "/kept", []byte("yes")); err != nil {
		t.Fatal(err)
	}
	dir := shortTempDir(t)
	notExec := filepath.Join(dir, "plain")
	os.WriteFile(notExec, []byte("x"), 0o644)
	broken := filepath.Join(dir, "broken")
	os.WriteFile(broken, []byte("#!/nonexistent/interpreter\n"), 0o755)
	script := filepath.Join(dir, "script")
	os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755)
	elf, err := os.ReadFile(daemonBin(t))
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated")
	os.WriteFile(truncated, elf[:len(elf)/2], 0o755)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-f", "/nonexistent/xenstored"}, "File not accessible."},
		{[]string{"-f", notExec}, "File not executable."},
		{[]string{"-f", broken}, "Error activating new binary"},
		{[]string{"-f", script}, "Error activating new binary"},
		{[]string{"-f", truncated}, "Error activating new binary"},
		{[]string{"-c", "-N --no-such-option", "-f", daemonBin(t)}, "no-such-option"},
	} {
		r := d.run(t, ctl, append([]string{"live-update"}, tt.args...)...)
		if r.Code == 0 || !strings.Contains(r.Stdout+r.Stderr, tt.want) {
			t.Errorf("live-update %q: exit %d, %q %q; want %q", tt.args, r.Code, r.Stdout, r.Stderr, tt.want)
		}
		if !d.Alive() {
			t.Fatalf("live-update %q: daemon gone:\n%s", tt.args, d.Log())
		}
		d.mustServe(t, "after a refused live-update")
		if v, err := d.Client(t).Read(0, "/kept"); err != nil || string(v) != "yes" {
			t.Fatalf("live-update %q: the store after: %q, %v", tt.args, v, err)
		}
	}
}

// waitEvent waits for the watch event (path, token) on c.
func waitEvent(t *testing.T, c *xsclient.Client, path, token string) {
	t.Helper()
	for {
		select {
		case ev := <-c.Events():
			if ev.Path == path && ev.Token == token {
				return
			}
		case <-time.After(readyTimeout):
			t.Fatalf("no watch event %s %s", path, token)
		}
	}
}

// TestLiveUpdateUnreadReplies: a socket client that has not read more
// than 64 KiB of replies (the transport holds them, past what
// out-resp-len's 16 bits count) keeps every reply, in order, across an
// update, and the store survives.
func TestLiveUpdateUnreadReplies(t *testing.T) {
	d := startDaemon(t)
	ctl := needXenTool(t, "xenstore-control")
	c := d.Client(t)
	value := strings.Repeat("v", 4000)
	if err := c.Write(0, "/big", []byte(value)); err != nil {
		t.Fatal(err)
	}
	raw := d.Raw(t)
	const n = 300
	var reqs []byte
	for i := range n {
		m := wire.Msg{Type: wire.Read, ReqID: uint32(i), Payload: []byte("/big\x00")}
		reqs = append(reqs, m.Encode()...)
	}
	if _, err := raw.Write(reqs); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the daemon answer what it reads

	out := d.ok(t, ctl, "live-update", "-f", daemonBin(t))
	if !strings.Contains(out, "OK") && strings.TrimSpace(out) != "" {
		t.Fatalf("live-update: %q", out)
	}
	if !d.Alive() {
		t.Fatalf("daemon gone after live-update:\n%s", d.Log())
	}
	for i := range n {
		m, err := readMsg(t, raw)
		if err != nil || m.ReqID != uint32(i) || string(m.Payload) != value {
			t.Fatalf("reply %d: req-id %d, %d bytes, %v", i, m.ReqID, len(m.Payload), err)
		}
	}
	if v, err := c.Read(0, "/big"); err != nil || string(v) != value {
		t.Fatalf("the store after the update: %d bytes, %v", len(v), err)
	}
}

// TestLiveUpdateQuotaRange: a quota past C's int (2^32+1 would wrap to 1
// in the stream, holding every guest to one node) is refused by CONTROL
// quota set, and the largest accepted one survives an update unchanged.
func TestLiveUpdateQuotaRange(t *testing.T) {
	d := startDaemon(t)
	ctl := needXenTool(t, "xenstore-control")
	if r := d.run(t, ctl, "quota", "set", "nodes", "4294967297"); r.Code == 0 {
		t.Fatalf("quota set nodes 4294967297 accepted: %q", r.Stdout)
	}
	d.ok(t, ctl, "quota", "set", "nodes", "2147483647")
	d.ok(t, ctl, "live-update", "-f", daemonBin(t))
	if !d.Alive() {
		t.Fatalf("daemon gone after live-update:\n%s", d.Log())
	}
	q := d.ok(t, ctl, "quota")
	for _, line := range strings.Split(q, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "nodes" {
			if f[2] != "2147483647" {
				t.Fatalf("nodes quota after the update: %q", line)
			}
			return
		}
	}
	t.Fatalf("no nodes line in:\n%s", q)
}

// TestLiveUpdateKeepsPidFileLocked: the pid file stays locked across the
// exec of a live update, so no second daemon can claim it meanwhile. A
// competitor tries to lock it as fast as it can throughout the update;
// it must never succeed.
func TestLiveUpdateKeepsPidFileLocked(t *testing.T) {
	pidf := filepath.Join(shortTempDir(t), "pid")
	d := startDaemon(t, "-F", pidf)
	ctl := needXenTool(t, "xenstore-control")
	f, err := os.Open(pidf)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stop := make(chan struct{})
	won := make(chan int, 1)
	go func() {
		tries := 0
		defer func() { won <- tries }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			tries++
			if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				tries = -tries
				return
			}
		}
	}()
	for range 3 {
		d.ok(t, ctl, "live-update", "-f", daemonBin(t))
	}
	close(stop)
	if tries := <-won; tries < 0 {
		t.Fatalf("the pid file was free to lock during a live update (after %d tries):\n%s", -tries, d.Log())
	}
	if strings.Contains(d.Log(), "pid file not locked again") {
		t.Fatalf("the new daemon lost the pid file:\n%s", d.Log())
	}
	if b, _ := os.ReadFile(pidf); strings.TrimSpace(string(b)) != strconv.Itoa(d.cmd.Process.Pid) {
		t.Fatalf("pid file %q, daemon %d", b, d.cmd.Process.Pid)
	}
}
