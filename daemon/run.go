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
	qs := o.Quotas
	e := store.New(store.Config{
		Quotas:      &qs,
		Logger:      log,
		PrivDomid:   o.PrivDomid,
		StoreDomid:  o.MasterDomid,
		KeepOrphans: o.KeepOrphans,
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
	if o.StubDomain {
		return fmt.Errorf("stub-domain mode (--event %d): this build has no Xen ring transport yet", o.Event)
	}
	if _, err := os.Stat("/dev/xen"); err != nil {
		log.Info("no /dev/xen: serving the Unix socket only")
	} else {
		log.Warn("/dev/xen present but the ring transport is not built in: serving the Unix socket only")
	}
	ln, err := unixsock.Listen(o.Socket)
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
	return unixsock.Serve(ctx, e, ln, log)
}
