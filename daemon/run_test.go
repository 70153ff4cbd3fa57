package daemon

import (
	"context"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// shortDir is a temporary directory whose paths fit a Unix socket address.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "xsd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestPidFileBeforeSocket: the pid file is whole by the time the socket
// accepts its first connection (issue 13 item 4), so a supervisor that
// reads it once the socket answers never finds it missing or empty.
func TestPidFileBeforeSocket(t *testing.T) {
	want := strconv.Itoa(os.Getpid()) + "\n"
	tests := []struct {
		name string
		runs int
		// atListen reads the pid file the moment the socket listens
		// (the ordering check); otherwise a supervisor-like poller reads
		// it as soon as a connection succeeds.
		atListen bool
	}{
		{"read when the socket starts listening", 1, true},
		{"supervisor polls the socket", 100, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := shortDir(t)
			var seen []string
			if tt.atListen {
				t.Cleanup(func() { testHookListening = func() {} })
			}
			for i := 0; i < tt.runs; i++ {
				pidf := filepath.Join(dir, "pid"+strconv.Itoa(i))
				sock := filepath.Join(dir, "s"+strconv.Itoa(i))
				if tt.atListen {
					testHookListening = func() {
						b, err := os.ReadFile(pidf)
						seen = append(seen, string(b)+errString(err))
					}
				}
				o, err := Parse([]string{"-N", "-F", pidf, "--socket", sock}, io.Discard)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- Run(ctx, o, NewLogger(io.Discard, false)) }()
				got := pollSocket(t, sock, pidf, done)
				if !tt.atListen {
					seen = append(seen, got)
				}
				cancel()
				if err := <-done; err != nil {
					t.Fatalf("run %d: %v", i, err)
				}
				if _, err := os.Stat(pidf); !os.IsNotExist(err) {
					t.Fatalf("run %d: pid file left behind (%v)", i, err)
				}
			}
			if len(seen) != tt.runs {
				t.Fatalf("%d reads, want %d", len(seen), tt.runs)
			}
			for i, s := range seen {
				if s != want {
					t.Fatalf("run %d: pid file read %q, want %q", i, s, want)
				}
			}
		})
	}
}

// pollSocket dials sock until it answers, as a supervisor does, and then
// reads the pid file at once.
func pollSocket(t *testing.T, sock, pidf string, done <-chan error) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("daemon stopped before serving: %v", err)
		default:
		}
		c, err := net.Dial("unix", sock)
		if err != nil {
			time.Sleep(50 * time.Microsecond)
			continue
		}
		b, err := os.ReadFile(pidf)
		c.Close()
		return string(b) + errString(err)
	}
	t.Fatal("socket did not answer within 10 s")
	return ""
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return " (" + strings.TrimSpace(err.Error()) + ")"
}

func TestMemoryCeilingOption(t *testing.T) {
	tests := []struct {
		name         string
		opt, goLimit int64
		want         int64
	}{
		{"no GOMEMLIMIT", 0, math.MaxInt64, 0},
		{"stub: GOMEMLIMIT 24 MiB", 0, 24 << 20, 12 << 20},
		{"option wins", 5 << 20, 24 << 20, 5 << 20},
		{"option disables", -1, 24 << 20, 0},
	}
	for _, tt := range tests {
		if got := memoryCeiling(tt.opt, tt.goLimit); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
	o, err := Parse([]string{"--memory-ceiling", "1048576"}, io.Discard)
	if err != nil || o.MemoryCeiling != 1<<20 {
		t.Fatalf("--memory-ceiling: %v, %v", o, err)
	}
}
