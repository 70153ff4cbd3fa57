//go:build linux

package difftest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// env holds what every daemon start needs; TestMain fills it once.
type env struct {
	cBin    string // C xenstored 4.17
	shim    string // our LD_PRELOAD library for it
	goBin   string // our daemon
	tmp     string // scratch directory for run dirs and logs
	skipWhy string // non-empty when a dependency is missing
}

var theEnv env

var daemonSeq atomic.Int64

// repoRoot is the module root (this package's parent directory).
func repoRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		return ".."
	}
	return filepath.Dir(wd)
}

// setupEnv locates C xenstored, builds the shim and (unless XSTEST_BIN
// names one) our daemon into tmp.
func setupEnv(tmp string) env {
	e := env{tmp: tmp}
	cache := os.Getenv("XSSTUB_CACHE")
	if cache == "" {
		cache = "/var/cache/xsstub"
	}
	e.cBin = filepath.Join(cache, "xen-utils/usr/lib/xen-4.17/bin/xenstored")
	if _, err := os.Stat(e.cBin); err != nil {
		e.skipWhy = fmt.Sprintf("no C xenstored at %s (run: bash build/test-deps.sh)", e.cBin)
		return e
	}
	e.shim = filepath.Join(tmp, "xsshim.so")
	src := filepath.Join(repoRoot(), "difftest", "shim", "xsshim.c")
	out, err := exec.Command("gcc", "-O2", "-Wall", "-fPIC", "-shared", "-o", e.shim, src, "-ldl").CombinedOutput()
	if err != nil {
		e.skipWhy = fmt.Sprintf("building the shim (needs gcc and libxen-dev): %v\n%s", err, out)
		return e
	}
	if b := os.Getenv("XSTEST_BIN"); b != "" {
		e.goBin = b
		return e
	}
	e.goBin = filepath.Join(tmp, "xenstored")
	cmd := exec.Command("go", "build", "-o", e.goBin, "./stubdom/xenstored")
	cmd.Dir = repoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		e.skipWhy = fmt.Sprintf("building our xenstored: %v\n%s", err, out)
	}
	return e
}

// daemon is one running xenstored.
type daemon struct {
	name string
	sock string
	dir  string
	cmd  *exec.Cmd
	log  bytes.Buffer
	// exited is closed once the process has been waited for.
	exited chan struct{}
}

// startC starts C xenstored with its run directory (and so its socket)
// in a fresh directory.
func startC() (*daemon, error) {
	d := &daemon{name: "C"}
	d.dir = filepath.Join(theEnv.tmp, "c"+strconv.FormatInt(daemonSeq.Add(1), 10))
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return nil, err
	}
	d.sock = filepath.Join(d.dir, "socket")
	d.cmd = exec.Command(theEnv.cBin, "-N")
	d.cmd.Dir = d.dir
	d.cmd.Env = append(os.Environ(), "XENSTORED_RUNDIR="+d.dir, "LD_PRELOAD="+theEnv.shim)
	return d, d.start()
}

// startGo starts our daemon on a fresh socket.
func startGo() (*daemon, error) {
	d := &daemon{name: "Go"}
	d.dir = filepath.Join(theEnv.tmp, "g"+strconv.FormatInt(daemonSeq.Add(1), 10))
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return nil, err
	}
	d.sock = filepath.Join(d.dir, "socket")
	d.cmd = exec.Command(theEnv.goBin, "-N", "--socket", d.sock)
	d.cmd.Dir = d.dir
	d.cmd.Env = append(os.Environ(), "XENSTORED_RUNDIR="+d.dir)
	return d, d.start()
}

func (d *daemon) start() error {
	d.cmd.Stdout = &d.log
	d.cmd.Stderr = &d.log
	// Daemons must not outlive a test binary that panics or times out.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return fmt.Errorf("%s xenstored: %w", d.name, err)
	}
	exited := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(exited) }()
	d.exited = exited
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(d.sock); err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s xenstored exited at start: %s", d.name, d.log.String())
		case <-time.After(2 * time.Millisecond):
		}
	}
	d.stop()
	return fmt.Errorf("%s xenstored: no socket %s after 10s", d.name, d.sock)
}

// dead reports whether the daemon has exited, and its output if so.
func (d *daemon) dead() (bool, string) {
	select {
	case <-d.exited:
		return true, d.log.String()
	default:
		return false, ""
	}
}

// stop kills the daemon and removes its directory.
func (d *daemon) stop() {
	if d.cmd.Process != nil {
		_ = d.cmd.Process.Kill()
		if d.exited != nil {
			<-d.exited
		}
	}
	_ = os.RemoveAll(d.dir)
}
