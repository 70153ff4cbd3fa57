package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/transport/unixsock"
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
func Run(ctx context.Context, o *Options, log *slog.Logger) error {
	rings, err := openXen(log)
	if err != nil {
		if o.StubDomain {
			return fmt.Errorf("stub-domain mode needs the Xen devices: %w", err)
		}
		log.Warn("cannot use the Xen devices: serving the Unix socket only", "err", err)
	}
	if rings == nil && o.StubDomain {
		return fmt.Errorf("stub-domain mode (--event %d) needs /dev/xen", o.Event)
	}
	var platform store.Platform
	if rings != nil {
		platform = rings
	}
	storeDomid := o.MasterDomid
	if o.StubDomain && !o.MasterSet {
		storeDomid = store.DomidInvalid
		if rings != nil {
			if id, ok := ownDomid(rings.Info); ok {
				storeDomid = id
			}
		}
		log.Info("running as the xenstore domain", "domid", storeDomid)
	}
	qs := o.Quotas
	ceiling := memoryCeiling(o.MemoryCeiling, debug.SetMemoryLimit(-1))
	if ceiling > 0 {
		log.Info("store memory ceiling", "bytes", ceiling)
	}
	e := store.New(store.Config{
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
	})
	if o.TraceFile != "" {
		f, err := os.OpenFile(o.TraceFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("trace file: %w", err)
		}
		defer f.Close()
		var mu sync.Mutex
		e.SetTrace(func(s string) {
			mu.Lock()
			fmt.Fprintf(f, "%s %s\n", time.Now().Format("2006-01-02 15:04:05.000"), s)
			mu.Unlock()
		}, true)
	}
	if rings == nil {
		log.Info("no /dev/xen: serving the Unix socket only")
	} else {
		rings.SetEngine(e)
		if err := rings.WatchDomains(); err != nil {
			log.Error("domain deaths will not be noticed", "err", err)
		}
		go func() {
			if err := rings.Serve(ctx.Done()); err != nil {
				log.Error("ring transport stopped", "err", err)
			}
		}()
		if o.StubDomain {
			// dom0's kernel granted us its ring (grant ref 1) and an
			// event channel, passed as --event.
			if err := e.IntroduceDomain(o.PrivDomid, uint32(o.Event), 0); err != nil {
				return fmt.Errorf("connecting dom%d's ring (event %d): %w", o.PrivDomid, o.Event, err)
			}
			log.Info("serving the control domain's ring", "domid", o.PrivDomid, "event", o.Event)
		} else if o.NoDomainInit {
			log.Info("not serving dom0's kernel ring (-D)")
		} else if port, err := dom0LocalRing(rings); err != nil {
			log.Warn("dom0's kernel ring not served", "err", err)
		} else if err := e.IntroduceDomain(0, port, 0); err != nil {
			log.Warn("dom0's kernel ring not served", "err", err)
		}
	}
	// The pid file comes before the socket, as in C xenstored: a
	// supervisor that reads it once the socket answers must find it
	// whole. A live daemon on the socket keeps its own pid file.
	if o.PidFile != "" {
		if unixsock.Serving(o.Socket) {
			return fmt.Errorf("a xenstored is already serving %s", o.Socket)
		}
		if err := writePidFile(o.PidFile, os.Getpid()); err != nil {
			return err
		}
		defer os.Remove(o.PidFile)
	}
	ln, err := unixsock.Listen(o.Socket)
	if err == nil {
		testHookListening()
	}
	if err != nil && o.StubDomain && rings != nil {
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
	return unixsock.Serve(ctx, e, ln, log)
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

// writePidFile writes pid to path atomically: a temporary file in the same
// directory renamed over path, so a reader sees no file or a whole one,
// never an empty or partial one.
func writePidFile(path string, pid int) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	_, werr := f.WriteString(strconv.Itoa(pid) + "\n")
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(f.Name(), 0o644)); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("pid file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}
