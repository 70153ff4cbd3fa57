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

// peer is one C xenstored build that ours is compared against.
type peer struct {
	name    string // for reports: "C 4.22"
	key     string // subtest name and $DIFFTEST_PEERS entry: "c422"
	v       int    // Xen release, 417 or 422: selects the intended differences
	bin     string
	shim    string // our LD_PRELOAD library for it
	libs    string // $LD_LIBRARY_PATH for its Xen libraries ("" for Debian's)
	skipWhy string // non-empty when it cannot be run
}

// env holds what every daemon start needs; TestMain fills it once.
type env struct {
	peers   []*peer // C 4.22 (the primary reference), then C 4.17
	goBin   string  // our daemon
	tmp     string  // scratch directory for run dirs and logs
	skipWhy string  // non-empty when our daemon cannot be built
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

// setupEnv locates the C xenstoreds, builds a shim for each and (unless
// XSTEST_BIN names one) our daemon into tmp.
func setupEnv(tmp string) env {
	e := env{tmp: tmp}
	cache := os.Getenv("XSSTUB_CACHE")
	if cache == "" {
		cache = "/var/cache/xsstub"
	}
	src := filepath.Join(repoRoot(), "difftest", "shim", "xsshim.c")
	// C 4.22 comes from build/xen422.sh's install tree; it links
	// libxenmanage, which no Debian package has, hence its library path.
	root422 := filepath.Join(cache, "xen-4.22", "root")
	c422 := &peer{name: "C 4.22", key: "c422", v: 422,
		bin:  filepath.Join(root422, "usr/sbin/xenstored"),
		shim: filepath.Join(tmp, "xsshim422.so"),
		libs: filepath.Join(root422, "usr/lib")}
	c422.skipWhy = buildShim(c422,
		"-DXSSHIM_XENMANAGE", "-I"+filepath.Join(root422, "usr/include"), src)
	c417 := &peer{name: "C 4.17", key: "c417", v: 417,
		bin:  filepath.Join(cache, "xen-utils/usr/lib/xen-4.17/bin/xenstored"),
		shim: filepath.Join(tmp, "xsshim.so")}
	c417.skipWhy = buildShim(c417, src)
	e.peers = []*peer{c422, c417}
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

// buildShim checks that p's daemon is there and compiles its shim with the
// extra gcc arguments; it returns why p cannot be used, or "".
func buildShim(p *peer, args ...string) string {
	if _, err := os.Stat(p.bin); err != nil {
		return fmt.Sprintf("no %s xenstored at %s (run: bash build/test-deps.sh)", p.name, p.bin)
	}
	args = append([]string{"-O2", "-Wall", "-fPIC", "-shared", "-o", p.shim}, args...)
	out, err := exec.Command("gcc", append(args, "-ldl")...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("building the shim for %s (needs gcc and the Xen headers): %v\n%s", p.name, err, out)
	}
	return ""
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

// startC starts p's C xenstored with its run directory (and so its
// socket) in a fresh directory.
func startC(p *peer) (*daemon, error) {
	d := &daemon{name: p.name}
	d.dir = filepath.Join(theEnv.tmp, "c"+strconv.FormatInt(daemonSeq.Add(1), 10))
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return nil, err
	}
	d.sock = filepath.Join(d.dir, "socket")
	d.cmd = exec.Command(p.bin, "-N")
	d.cmd.Dir = d.dir
	d.cmd.Env = append(os.Environ(), "XENSTORED_RUNDIR="+d.dir, "LD_PRELOAD="+p.shim)
	if p.libs != "" {
		d.cmd.Env = append(d.cmd.Env, "LD_LIBRARY_PATH="+p.libs)
	}
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
