package integration

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SIGHUP reopens the trace file by its name, as C xenstored does, so that a
// rotated trace (renamed away) is let go and a new one started.
func TestTraceReopenedOnSIGHUP(t *testing.T) {
	dir := shortTempDir(t)
	trace := filepath.Join(dir, "trace")
	d := startDaemon(t, "-T", trace)
	c := d.Client(t)
	if err := c.Write(0, "/before-rotation", []byte("1")); err != nil {
		t.Fatal(err)
	}
	rotated := trace + ".1"
	if err := os.Rename(trace, rotated); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The reopen happens on the daemon's own time: write until the new
	// file shows up (bounded), then check where each write went.
	deadline := time.Now().Add(readyTimeout)
	for {
		if err := c.Write(0, "/after-rotation", []byte("2")); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(trace); err == nil && strings.Contains(string(b), "/after-rotation") {
			if strings.Contains(string(b), "/before-rotation") {
				t.Errorf("the new trace holds the write from before the rotation:\n%s", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new trace file after SIGHUP; log:\n%s", d.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
	old, err := os.ReadFile(rotated)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(old), "/before-rotation") {
		t.Errorf("rotated trace lacks the write from before:\n%s", old)
	}
	if !d.Alive() {
		t.Fatalf("SIGHUP killed the daemon:\n%s", d.Log())
	}
}
