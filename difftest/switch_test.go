//go:build linux

package difftest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xsstub/xenstored/wire"
)

// TestSwitchScript runs the package's xsstub-switch (packaging/) against
// C xenstored on the test shim: to-ours and back to-c by C's and our live
// update, with status and the no-op cases in between; each step checks
// the script's exit and what the daemon's process runs afterwards.
func TestSwitchScript(t *testing.T) { forPeers(t, testSwitchScript) }

func testSwitchScript(t *testing.T, p *peer) {
	script, err := filepath.Abs("../packaging/xsstub-switch")
	if err != nil {
		t.Fatal(err)
	}
	goBin, err := filepath.Abs(theEnv.goBin)
	if err != nil {
		t.Fatal(err)
	}
	xsread, err := exec.LookPath("xenstore-read")
	if err != nil {
		t.Skip("no xenstore-read (xenstore-utils) for the script's check")
	}
	d, err := startC(p)
	if err != nil {
		t.Fatal(err)
	}
	defer d.stop()
	defer func() {
		if t.Failed() {
			t.Logf("daemon output:\n%s", d.log.String())
		}
	}()
	pidFile := filepath.Join(d.dir, "xenstore.pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(d.cmd.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	control, env := xenstoreControl(t, p)
	env = append(env, "XENSTORED_PATH="+d.sock, "XSSTUB_SWITCH_PIDFILE="+pidFile,
		"XSSTUB_SWITCH_OURS="+goBin, "XSSTUB_SWITCH_C="+p.bin, "XSSTUB_SWITCH_CONTROL="+control,
		"XSSTUB_SWITCH_XENSTORE_READ="+xsread)
	admin := dialLU(t, d.sock)
	admin.ok(wire.Write, 0, "/sw", "kept")

	steps := []struct {
		arg     string
		wantExe string
		wantOut string
	}{
		{"status", p.bin, "(c)"},
		{"to-c", p.bin, "already runs C xenstored"},
		{"to-ours", goBin, "done: pid"},
		{"status", goBin, "(ours)"},
		{"to-ours", goBin, "already runs"},
		{"to-c", p.bin, "done: pid"},
	}
	for _, s := range steps {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		cmd := exec.CommandContext(ctx, "sh", script, s.arg)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		cancel()
		t.Logf("xsstub-switch %s:\n%s", s.arg, out)
		if err != nil {
			t.Fatalf("xsstub-switch %s: %v\n%s", s.arg, err, out)
		}
		if !strings.Contains(string(out), s.wantOut) {
			t.Errorf("xsstub-switch %s printed %q, want %q in it", s.arg, out, s.wantOut)
		}
		if dead, log := d.dead(); dead {
			t.Fatalf("after xsstub-switch %s the daemon died:\n%s", s.arg, log)
		}
		if exe := exeOf(t, d); exe != s.wantExe {
			t.Fatalf("after xsstub-switch %s the daemon runs %s, want %s", s.arg, exe, s.wantExe)
		}
		if got := admin.ok(wire.Read, 0, "/sw"); got != "kept" {
			t.Errorf("after xsstub-switch %s /sw = %q", s.arg, got)
		}
	}
}
