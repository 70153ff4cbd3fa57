package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
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
	e := store.New(store.Config{
		Quotas:       &qs,
		Logger:       log,
		Platform:     platform,
		PrivDomid:    o.PrivDomid,
		StoreDomid:   storeDomid,
		KeepOrphans:  o.KeepOrphans,
		WriteRate:    o.WriteRate,
		WriteBurst:   o.WriteBurst,
		EventTimeout: o.EventTimeout,
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
	ln, err := unixsock.Listen(o.Socket)
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
	if o.PidFile != "" {
		if err := os.WriteFile(o.PidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			ln.Close()
			return fmt.Errorf("pid file: %w", err)
		}
		defer os.Remove(o.PidFile)
	}
	log.Info("xenstored serving", "socket", o.Socket, "pid", os.Getpid())
	if o.OutputPid {
		fmt.Println(os.Getpid())
	}
	return unixsock.Serve(ctx, e, ln, log)
}
