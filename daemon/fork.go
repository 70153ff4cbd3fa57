package daemon

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// daemonEnv marks the re-executed child so it does not fork again.
const daemonEnv = "XSSTUB_XENSTORED_CHILD"

// Detached reports whether this process is the background daemon that
// Daemonize started (its standard output and error go nowhere).
func Detached() bool { return os.Getenv(daemonEnv) != "" }

// StderrDiscarded reports whether standard error is /dev/null: so it is
// after C xenstored's live update to ours, as C's daemonize left it (it
// logs to syslog), and the log must go elsewhere.
func StderrDiscarded() bool { return isDevNull(2) }

// isDevNull reports whether fd is open on /dev/null.
func isDevNull(fd int) bool {
	var a, b syscall.Stat_t
	if syscall.Fstat(fd, &a) != nil || syscall.Stat(os.DevNull, &b) != nil {
		return false
	}
	return a.Mode&syscall.S_IFMT == syscall.S_IFCHR && a.Rdev == b.Rdev
}

// Daemonize emulates C xenstored's fork without -N: it starts this program
// again in a new session with the same arguments, waits until the child
// serves socket, and reports whether the caller is the parent (which should
// then exit 0). Go cannot fork a running runtime, hence the re-exec.
//
// A daemon started by live update is already detached. A stub domain's
// xenstored (--stubdom) never forks: it is PID 1 there, and
// its exit would panic the kernel.
func Daemonize(o *Options) (parent bool, err error) {
	if o.NoFork || o.StubDomain || o.LiveUpdate || os.Getpid() == 1 || os.Getenv(daemonEnv) != "" || os.Getenv(liveUpdateEnv) != "" {
		return false, nil
	}
	self, err := os.Executable()
	if err != nil {
		return false, fmt.Errorf("daemonize: %w", err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return false, fmt.Errorf("daemonize: %w", err)
	}
	defer devnull.Close()
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Env = append(os.Environ(), daemonEnv+"=1")
	// Like C xenstored's finish_daemonize: no descriptor of the caller is
	// kept, so a caller reading our output through a pipe is not held up.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("daemonize: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return true, fmt.Errorf("xenstored exited during start-up: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if c, err := net.Dial("unix", o.Socket); err == nil {
			c.Close()
			if o.OutputPid { // the daemon's own output goes nowhere
				fmt.Println(cmd.Process.Pid)
			}
			return true, nil
		}
	}
	return true, fmt.Errorf("xenstored did not start serving %s within 10 s", o.Socket)
}
