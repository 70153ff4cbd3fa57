package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/store/handover"
	"github.com/xsstub/xenstored/transport/unixsock"
	"github.com/xsstub/xenstored/transport/xenring"
	"github.com/xsstub/xenstored/xen/domains"
)

// NewLogger builds the daemon's logger: text lines on w, debug when verbose.
func NewLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// Run serves the store until ctx is cancelled. It expects to run in the
// foreground (see Daemonize for the forking behaviour of C xenstored).
//
// Fail closed: where /dev/xen exists, the daemon serves only if it can
// follow domains' lives; otherwise it returns why and serves no one.
// Without /dev/xen it serves its Unix socket only (development mode).
//
// If a serving loop (the rings', the socket's) fails, Run returns its
// error: a daemon that stopped serving must end, and say why, so that the
// toolstack or the operator sees it.
func Run(ctx context.Context, o *Options, log *slog.Logger) error {
	sctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	err := serve(sctx, fail, o, log)
	if ctx.Err() == nil {
		if cause := context.Cause(sctx); cause != nil {
			return cause // the first loop to fail, which stopped the others
		}
	}
	return err
}

// serve is Run; fail ends it with a serving loop's error.
func serve(ctx context.Context, fail context.CancelCauseFunc, o *Options, log *slog.Logger) error {
	// A daemon started by live update takes over its predecessor's state
	// and descriptors, the event channel handle among them.
	st, handed, err := inheritedState(o, log)
	if err != nil {
		return fmt.Errorf("live update: %w", err)
	}
	evtchnFD := -1
	if handed != nil {
		evtchnFD = int(handed.EvtchnFD)
		accountImage(log)
	}
	xs, err := openXen(o, evtchnFD, log)
	switch {
	case errors.Is(err, errNoXen) && o.StubDomain:
		return fmt.Errorf("stub-domain mode (--stubdom, --event) needs /dev/xen")
	case errors.Is(err, errNoXen):
		log.Info("no /dev/xen: serving the Unix socket only (development mode: no guests, no domain information)")
		xs = nil
	case err != nil:
		return fmt.Errorf("refusing to serve: %w", err)
	}
	// dom0less: a xenstore domain that no control domain started finds
	// its roles and the domains to serve itself.
	dom0less := xs != nil && o.StubDomain && o.Event < 0
	var boot *dom0lessBoot
	var storeDomid uint32
	switch {
	case dom0less:
		if boot, err = findDom0less(o, xs, log); err != nil {
			return fmt.Errorf("refusing to serve: %w", err)
		}
		o.PrivDomid, storeDomid = boot.priv, boot.store
		if st != nil {
			// A live update: the roles are not in the state, so they
			// are found again from the domains' capabilities, as C
			// 4.22's init_domains does; the domains are the state's.
			privRings(st, boot.priv)
			boot = nil
		}
	default:
		if storeDomid, err = findStoreDomid(o, xs, log); err != nil {
			return err
		}
	}
	up := &updater{xs: xs, args: o.Args, quotas: o.Quotas, log: log}
	cfg := engineConfig(o, xs, storeDomid, up, log)
	if st != nil {
		return runUpdated(ctx, fail, o, cfg, st, handed, up, log)
	}
	e := store.New(cfg)
	if o.TraceFile != "" {
		closeTrace, err := startTrace(e, o.TraceFile, log)
		if err != nil {
			return err
		}
		defer closeTrace()
	}
	if xs != nil {
		if err := startRings(ctx, fail, o, xs, e, boot, log); err != nil {
			return err
		}
	}
	// The pid file comes before the socket, as in C xenstored: a
	// supervisor that reads it once the socket answers must find it
	// whole. A live daemon on the socket keeps its own pid file.
	if o.PidFile != "" {
		if unixsock.Serving(o.Socket) {
			return fmt.Errorf("a xenstored is already serving %s", o.Socket)
		}
		pf, err := claimPidFile(o.PidFile, os.Getpid())
		if err != nil {
			return err
		}
		defer pf.release()
		up.pid = pf
	}
	ln, err := unixsock.Listen(o.Socket)
	if err == nil {
		testHookListening()
	}
	if err != nil && o.StubDomain {
		// A stub domain's kernel may have no networking and so no Unix
		// sockets; its clients all come through rings.
		log.Warn("no Unix socket: serving rings only", "err", err)
		<-ctx.Done()
		return nil
	}
	if err != nil {
		return err
	}
	defer os.Remove(o.Socket)
	log.Info("xenstored serving", "socket", o.Socket, "pid", os.Getpid())
	if o.OutputPid {
		fmt.Println(os.Getpid())
	}
	up.sock = unixsock.NewServer(e, ln, log)
	return up.sock.Serve(ctx)
}

// runUpdated goes on serving where the daemon that executed us by live
// update stopped: its store, its rings and event channels, its listener
// and its clients.
func runUpdated(ctx context.Context, fail context.CancelCauseFunc, o *Options, cfg store.Config, st *store.State, h *handover.Transports, up *updater, log *slog.Logger) error {
	dropUnservedRings(st, h, up.xs != nil)
	e, err := store.Restore(cfg, st)
	if err != nil {
		return fmt.Errorf("live update: %w", err)
	}
	if o.TraceFile != "" {
		closeTrace, err := startTrace(e, o.TraceFile, log)
		if err != nil {
			return err
		}
		defer closeTrace()
	}
	if up.xs != nil {
		if err := adoptRings(ctx, fail, o, up.xs, e, h, log); err != nil {
			return fmt.Errorf("live update: %w", err)
		}
	}
	log.Info("live-update: serving the state handed over", "nodes", len(st.Nodes), "connections", len(st.Conns),
		"rings", len(h.Rings), "sockets", len(h.Sockets), "pid", os.Getpid())
	if h.ListenFD < 0 {
		<-ctx.Done() // a stub without sockets
		return nil
	}
	s, err := adoptSockets(e, h, log)
	if err != nil {
		return fmt.Errorf("live update: %w", err)
	}
	defer os.Remove(o.Socket)
	if o.PidFile != "" { // the last daemon wrote it (same pid) and handed its lock over
		pf, err := inheritedPidFile(o.PidFile)
		if err != nil {
			log.Warn("live-update: pid file not locked again", "err", err)
		} else {
			defer pf.release()
			up.pid = pf
		}
	}
	up.sock = s
	return s.Serve(ctx)
}

// privRings makes the ring connection of priv, and only it, privileged:
// a live-update state is read before a dom0less daemon knows its control
// domain, so its rings were judged against the options' default.
func privRings(st *store.State, priv uint32) {
	for i := range st.Conns {
		if c := &st.Conns[i]; c.Ring {
			c.Priv = c.Domid == priv
		}
	}
}

// dropUnservedRings turns ring connections that no transport can serve
// into introduced domains without a connection: all of them without Xen.
func dropUnservedRings(st *store.State, h *handover.Transports, xen bool) {
	kept := st.Conns[:0]
	for _, c := range st.Conns {
		if _, served := h.Rings[c.ID]; c.Ring && (!xen || !served) {
			continue
		}
		kept = append(kept, c)
	}
	st.Conns = kept
}

// adoptRings binds VIRQ_DOM_EXC again (the last daemon let it go), serves
// every ring handed over on its still-bound port, then checks every known
// domain: deaths during the switch were not signalled to anyone.
func adoptRings(ctx context.Context, fail context.CancelCauseFunc, o *Options, xs *xenSide, e *store.Engine, h *handover.Transports, log *slog.Logger) error {
	rings := xs.rings
	rings.SetEngine(e)
	if err := rings.WatchDomains(); err != nil {
		return fmt.Errorf("domain deaths could not be noticed: %w", err)
	}
	if !o.StubDomain && !o.NoDomainInit {
		if _, err := dom0LocalRing(rings); err != nil {
			log.Warn("dom0's kernel ring not served", "err", err)
		}
	}
	for id, rs := range h.Rings {
		c := e.ConnByID(id)
		if c == nil {
			continue
		}
		if err := rings.Adopt(c, uint32(rs.FD), rs.In, rs.Out); err != nil {
			log.Error("live-update: a ring was not taken over", "domid", c.Domid(), "err", err)
		}
	}
	serveRings(ctx, fail, rings)
	rings.Recheck()
	return nil
}

// serveRings runs the ring loop in its own goroutine; if it fails, fail
// ends the daemon with its error.
func serveRings(ctx context.Context, fail context.CancelCauseFunc, rings *xenring.Server) {
	go func() {
		if err := rings.Serve(ctx.Done()); err != nil {
			fail(fmt.Errorf("ring transport stopped: %w", err))
		}
	}()
}

// findStoreDomid is the domain the store runs in: -m, else in a stub the
// domain Xen flags as xenstore domain, else 0.
func findStoreDomid(o *Options, xs *xenSide, log *slog.Logger) (uint32, error) {
	if !o.StubDomain || o.MasterSet {
		return o.MasterDomid, nil
	}
	id, err := xs.tracker.Self()
	if err != nil {
		return 0, fmt.Errorf("finding our own domain: %w", err)
	}
	log.Info("running as the xenstore domain", "domid", id)
	return id, nil
}

func engineConfig(o *Options, xs *xenSide, storeDomid uint32, up store.LiveUpdater, log *slog.Logger) store.Config {
	var platform store.Platform
	if xs != nil {
		platform = xs.rings
	}
	qs := o.Quotas
	ceiling := memoryCeiling(o.MemoryCeiling, debug.SetMemoryLimit(-1))
	if ceiling > 0 {
		log.Info("store memory ceiling", "bytes", ceiling)
	}
	cfg := store.Config{
		LiveUpdate:    up,
		Quotas:        &qs,
		Logger:        log,
		Platform:      platform,
		PrivDomid:     o.PrivDomid,
		StoreDomid:    storeDomid,
		KeepOrphans:   o.KeepOrphans,
		WriteRate:     o.WriteRate,
		WriteBurst:    o.WriteBurst,
		EventTimeout:  o.EventTimeout,
		MemoryCeiling: ceiling,
	}
	if o.StubDomain { // the domain is ours: its memory and boot are worth showing
		cfg.SystemReport = systemReport
		cfg.FirstAnswer = logFirstAnswer(log)
	}
	return cfg
}

// startTrace logs every request and reply to path (-T).
func startTrace(e *store.Engine, path string, log *slog.Logger) (func(), error) {
	t := &traceFile{path: path}
	if err := t.reopen(); err != nil {
		return nil, err
	}
	e.SetTrace(t.write, true)
	// SIGHUP reopens the file, as C xenstored does, so that a rotated log
	// is let go; without a trace file SIGHUP stays ignored (main).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				if err := t.reopen(); err != nil {
					log.Warn("trace file not reopened on SIGHUP", "err", err)
				}
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Ignore(syscall.SIGHUP) // back to ignored, never to the default (exit)
		close(done)
		t.close()
	}, nil
}

// traceFile is the trace file, reopened by path on SIGHUP.
type traceFile struct {
	path string
	mu   sync.Mutex // guards f
	f    *os.File
}

func (t *traceFile) reopen() error {
	f, err := os.OpenFile(t.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("trace file: %w", err)
	}
	t.mu.Lock()
	old := t.f
	t.f = f
	t.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (t *traceFile) write(s string) {
	t.mu.Lock()
	fmt.Fprintf(t.f, "%s %s\n", time.Now().Format("2006-01-02 15:04:05.000"), s)
	t.mu.Unlock()
}

func (t *traceFile) close() {
	t.mu.Lock()
	t.f.Close()
	t.mu.Unlock()
}

// startRings binds VIRQ_DOM_EXC, starts the ring loop and connects the
// control domain: through the ring and port its kernel granted us (stub)
// or through its local kernel ring (dom0 daemon).
func startRings(ctx context.Context, fail context.CancelCauseFunc, o *Options, xs *xenSide, e *store.Engine, boot *dom0lessBoot, log *slog.Logger) error {
	rings := xs.rings
	rings.SetEngine(e)
	if err := rings.WatchDomains(); err != nil {
		return fmt.Errorf("refusing to serve: domain deaths could not be noticed: %w", err)
	}
	serveRings(ctx, fail, rings)
	switch {
	case boot != nil:
		return boot.introduce(xs, e, log)
	case o.StubDomain:
		if err := e.IntroduceDomain(o.PrivDomid, uint32(o.Event), 0); err != nil {
			return fmt.Errorf("connecting dom%d's ring (event %d): %w", o.PrivDomid, o.Event, err)
		}
		log.Info("serving the control domain's ring", "domid", o.PrivDomid, "event", o.Event)
		autoIntroduce(xs, e, o.PrivDomid, log)
	case o.NoDomainInit:
		log.Info("not serving dom0's kernel ring (-D)")
	default:
		port, err := dom0LocalRing(rings)
		if err == nil {
			err = e.IntroduceDomain(0, port, 0)
		}
		if err != nil {
			log.Warn("dom0's kernel ring not served", "err", err)
		}
	}
	return nil
}

// autoIntroduce introduces the domains that existed before the store and
// have a store ring whose event channel their builder wrote into it
// (dom0less, hyperlaunch, a restarted store), as C xenstored 4.21 does.
func autoIntroduce(xs *xenSide, e *store.Engine, priv uint32, log *slog.Logger) {
	doms, err := xs.tracker.Existing()
	if errors.Is(err, domains.ErrCannotEnumerate) {
		log.Info("domains created before the store are not looked for", "why", err)
		return
	}
	if err != nil {
		log.Warn("listing domains created before the store", "err", err)
	}
	for _, d := range doms {
		if d.ID == priv || d.XenstoreDomain || d.Dying || d.Shutdown {
			continue
		}
		port, err := xs.rings.StorePort(d.ID)
		if err != nil || port == 0 {
			log.Debug("existing domain has no store ring to connect", "domid", d.ID, "port", port, "err", err)
			continue
		}
		if err := e.IntroduceDomain(d.ID, port, 0); err != nil {
			log.Warn("introducing an existing domain", "domid", d.ID, "err", err)
			continue
		}
		log.Info("introduced a domain created before the store", "domid", d.ID, "port", port)
	}
}

// memoryCeiling is the store's memory ceiling for the --memory-ceiling
// option and the Go memory limit (debug.SetMemoryLimit(-1): GOMEMLIMIT, or
// math.MaxInt64 without one): the option if set, else derived from the
// limit; 0 means none.
func memoryCeiling(opt, goLimit int64) int64 {
	switch {
	case opt > 0:
		return opt
	case opt < 0:
		return 0
	}
	return store.CeilingFor(goLimit)
}

// testHookListening runs as soon as the socket accepts connections (tests).
var testHookListening = func() {}

// pidFile is a pid file this daemon owns. It is locked (flock) for the
// daemon's life, as C xenstored locks its own: a second daemon given the
// same file refuses to start instead of overwriting it, and only the owner
// removes it. The pid is written before the socket listens, so a
// supervisor that reads it once the socket answers finds it whole.
type pidFile struct {
	f    *os.File
	path string
	pid  int
}

func claimPidFile(path string, pid int) (*pidFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pid file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		held, _ := os.ReadFile(path)
		return nil, fmt.Errorf("pid file %s is held by a running xenstored (pid %s): %w", path, bytes.TrimSpace(held), err)
	}
	b := []byte(strconv.Itoa(pid) + "\n")
	_, err = f.WriteAt(b, 0)
	if err == nil {
		err = f.Truncate(int64(len(b)))
	}
	if err != nil {
		f.Close()
		os.Remove(path) // ours: locked, and nothing whole in it
		return nil, fmt.Errorf("pid file: %w", err)
	}
	return &pidFile{f: f, path: path, pid: pid}, nil
}

// pidFileEnv names the descriptor of the pid file a live update hands
// over: its lock stays held through the exec (an flock belongs to the open
// file, which the exec keeps), so no other daemon can claim it meanwhile.
const pidFileEnv = "XENSTORED_PID_FILE_FD"

// inheritedPidFile takes over the pid file the last daemon held, checking
// that the descriptor is still the file at path; without one (C executed
// us) it claims the file anew.
func inheritedPidFile(path string) (*pidFile, error) {
	v, ok := os.LookupEnv(pidFileEnv)
	if !ok {
		return claimPidFile(path, os.Getpid())
	}
	os.Unsetenv(pidFileEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 0 {
		return nil, fmt.Errorf("%s=%q", pidFileEnv, v)
	}
	unix.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), path)
	var held, named unix.Stat_t
	if err := unix.Fstat(fd, &held); err != nil {
		f.Close()
		return nil, fmt.Errorf("pid file descriptor %d: %w", fd, err)
	}
	if err := unix.Stat(path, &named); err != nil || held.Dev != named.Dev || held.Ino != named.Ino {
		f.Close()
		return claimPidFile(path, os.Getpid()) // replaced meanwhile: ours no longer
	}
	return &pidFile{f: f, path: path, pid: os.Getpid()}, nil
}

// release removes the pid file if it still names this daemon.
func (p *pidFile) release() {
	defer p.f.Close()
	if b, err := os.ReadFile(p.path); err == nil && string(bytes.TrimSpace(b)) == strconv.Itoa(p.pid) {
		os.Remove(p.path)
	}
}
