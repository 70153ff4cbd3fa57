// Command xenstored is the Go xenstore daemon: on a Unix socket in dom0 or
// for tests, and inside the stub domain on Xen rings, where the same
// program is the image's /init (package boot) and goes on serving as PID 1.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/syslog"
	"os"
	"os/signal"
	"syscall"

	"github.com/xsstub/xenstored/daemon"
	"github.com/xsstub/xenstored/internal/gctune"
	"github.com/xsstub/xenstored/stubdom/boot"
)

func main() {
	args := os.Args[1:]
	if boot.IsInit() {
		args = boot.Start()
	}
	o, err := daemon.Parse(args, os.Stderr)
	if errors.Is(err, daemon.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "xenstored: %v\n", err)
		os.Exit(2)
	}
	if o.LiveUpdateCheck {
		if err := daemon.CheckLiveUpdate(os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "xenstored: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if parent, err := daemon.Daemonize(o); parent || err != nil {
		if err != nil {
			fmt.Fprintf(os.Stderr, "xenstored: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	logTo := io.Writer(os.Stderr)
	switch {
	case o.StubDomain:
		logTo = daemon.ConsoleLog() // nobody may drain the console yet
	case daemon.Detached(), daemon.StderrDiscarded():
		// Forked into the background, as C xenstored, or started by C's
		// live update (stderr on /dev/null): log to syslog as C does,
		// where there is one.
		if w, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "xenstored"); err == nil {
			logTo = w
		}
	}
	log := daemon.NewLogger(logTo, o.Verbose)
	if !gctune.Start(gctune.Default) {
		log.Info("GOGC set: collector headroom not tuned")
	}
	signal.Ignore(syscall.SIGHUP) // C xenstored reopens its log on SIGHUP; it must not kill us
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := daemon.Run(ctx, o, log); err != nil {
		log.Error("xenstored failed", "err", err)
		if o.StubDomain { // the log went to the console only
			fmt.Fprintf(os.Stderr, "xenstored: %v\n", err)
		}
		os.Exit(1)
	}
}
