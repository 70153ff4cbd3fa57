package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/store/handover"
	"github.com/xsstub/xenstored/transport/conn"
	"github.com/xsstub/xenstored/transport/unixsock"
)

// liveUpdateEnv names the descriptor holding the migration stream in a
// daemon started by live update (C xenstored's -U reads a file instead).
const liveUpdateEnv = "XENSTORED_LIVE_UPDATE_FD"

// updater implements store.LiveUpdater for the daemon: the new binary is
// executed in this process (same pid, so pid files and supervisors carry
// on) with the listener, every client's socket and the state stream as
// inherited descriptors.
type updater struct {
	image *os.File         // the new daemon sent with -b/-d, in a memfd
	sock  *unixsock.Server // nil until serving (a stub may serve no socket)
	xs    *xenSide         // nil without Xen
	pid   *pidFile         // nil: no pid file held
	args  []string         // this daemon's arguments, for the new one by default
	// quotas are what this daemon's command line set: all a C xenstored
	// 4.17 taking over gets.
	quotas store.Quotas
	log    *slog.Logger
}

// CheckBinary answers as C xenstored does.
func (u *updater) CheckBinary(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return errors.New("File not accessible.")
	}
	if fi.Mode()&0o111 == 0 || fi.IsDir() {
		return errors.New("File not executable.")
	}
	return nil
}

// NewImage holds the new daemon a stub receives (-b/-d) in a memfd, not
// in the Go heap: a stub has little memory, and the memfd is what the
// new daemon is executed from, so the image exists once.
func (u *updater) NewImage(size int) (io.WriteCloser, error) {
	fd, err := unix.MemfdCreate("xenstored-new", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd for the new daemon: %w", err)
	}
	u.image = os.NewFile(uintptr(fd), "xenstored-new")
	return u.image, nil
}

// Exec freezes the transports, writes the state stream and executes the
// new daemon: binary (-f), or with "" the image received (-b/-d: the new
// xenstored binary itself). It runs with the engine locked and returns
// only on failure, after which everything goes on as before.
func (u *updater) Exec(st *store.State, binary string, cmdline string) error {
	h := handover.NewTransports()
	var keep []int32 // descriptors the new daemon inherits
	if u.sock != nil {
		lf, hs, err := u.sock.Freeze()
		if err != nil {
			return err
		}
		defer func() { lf.Close(); u.sock.Thaw(hs) }()
		h.ListenFD = rawFD(lf)
		keep = append(keep, h.ListenFD)
		keep = append(keep, socketHandovers(st, h, hs)...)
	}
	if u.xs != nil {
		for _, r := range u.xs.rings.Freeze() {
			h.Rings[r.Store.ID()] = r.State
		}
		defer u.xs.rings.Thaw()
		if err := u.xs.rings.UnwatchDomains(); err != nil {
			return fmt.Errorf("handing VIRQ_DOM_EXC over: %w", err)
		}
		defer func() {
			if err := u.xs.rings.WatchDomains(); err != nil {
				u.log.Error("live-update failed and VIRQ_DOM_EXC could not be bound again: deaths go unseen", "err", err)
			}
		}()
		h.EvtchnFD = int32(u.xs.evtchnFD)
		keep = append(keep, h.EvtchnFD)
	}
	if binary == "" {
		if u.image == nil {
			return errors.New("no new daemon received")
		}
		binary = fmt.Sprintf("/proc/self/fd/%d", rawFD(u.image))
	}
	// The image's chunks went through the heap as requests: give that
	// memory back before the state's memfd takes its share.
	debug.FreeOSMemory()
	return u.exec(st, h, binary, cmdline, keep)
}

// socketHandovers records the socket clients in h (and st, for clients
// without an engine connection yet) and returns their descriptors.
func socketHandovers(st *store.State, h *handover.Transports, hs []conn.Handover) []int32 {
	var fds []int32
	for _, c := range hs {
		fds = append(fds, c.State.FD)
		if c.Store == nil { // accepted just now: a new engine connection
			id := newConnID(st)
			st.Conns = append(st.Conns, store.ConnState{ID: id, Priv: true})
			h.Sockets[id] = c.State
			continue
		}
		h.Sockets[c.Store.ID()] = c.State
	}
	return fds
}

func (u *updater) exec(st *store.State, h *handover.Transports, binary, cmdline string, keep []int32) error {
	c, err := identifyC(binary)
	if err != nil {
		return err
	}
	if c != nil {
		return u.execC(st, h, binary, cmdline, keep, c)
	}
	mfd, err := unix.MemfdCreate("xenstored-live-update", 0) // inherited: no CLOEXEC
	if err != nil {
		return fmt.Errorf("state memfd: %w", err)
	}
	mf := os.NewFile(uintptr(mfd), "xenstored-live-update")
	defer mf.Close()
	// Straight into the memfd: the stream is never in the heap as well.
	bw := bufio.NewWriterSize(mf, 64<<10)
	if err := handover.Encode(bw, st, h); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing state: %w", err)
	}
	size, err := mf.Seek(0, io.SeekCurrent)
	if err == nil {
		err = checkStream(mf)
	}
	if err != nil {
		return err
	}
	argv := append([]string{binary}, u.args...)
	if cmdline != "" {
		argv = append([]string{binary}, strings.Fields(cmdline)...)
	}
	if err := checkNewDaemon(binary, argv[1:], mf); err != nil {
		return err
	}
	for _, fd := range keep {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return fmt.Errorf("keeping descriptor %d: %w", fd, err)
		}
	}
	env := append(os.Environ(), liveUpdateEnv+"="+strconv.Itoa(mfd))
	if u.pid != nil {
		fd := int32(u.pid.f.Fd())
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return fmt.Errorf("keeping the pid file: %w", err)
		}
		defer unix.CloseOnExec(int(fd)) // only reached if the exec failed
		env = append(env, pidFileEnv+"="+strconv.Itoa(int(fd)))
	}
	u.log.Info("live-update: executing the new daemon", "binary", binary, "state-bytes", size,
		"connections", len(st.Conns), "rings", len(h.Rings), "sockets", len(h.Sockets))
	err = execNewDaemon(binary, argv, env)
	for _, fd := range keep {
		unix.CloseOnExec(int(fd))
	}
	return fmt.Errorf("exec %s: %w", binary, err)
}

// execNewDaemon replaces this process with ours' new daemon; tests
// start it in-process instead, on the same fake hypervisor.
var execNewDaemon = syscall.Exec

// execC hands over to C xenstored of release c: the stream it reads
// where it reads it, and its command line with -U. C has no check mode:
// what it would refuse or lose is refused here, before anything is.
func (u *updater) execC(st *store.State, h *handover.Transports, binary, cmdline string, keep []int32, c *cRelease) error {
	args, base := u.args, u.quotas
	if cmdline != "" {
		args = strings.Fields(cmdline)
		o, err := Parse(args, io.Discard)
		if err != nil {
			return fmt.Errorf("command line %q: %w", cmdline, err)
		}
		base = o.Quotas
	}
	args, err := c.argv(args)
	if err != nil {
		return err
	}
	if err := c.refusal(st, base); err != nil {
		return err
	}
	path := cStateFile()
	if err := writeCState(path, st, h, c); err != nil {
		return err
	}
	for _, fd := range keep {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			os.Remove(path)
			return fmt.Errorf("keeping descriptor %d: %w", fd, err)
		}
	}
	u.log.Info("live-update: executing C xenstored", "binary", binary, "release", c.name, "state", path,
		"connections", len(st.Conns), "sockets", len(h.Sockets), "rings", len(h.Rings))
	err = syscall.Exec(binary, append([]string{binary}, args...), os.Environ())
	for _, fd := range keep {
		unix.CloseOnExec(int(fd))
	}
	os.Remove(path)
	return fmt.Errorf("exec %s: %w", binary, err)
}

// checkStream reads the stream in f back as the new daemon will, and
// leaves f at its start for it. After the exec nothing could go back.
func checkStream(f *os.File) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading state back: %w", err)
	}
	if err := handover.Check(bufio.NewReaderSize(f, 64<<10)); err != nil {
		return fmt.Errorf("state written cannot be read back: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading state back: %w", err)
	}
	return nil
}

// checkOK is what a new daemon run with --live-update-check prints when it
// could parse its command line and read the state.
const checkOK = "xenstored: live-update check passed"

// checkTimeout bounds the new daemon's check: the engine is locked.
const checkTimeout = 20 * time.Second

// checkNewDaemon runs binary with the arguments it is to be executed with,
// plus --live-update-check, and the state on descriptor 3: it must parse
// them, read the state and say so. What execs but is no working xenstored
// (a truncated ELF, a script, a bad -c command line) is refused here,
// while this daemon can still go on; nothing could go back after the exec.
func checkNewDaemon(binary string, args []string, state *os.File) error {
	// The child has its own /proc/self: name this process's descriptor.
	binary = strings.Replace(binary, "/proc/self/", fmt.Sprintf("/proc/%d/", os.Getpid()), 1)
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append(slices.Clone(args), "--live-update-check")...)
	cmd.Env = append(os.Environ(), liveUpdateEnv+"=3")
	cmd.ExtraFiles = []*os.File{state}
	var stdout, stderr tailBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second // a child of a script may hold the pipes
	err := cmd.Run()
	// The child shares the descriptor's offset: the new daemon reads from 0.
	if _, serr := state.Seek(0, io.SeekStart); serr != nil {
		return fmt.Errorf("rewinding the state: %w", serr)
	}
	if err != nil {
		if msg := stderr.lastLine(); msg != "" {
			return fmt.Errorf("the new binary failed its check (%w): %s", err, msg)
		}
		return fmt.Errorf("the new binary failed its check: %w", err)
	}
	if stdout.lastLine() != checkOK {
		return fmt.Errorf("the new binary did not pass its check (no %q from %s --live-update-check; not a xenstored that checks?)", checkOK, binary)
	}
	return nil
}

// tailBuffer keeps the last KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 1024 {
		t.b = t.b[len(t.b)-1024:]
	}
	return len(p), nil
}

func (t *tailBuffer) lastLine() string {
	s := strings.TrimRight(string(t.b), "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// CheckLiveUpdate is --live-update-check: it reads the state a live update
// hands over (as a new daemon would, without keeping the nodes) and
// prints checkOK on w.
func CheckLiveUpdate(w io.Writer) error {
	v, ok := os.LookupEnv(liveUpdateEnv)
	if !ok {
		return fmt.Errorf("--live-update-check: no state (%s not set)", liveUpdateEnv)
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 0 {
		return fmt.Errorf("--live-update-check: %s=%q", liveUpdateEnv, v)
	}
	f := os.NewFile(uintptr(fd), "live-update state")
	defer f.Close()
	if err := handover.Check(bufio.NewReaderSize(f, 64<<10)); err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, checkOK)
	return err
}

// rawFD is f's descriptor. Unlike f.Fd() it leaves the descriptor's mode
// alone: Fd makes it blocking, and a socket's duplicate shares that mode
// with the socket the running daemon still serves.
func rawFD(f *os.File) int32 {
	fd := int32(-1)
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(d uintptr) { fd = int32(d) })
	}
	return fd
}

func newConnID(st *store.State) uint64 {
	var id uint64
	for _, c := range st.Conns {
		id = max(id, c.ID)
	}
	return id + 1
}

// inheritedState reads the state a live update handed over, if this
// daemon was started by one: ours passes a descriptor, C xenstored a file
// and -U.
func inheritedState(o *Options, log *slog.Logger) (*store.State, *handover.Transports, error) {
	v, ok := os.LookupEnv(liveUpdateEnv)
	if !ok && o.LiveUpdate {
		return readCState(cStateFile(), o.PrivDomid, o.Quotas, log.Warn)
	}
	if !ok {
		return nil, nil, nil
	}
	os.Unsetenv(liveUpdateEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 0 {
		return nil, nil, fmt.Errorf("%s=%q", liveUpdateEnv, v)
	}
	unix.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "live-update state")
	defer f.Close()
	return handover.Decode(bufio.NewReaderSize(f, 64<<10), o.PrivDomid)
}

// adoptSockets gives the restored engine's socket clients to a new socket
// server over the inherited listener.
func adoptSockets(e *store.Engine, h *handover.Transports, log *slog.Logger) (*unixsock.Server, error) {
	lf := os.NewFile(uintptr(h.ListenFD), "listener")
	unix.CloseOnExec(int(h.ListenFD))
	l, err := net.FileListener(lf)
	lf.Close()
	if err != nil {
		return nil, fmt.Errorf("inherited listener: %w", err)
	}
	ln, ok := l.(*net.UnixListener)
	if !ok {
		return nil, errors.New("inherited listener is not a Unix socket")
	}
	s := unixsock.NewServer(e, ln, log)
	for id, ss := range h.Sockets {
		f := os.NewFile(uintptr(ss.FD), "client")
		unix.CloseOnExec(int(ss.FD))
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			log.Warn("live-update: a client's socket was not handed over", "conn", id, "err", err)
			continue
		}
		uc, ok := c.(*net.UnixConn)
		if !ok {
			c.Close()
			continue
		}
		s.Adopt(e.ConnByID(id), uc, ss.In, ss.Out)
	}
	return s, nil
}

// accountImage accounts for this daemon's own binary when a live update
// started it from a memfd: those pages are memory the limit did not plan
// for. In the stub, where the image's copy of the program is no longer run
// by anyone, that copy is removed instead, which gives at least as much
// back; elsewhere the Go memory limit is lowered by the binary's size.
func accountImage(log *slog.Logger) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil || !strings.HasPrefix(exe, "/memfd:") {
		return
	}
	fi, err := os.Stat("/proc/self/exe")
	if err != nil {
		return
	}
	if dropBootImage(fi.Size(), log) {
		return
	}
	limit := debug.SetMemoryLimit(-1)
	if limit == math.MaxInt64 || limit <= 2*fi.Size() {
		return
	}
	debug.SetMemoryLimit(limit - fi.Size())
	log.Info("live-update: memory limit lowered by the binary held in memory", "bytes", fi.Size(), "limit", limit-fi.Size())
}

// dropBootImage removes the stub image's copy of the program, /init (and
// /bin/xenstored, its link), when this process is the stub's PID 1 running
// from a memfd: an initramfs file holds its memory until it is removed, and
// nothing will run it again. It reports whether at least size bytes went.
func dropBootImage(size int64, log *slog.Logger) bool {
	if os.Getpid() != 1 {
		return false // not the stub's init: never touch the system's files
	}
	var freed int64
	for _, name := range []string{"/init", "/bin/xenstored"} {
		fi, err := os.Lstat(name)
		if err != nil {
			continue
		}
		if err := os.Remove(name); err != nil {
			log.Warn("live-update: cannot remove the image's program", "file", name, "err", err)
			continue
		}
		if fi.Mode().IsRegular() {
			freed += fi.Size()
		}
	}
	if freed > 0 {
		log.Info("live-update: the image's copy of the program removed, its memory given back", "bytes", freed)
	}
	return freed >= size
}
