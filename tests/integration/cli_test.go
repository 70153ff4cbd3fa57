package integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xsstub/xenstored/xsclient"
)

// TestPidFile: -F writes the daemon's pid.
func TestPidFile(t *testing.T) {
	dir := shortTempDir(t)
	for _, flag := range []string{"-F", "--pid-file"} {
		t.Run(flag, func(t *testing.T) {
			pidf := filepath.Join(dir, "pid"+flag)
			d := startDaemon(t, flag, pidf)
			b, err := os.ReadFile(pidf)
			if err != nil {
				t.Fatalf("pid file: %v", err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil || pid != d.cmd.Process.Pid {
				t.Errorf("pid file says %q, daemon pid is %d", b, d.cmd.Process.Pid)
			}
		})
	}
}

// TestBadFlags: command-line errors exit with status 2 and say something.
func TestBadFlags(t *testing.T) {
	bin := daemonBin(t)
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "socket")
	cases := [][]string{
		{"--no-such-flag"},
		{"-Z"},
		{"-N", "--socket", sock, "stray-argument"},
		{"-N", "--socket", sock, "-E", "many"},
		{"-N", "--socket", sock, "-E", "-5"},
		{"-N", "--socket", sock, "-Q", "no-such-quota=1"},
		{"-N", "--socket", sock, "-Q", "nodes"},
		{"-N", "--socket", sock, "--master-domid", "x"},
		{"-N", "--socket", sock, "-F"},
		{"-N", "--socket", sock, "--stubdom", "--event", "x"},
	}
	for _, args := range cases {
		name := strings.Join(args, " ")
		name = strings.TrimPrefix(name, "-N --socket "+sock+" ")
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(bin, args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			cmd.WaitDelay = time.Second
			err := runBounded(t, cmd)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Errorf("exit: %v, want status 2 (stderr %q)", err, stderr.String())
			}
			if strings.TrimSpace(stderr.String()) == "" {
				t.Errorf("no message on stderr")
			}
			if _, err := os.Stat(sock); err == nil {
				t.Errorf("a bad command line still created the socket")
				os.Remove(sock)
			}
		})
	}
	t.Run("-h", func(t *testing.T) {
		cmd := exec.Command(bin, "-h")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := runBounded(t, cmd); err != nil {
			t.Errorf("-h: %v", err)
		}
		if !strings.Contains(stderr.String(), "socket") {
			t.Errorf("-h output does not describe the options: %q", stderr.String())
		}
	})
}

// runBounded runs cmd, killing it if it hangs.
func runBounded(t *testing.T, cmd *exec.Cmd) error {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-afterReady():
		cmd.Process.Kill()
		<-done
		t.Fatalf("%q hung", cmd.Args)
	}
	return nil
}

// TestDaemonize: without -N the command returns once the daemon serves the
// socket; the daemon keeps running detached until killed via its pid file.
func TestDaemonize(t *testing.T) {
	bin := daemonBin(t)
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "socket")
	pidf := filepath.Join(dir, "pid")
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--socket", sock, "-F", pidf, "-P")
	var stdout strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, logf
	pid := 0
	t.Cleanup(func() { // never leave a daemon behind
		if pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	if err := runBounded(t, cmd); err != nil {
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("xenstored without -N: %v\n%s", err, b)
	}
	b, err := os.ReadFile(pidf)
	if err != nil {
		t.Fatalf("pid file after daemonizing: %v", err)
	}
	pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("pid file says %q", b)
	}
	if pid == cmd.Process.Pid {
		t.Errorf("the pid file names the exited parent %d", pid)
	}
	if got := strings.TrimSpace(stdout.String()); got != strconv.Itoa(pid) {
		t.Errorf("-P printed %q, want the daemon's pid %d (as C xenstored)", got, pid)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("daemon %d is not running: %v", pid, err)
	}
	// It runs in its own session, detached from ours.
	if sid, err := getsid(pid); err != nil || sid != pid {
		t.Errorf("daemon session id %d (%v), want its own (%d)", sid, err, pid)
	}
	c, err := xsclient.Dial(sock)
	if err != nil {
		t.Fatalf("socket does not serve: %v", err)
	}
	if err := c.Write(0, "/daemonized", []byte("yes")); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Read(0, "/daemonized"); err != nil || string(v) != "yes" {
		t.Fatalf("read back %q, %v", v, err)
	}
	c.Close()

	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The daemon is not our child; wait until it is gone (or a zombie of
	// whoever adopted it).
	deadline := time.Now().Add(readyTimeout)
	for running(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("daemon %d survived SIGTERM", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	pid = 0
	if _, err := xsclient.Dial(sock); err == nil {
		t.Errorf("socket still serves after the daemon was killed")
	}
}

// running reports whether pid exists and is not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func getsid(pid int) (int, error) {
	sid, _, errno := syscall.RawSyscall(syscall.SYS_GETSID, uintptr(pid), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(sid), nil
}

// TestDaemonizeReleasesOutput: like C xenstored (finish_daemonize points
// stdin, stdout and stderr at /dev/null), the detached daemon must not keep
// the caller's output open, or `out=$(xenstored ...)` never returns.
func TestDaemonizeReleasesOutput(t *testing.T) {
	bin := daemonBin(t)
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "socket")
	pidf := filepath.Join(dir, "pid")
	cmd := exec.Command(bin, "--socket", sock, "-F", pidf)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out // pipes, not files
	cmd.WaitDelay = 2 * time.Second
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidf); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGTERM)
			}
		}
	})
	err := runBounded(t, cmd)
	if errors.Is(err, exec.ErrWaitDelay) {
		t.Errorf("the daemonized xenstored keeps the caller's stdout/stderr pipe open")
	} else if err != nil {
		t.Fatalf("xenstored without -N: %v\n%s", err, out.String())
	}
	if c, err := xsclient.Dial(sock); err != nil {
		t.Errorf("socket does not serve: %v", err)
	} else {
		c.Close()
	}
}

// TestPidFileHeld: a second daemon given a running one's pid file refuses
// to start, and neither overwrites nor removes the file.
func TestPidFileHeld(t *testing.T) {
	pidf := filepath.Join(shortTempDir(t), "pid")
	d := startDaemon(t, "-F", pidf)
	want := strconv.Itoa(d.cmd.Process.Pid) + "\n"
	second := exec.Command(daemonBin(t), "-N", "--socket", filepath.Join(shortTempDir(t), "other"), "-F", pidf)
	var stderr strings.Builder
	second.Stderr = &stderr
	if err := runBounded(t, second); err == nil {
		t.Fatalf("the second daemon started (%s)", stderr.String())
	}
	if !strings.Contains(stderr.String(), "held by a running xenstored") {
		t.Errorf("second daemon said %q", stderr.String())
	}
	if b, err := os.ReadFile(pidf); err != nil || string(b) != want {
		t.Fatalf("pid file after the second daemon: %q, %v; want %q", b, err, want)
	}
	d.mustServe(t, "after a second daemon was refused")
}

// TestBadOptionValues: values that used to be taken silently are usage
// errors (exit 2); --memory-ceiling -1 still means none.
func TestBadOptionValues(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
	}{
		{[]string{"--xen-interface", ""}, 2},
		{[]string{"--xen-interface="}, 2},
		{[]string{"--memory-ceiling", "-5"}, 2},
		{[]string{"--memory-ceiling", "-2"}, 2},
		{[]string{"--help"}, 0},
	} {
		cmd := exec.Command(daemonBin(t), append([]string{"-N", "--socket", filepath.Join(shortTempDir(t), "s")}, tt.args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		code := 0
		if err := runBounded(t, cmd); err != nil {
			ee, ok := err.(*exec.ExitError)
			if !ok {
				t.Fatal(err)
			}
			code = ee.ExitCode()
		}
		if code != tt.code {
			t.Errorf("%q: exit %d, want %d (%s)", tt.args, code, tt.code, stderr.String())
		}
	}
	d := startDaemon(t, "--memory-ceiling", "-1")
	d.mustServe(t, "with --memory-ceiling -1")
}

// Stub-domain mode (with --event, or without: the xenstore domain of a
// dom0less boot) on a machine without /dev/xen fails closed: status 1, the
// reason on stderr, no socket.
func TestStubdomWithoutXen(t *testing.T) {
	if _, err := os.Stat("/dev/xen"); err == nil {
		t.Skip("this machine has /dev/xen")
	}
	bin := daemonBin(t)
	sock := filepath.Join(shortTempDir(t), "socket")
	for _, args := range [][]string{{"--stubdom"}, {"--stubdom", "--event", "5"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			cmd := exec.Command(bin, append([]string{"-N", "--socket", sock}, args...)...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			cmd.WaitDelay = time.Second
			err := runBounded(t, cmd)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "/dev/xen") {
				t.Errorf("exit: %v, want status 1 naming /dev/xen (stderr %q)", err, stderr.String())
			}
			if _, err := os.Stat(sock); err == nil {
				t.Errorf("the socket was created")
			}
		})
	}
}
