package unixsock

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/wire"
)

// childSocket, in the environment, makes the test binary a server on that
// socket (see TestMain) instead of running the tests.
const childSocket = "UNIXSOCK_TEST_SERVE"

func TestMain(m *testing.M) {
	if sock := os.Getenv(childSocket); sock != "" {
		os.Exit(serveChild(sock))
	}
	os.Exit(m.Run())
}

// serveChild serves sock until SIGTERM, logging to stderr.
func serveChild(sock string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ln, err := Listen(sock)
	if err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := Serve(ctx, store.New(store.Config{Logger: log}), ln, log); err != nil {
		log.Error("serve", "err", err)
		return 1
	}
	return 0
}

// A server short of descriptors (its RLIMIT_NOFILE lowered under it, as
// prlimit --nofile does) stays up: a connection beyond the limit is not
// served, the connected client is, the shortage is logged once, and once
// descriptors are free again new clients are served.
func TestDescriptorShortage(t *testing.T) {
	tests := []struct {
		name  string
		spare int // descriptor numbers left free below the limit
		// free makes descriptors available again: held are served
		// clients, limit the raised limit to restore.
		free func(t *testing.T, srv *child, held []net.Conn, limit unix.Rlimit)
		// waits: the connection that met the shortage waits in the
		// listener's backlog (accept failed) and is served afterwards;
		// otherwise the server closed it.
		waits bool
	}{
		{"accept fails, the limit is raised again", 0, raiseNofile, true},
		{"duplicating the descriptor fails, clients close", 1, closeHeld, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(shortTempDir(t), "s")
			srv := startChild(t, sock)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("server log:\n%s", srv.log())
				}
			})
			a := dialWhenUp(t, sock, srv)
			roundTrip(t, a, 1)
			held := []net.Conn{dial(t, sock), dial(t, sock)}
			for _, c := range held {
				roundTrip(t, c, 2)
			}
			old := lowerNofile(t, srv.cmd.Process.Pid, tt.spare)

			var last chan error // the reply to the connection that met the shortage
			for i := 0; last == nil; i++ {
				if i == 10 {
					t.Fatal("10 more clients served: no shortage")
				}
				last = srv.dialUntilShortage(t, sock)
			}
			for i := range 3 {
				roundTrip(t, a, uint32(10+i)) // the connected client is served
			}
			tt.free(t, srv, held, old)
			if err := <-last; tt.waits && err != nil {
				t.Fatalf("the client that waited in the backlog: %v", err)
			}
			c := dial(t, sock)
			roundTrip(t, c, 20) // a new client is served
			roundTrip(t, a, 21)
			srv.stop(t)
			l := srv.log()
			if n := strings.Count(l, "cannot accept socket clients"); n != 1 {
				t.Errorf("shortage logged %d times, want once per burst", n)
			}
			if !strings.Contains(l, "accepting socket clients again") {
				t.Error("the end of the shortage not logged")
			}
		})
	}
}

// dialUntilShortage connects a client that sends a request at once. If it
// is served it returns nil; if the server logs the shortage first, a
// channel that gets the outcome of that client's request.
func (c *child) dialUntilShortage(t *testing.T, sock string) chan error {
	t.Helper()
	conn := dial(t, sock) // the backlog takes it
	outcome := make(chan error, 1)
	reply := outcome
	go func() {
		conn.SetDeadline(time.Now().Add(20 * time.Second)) // a hang, not a speed limit
		_, err := conn.Write(msg(wire.Directory, 3, "/"))
		if err == nil { // else the server closed it already
			_, err = io.ReadFull(conn, make([]byte, wire.HeaderSize))
		}
		outcome <- err
	}()
	hang := time.After(20 * time.Second) // a hang, not a speed limit
	for {
		select {
		case <-hang:
			t.Fatal("the client was neither served nor a shortage logged")
		case err := <-reply:
			if err == nil {
				return nil
			}
			// Closed by the server: the shortage is being logged.
			reply <- err
			reply = nil
		case line := <-c.lines:
			if strings.Contains(line, "cannot accept socket clients") {
				return outcome
			}
		case err := <-c.done:
			t.Fatalf("server exited (%v)", err)
		}
	}
}

// raiseNofile restores the server's descriptor limit.
func raiseNofile(t *testing.T, srv *child, _ []net.Conn, limit unix.Rlimit) {
	t.Helper()
	if err := unix.Prlimit(srv.cmd.Process.Pid, unix.RLIMIT_NOFILE, &limit, nil); err != nil {
		t.Fatal(err)
	}
}

// closeHeld closes held and waits until the server closed its ends.
func closeHeld(t *testing.T, srv *child, held []net.Conn, _ unix.Rlimit) {
	t.Helper()
	before := len(openFDs(t, srv.cmd.Process.Pid))
	for _, c := range held {
		c.Close()
	}
	for len(openFDs(t, srv.cmd.Process.Pid)) > before-len(held) {
		select {
		case err := <-srv.done:
			t.Fatalf("server exited (%v)", err)
		case <-time.After(time.Millisecond):
		}
	}
}

// The delay between accepts doubles from minAcceptDelay to maxAcceptDelay
// during a shortage and starts over after it.
func TestAcceptBackoff(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var b acceptBackoff
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i, w := range want {
		if got := b.failed(log, syscall.EMFILE); got != w*time.Millisecond {
			t.Fatalf("failure %d: delay %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	b.succeeded(log)
	if got := b.failed(log, syscall.EMFILE); got != minAcceptDelay {
		t.Fatalf("after a success: delay %v, want %v", got, minAcceptDelay)
	}
}

func TestIsShortage(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.EMFILE)}, true},
		{fmt.Errorf("dup: %w", syscall.ENFILE), true},
		{syscall.ENOBUFS, true},
		{syscall.ENOMEM, true},
		{net.ErrClosed, false},
		{syscall.EINVAL, false},
	}
	for _, tt := range tests {
		if got := isShortage(tt.err); got != tt.want {
			t.Errorf("isShortage(%v) = %t, want %t", tt.err, got, tt.want)
		}
	}
}

// child is the test binary serving a socket in another process.
type child struct {
	cmd   *exec.Cmd
	lines chan string // its stderr, line by line
	buf   syncBuffer
	done  chan error
}

func startChild(t *testing.T, sock string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childSocket+"="+sock)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, lines: make(chan string, 1000), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			c.buf.Write([]byte(sc.Text() + "\n"))
			select {
			case c.lines <- sc.Text():
			default:
			}
		}
		c.done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	return c
}

func (c *child) log() string          { return c.buf.String() }
func (c *child) logged(s string) bool { return strings.Contains(c.log(), s) }

// stop ends the server with SIGTERM; it must exit cleanly.
func (c *child) stop(t *testing.T) {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("server: %v\n%s", err, c.log())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("server did not stop on SIGTERM:\n%s", c.log())
	}
}

func dialWhenUp(t *testing.T, sock string, srv *child) *net.UnixConn {
	t.Helper()
	// The socket file appears at bind, before listen: until then a
	// connection is refused.
	for range 1000 {
		if c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"}); err == nil {
			t.Cleanup(func() { c.Close() })
			c.SetDeadline(time.Now().Add(10 * time.Second))
			return c
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("server never listened:\n%s", srv.log())
	return nil
}

// lowerNofile sets pid's soft RLIMIT_NOFILE to its (spare+1)th free
// descriptor number: spare numbers are left free below the limit
// (descriptors open above it stay usable). It returns the old limit.
func lowerNofile(t *testing.T, pid, spare int) unix.Rlimit {
	t.Helper()
	open := openFDs(t, pid)
	limit := 0
	for free := 0; ; limit++ {
		if !open[limit] {
			if free == spare {
				break
			}
			free++
		}
	}
	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &old); err != nil {
		t.Fatal(err)
	}
	lim := unix.Rlimit{Cur: uint64(limit), Max: old.Max}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		t.Fatal(err)
	}
	return old
}

// openFDs is the set of pid's open descriptors.
func openFDs(t *testing.T, pid int) map[int]bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	open := map[int]bool{}
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			open[n] = true
		}
	}
	return open
}

// roundTrip reads / on c and checks the reply.
func roundTrip(t *testing.T, c net.Conn, id uint32) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second)) // a hang, not a speed limit
	if _, err := c.Write(msg(wire.Directory, id, "/")); err != nil {
		t.Fatal(err)
	}
	h, p := next(t, c)
	if h.Type != wire.Directory || h.ReqID != id {
		t.Fatalf("reply %v id %d %q, want DIRECTORY id %d", h.Type, h.ReqID, p, id)
	}
}

// shortTempDir is a temporary directory whose paths fit a socket address.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "us")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
