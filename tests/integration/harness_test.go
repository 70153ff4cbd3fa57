// Package integration starts the built xenstored on a temporary Unix socket
// and drives it with real clients: Debian's xenstore-utils, Xen's
// xenstore-control and test-xenstore, python3-pyxs, and our xsclient.
//
// The daemon binary comes from $XSTEST_BIN (set by `make test`); without it
// the tests build ./stubdom/xenstored into a temporary directory. A missing
// third-party tool fails the test with a hint to run `make test-deps`.
package integration

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xsclient"
)

// readyTimeout bounds waits that only exist to turn a hang into a failure;
// no test asserts anything about how long an operation takes.
const readyTimeout = 20 * time.Second

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// daemonBin returns the xenstored binary under test.
func daemonBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("XSTEST_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("XSTEST_BIN=%s: %v (run `make build`)", p, err)
		}
		return p
	}
	buildOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			buildErr = errors.New("go env GOMOD: not inside the module")
			return
		}
		buildDir, err = os.MkdirTemp("", "xsit-bin")
		if err != nil {
			buildErr = err
			return
		}
		bin := filepath.Join(buildDir, "xenstored")
		cmd := exec.Command("go", "build", "-o", bin, "./stubdom/xenstored")
		cmd.Dir = filepath.Dir(gomod)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./stubdom/xenstored: %v\n%s", err, out)
			return
		}
		builtBin = bin
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// shortTempDir returns a fresh directory with a short path: Unix socket
// paths are limited to 107 bytes and t.TempDir() includes the test name.
func shortTempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "xsit")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Daemon is one running xenstored.
type Daemon struct {
	Sock    string
	Dir     string
	LogPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// startDaemon runs xenstored -N on a fresh socket with extra arguments and
// stops it (SIGTERM) when the test ends. The test fails if the daemon died
// on its own before that.
func startDaemon(t *testing.T, extra ...string) *Daemon {
	t.Helper()
	bin := daemonBin(t)
	dir := shortTempDir(t)
	d := &Daemon{Sock: filepath.Join(dir, "socket"), Dir: dir, LogPath: filepath.Join(dir, "log"), exited: make(chan struct{})}
	logf, err := os.Create(d.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	args := append([]string{"-N", "--socket", d.Sock}, extra...)
	d.cmd = exec.Command(bin, args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	// Do not outlive a test binary killed by -timeout.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { d.waitErr = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() { d.stop(t) })
	deadline := time.Now().Add(readyTimeout)
	for {
		c, err := net.Dial("unix", d.Sock)
		if err == nil {
			c.Close()
			return d
		}
		select {
		case <-d.exited:
			t.Fatalf("xenstored exited during start-up (%v):\n%s", d.waitErr, d.Log())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("xenstored does not serve %s:\n%s", d.Sock, d.Log())
		}
	}
}

// Log returns what the daemon wrote to stdout and stderr so far.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.LogPath)
	return string(b)
}

// Alive reports whether the daemon process is still running.
func (d *Daemon) Alive() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

func (d *Daemon) stop(t *testing.T) {
	select {
	case <-d.exited:
		t.Errorf("xenstored died during the test (%v); log:\n%s", d.waitErr, d.Log())
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		if d.waitErr != nil {
			t.Errorf("xenstored exited with %v after SIGTERM; log:\n%s", d.waitErr, d.Log())
		}
	case <-time.After(readyTimeout):
		d.cmd.Process.Kill()
		<-d.exited
		t.Errorf("xenstored ignored SIGTERM; log:\n%s", d.Log())
	}
}

// Client connects an xsclient to the daemon, closed at the end of the test.
func (d *Daemon) Client(t *testing.T) *xsclient.Client {
	t.Helper()
	c, err := xsclient.Dial(d.Sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Raw opens a plain connection for byte-level tests.
func (d *Daemon) Raw(t *testing.T) *net.UnixConn {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: d.Sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// mustServe checks that a fresh connection gets correct answers: the
// daemon survived whatever the test did.
func (d *Daemon) mustServe(t *testing.T, what string) {
	t.Helper()
	c, err := xsclient.Dial(d.Sock)
	if err != nil {
		t.Fatalf("%s: daemon no longer accepts connections: %v\n%s", what, err, d.Log())
	}
	defer c.Close()
	p := "/alive/" + strings.NewReplacer(" ", "-", "/", "-").Replace(what)
	if err := c.Write(0, p, []byte("yes")); err != nil {
		t.Fatalf("%s: write on a fresh connection: %v", what, err)
	}
	if v, err := c.Read(0, p); err != nil || string(v) != "yes" {
		t.Fatalf("%s: read on a fresh connection: %q, %v", what, v, err)
	}
}

// ---- third-party tools ----

const makeDeps = "run `make test-deps` (build/test-deps.sh) to install it"

// xenUtilsBin is where build/test-deps.sh unpacks Xen 4.17's own tools.
func xenUtilsBin() string {
	cache := os.Getenv("XSSTUB_CACHE")
	if cache == "" {
		cache = "/var/cache/xsstub"
	}
	return filepath.Join(cache, "xen-utils/usr/lib/xen-4.17/bin")
}

// needTool returns the path of an xenstore-utils program or fails.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is missing (Debian package xenstore-utils): %s", name, makeDeps)
	}
	return p
}

// needXenTool returns the path of a program from the unpacked Xen tools.
func needXenTool(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(xenUtilsBin(), name)
	if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s is missing (unpacked xen-utils-4.17): %s", p, makeDeps)
	}
	return p
}

const python = "/usr/bin/python3"

var (
	pyxsOnce sync.Once
	pyxsErr  error
)

func needPyxs(t *testing.T) {
	t.Helper()
	pyxsOnce.Do(func() {
		out, err := exec.Command(python, "-c", "import pyxs").CombinedOutput()
		if err != nil {
			pyxsErr = fmt.Errorf("%s cannot import pyxs (Debian package python3-pyxs): %v\n%s", python, err, out)
		}
	})
	if pyxsErr != nil {
		t.Fatalf("%v\n%s", pyxsErr, makeDeps)
	}
}

// Result is a finished tool run.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// run executes a client program against the daemon (XENSTORED_PATH).
func (d *Daemon) run(t *testing.T, prog string, args ...string) Result {
	t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Env = append(os.Environ(), "XENSTORED_PATH="+d.Sock)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	cmd.WaitDelay = time.Second
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", prog, err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(readyTimeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s %q hung; stdout %q stderr %q", filepath.Base(prog), args, so.String(), se.String())
	}
	r := Result{Stdout: so.String(), Stderr: se.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		t.Fatalf("%s: %v", prog, err)
	}
	return r
}

// ok runs a tool and fails the test unless it exits 0.
func (d *Daemon) ok(t *testing.T, prog string, args ...string) string {
	t.Helper()
	r := d.run(t, prog, args...)
	if r.Code != 0 {
		t.Fatalf("%s %q: exit %d\nstdout: %s\nstderr: %s", filepath.Base(prog), args, r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// ---- raw protocol helpers ----

func rawMsg(typ wire.Type, req, tx uint32, payload []byte) []byte {
	m := wire.Msg{Type: typ, ReqID: req, TxID: tx, Payload: payload}
	return m.Encode()
}

// readMsg reads one reply from a raw connection (failing on a hang).
func readMsg(t *testing.T, c net.Conn) (wire.Msg, error) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(readyTimeout))
	defer c.SetReadDeadline(time.Time{})
	var hdr [wire.HeaderSize]byte
	if _, err := ioReadFull(c, hdr[:]); err != nil {
		return wire.Msg{}, err
	}
	h, err := wire.ParseHeader(hdr[:])
	if err != nil {
		return wire.Msg{}, err
	}
	p := make([]byte, h.Len)
	if _, err := ioReadFull(c, p); err != nil {
		return wire.Msg{}, err
	}
	return wire.Msg{Type: h.Type, ReqID: h.ReqID, TxID: h.TxID, Payload: p}, nil
}

func ioReadFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// expectClosed checks that the daemon closed c: a read ends with EOF or a
// reset, never with a reply.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(readyTimeout))
	buf := make([]byte, 64)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			t.Fatalf("expected the daemon to close the connection, got %d bytes %q", n, buf[:n])
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the daemon kept the connection open")
			}
			return
		}
	}
}

func errName(m wire.Msg) string {
	if m.Type != wire.Error {
		return ""
	}
	return strings.TrimRight(string(m.Payload), "\x00")
}

// afterReady fires when a wait has clearly hung.
func afterReady() <-chan time.Time { return time.After(readyTimeout) }

// lineProc is a started client program whose output is read line by line,
// each line within readyTimeout (xenstore-watch, a pyxs watcher script).
type lineProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	what   string
	stderr strings.Builder
	lines  chan string
	exited chan error
}

// startLines starts cmd and reads its stdout lines in the background.
func startLines(t *testing.T, cmd *exec.Cmd, what string) *lineProc {
	t.Helper()
	p := &lineProc{t: t, cmd: cmd, what: what, lines: make(chan string, 16), exited: make(chan error, 1)}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.exited <- cmd.Wait()
	}()
	return p
}

// next returns the next output line; the test fails if the program ends
// or prints nothing in time.
func (p *lineProc) next() string {
	p.t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			p.t.Fatalf("%s ended early: %v\n%s", p.what, <-p.exited, p.stderr.String())
		}
		return l
	case <-afterReady():
		p.cmd.Process.Kill()
		p.t.Fatalf("%s printed nothing in time; stderr:\n%s", p.what, p.stderr.String())
	}
	return ""
}

// wait checks that the program exits successfully in time.
func (p *lineProc) wait() {
	p.t.Helper()
	select {
	case err := <-p.exited:
		if err != nil {
			p.t.Errorf("%s: %v\n%s", p.what, err, p.stderr.String())
		}
	case <-afterReady():
		p.cmd.Process.Kill()
		p.t.Errorf("%s did not exit", p.what)
	}
}
