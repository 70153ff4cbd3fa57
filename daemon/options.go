// Package daemon is the xenstored program as a library: its command line
// (in the style of C xenstored), and running the store on a Unix socket
// and, where Xen is present, on domains' rings.
package daemon

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/domains"
)

// Options is the parsed command line.
type Options struct {
	NoFork      bool
	PidFile     string
	TraceFile   string
	Verbose     bool
	Socket      string
	KeepOrphans bool
	Quotas      store.Quotas
	MasterDomid uint32 // the domain this store runs in (-m)
	MasterSet   bool   // -m was given
	PrivDomid   uint32 // the control domain (-p)
	PrivSet     bool   // -p was given
	Event       int    // dom0's event channel when running as a stub domain (-e/--event)
	WriteRate   int    // changes per second per unprivileged domain (XSA-206); <0 disables
	WriteBurst  int
	// StubDomain: the store runs in its own domain. With Event it serves
	// the control domain through the ring that domain's kernel granted;
	// without (Event < 0: dom0less, no control domain to start us) it
	// introduces the domains that exist, as C xenstored 4.21+ does.
	StubDomain bool
	// XenInterface is the Xen release whose interface to use whatever the
	// hypervisor reports (--xen-interface); zero: the reported one.
	XenInterface xen.Version
	// MemoryCeiling is the store-wide memory ceiling in bytes (see
	// store.Config.MemoryCeiling): 0 derives it from the Go memory limit
	// (GOMEMLIMIT), negative disables it.
	MemoryCeiling int64

	// C xenstored options kept for drop-in use.
	NoDomainInit bool          // -D: do not serve dom0's kernel ring
	OutputPid    bool          // -P: print the pid on stdout once serving
	EventTimeout time.Duration // -w watch-event=<s>: 0 default, <0 never

	// LiveUpdateCheck (--live-update-check): parse the command line, read
	// the live-update state handed over, say so and exit; a live update
	// runs the new binary so before it executes it.
	LiveUpdateCheck bool
	// LiveUpdate (-U, --live-update): C xenstored executed us by live
	// update and left its state in its run directory (cStateFile).
	LiveUpdate bool

	// Args are the arguments Parse was given, which a live update passes
	// to the new daemon unless told otherwise (-c). In the stub they are
	// what the image's init built from the kernel command line, not the
	// process's argv.
	Args []string
}

// ignoredFlag accepts a C xenstored option that has no meaning here (-R,
// -I[off], --trace-control=...), with or without a value.
type ignoredFlag struct{}

func (ignoredFlag) String() string   { return "" }
func (ignoredFlag) Set(string) error { return nil }
func (ignoredFlag) IsBoolFlag() bool { return true }

// timeoutFlag parses -w/--timeout watch-event=<seconds>.
type timeoutFlag struct{ d *time.Duration }

func (timeoutFlag) String() string { return "" }

func (f timeoutFlag) Set(s string) error {
	what, val, found := strings.Cut(s, "=")
	if !found || what != "watch-event" {
		return fmt.Errorf("want watch-event=<seconds>, got %q", s)
	}
	v, err := strconv.Atoi(val)
	if err != nil || v < 0 {
		return fmt.Errorf("bad timeout %q", val)
	}
	*f.d = time.Duration(v) * time.Second
	if v == 0 {
		*f.d = -1 // C: 0 disables the timeout
	}
	return nil
}

// DefaultSocket is where C xenstored listens: $XENSTORED_PATH if set, else
// $XENSTORED_RUNDIR/socket, /run/xenstored/socket by default (the same
// variables the clients read, so both sides agree).
func DefaultSocket() string {
	if p := os.Getenv("XENSTORED_PATH"); p != "" {
		return p
	}
	dir := os.Getenv("XENSTORED_RUNDIR")
	if dir == "" {
		dir = "/run/xenstored"
	}
	return filepath.Join(dir, "socket")
}

// quotaFlag parses repeated -Q/-q name=value arguments.
type quotaFlag struct {
	q    *store.Quotas
	soft bool
}

func (f quotaFlag) String() string { return "" }

func (f quotaFlag) Set(s string) error {
	name, val, found := strings.Cut(s, "=")
	if !found {
		return fmt.Errorf("want <quota>=<value>, got %q", s)
	}
	v, err := strconv.Atoi(val)
	if err != nil || v < 0 {
		return fmt.Errorf("quota %s: bad value %q", name, val)
	}
	switch name { // C xenstored's spellings
	case "path-length":
		name = "path-max"
	case "outstanding":
		name = "maxoutstanding"
	}
	if err := f.q.Set(name, v, f.soft); err != nil {
		return fmt.Errorf("%v (known: %s)", err, strings.Join(store.QuotaNames(), ", "))
	}
	return nil
}

// oneQuota sets a single hard quota from a dedicated flag (-E, -S, ...).
type oneQuota struct {
	q    *store.Quotas
	name string
}

func (f oneQuota) String() string { return "" }

func (f oneQuota) Set(s string) error {
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return fmt.Errorf("bad number %q", s)
	}
	return f.q.Set(f.name, v, false)
}

// optString is a string option that tells "given empty" from "not given".
type optString struct {
	v   string
	set bool
}

func (s *optString) String() string { return s.v }

func (s *optString) Set(v string) error {
	s.v, s.set = v, true
	return nil
}

// ErrHelp is returned when the user asked for usage.
var ErrHelp = flag.ErrHelp

// Parse parses args (without the program name). Errors carry a message fit
// for the user; the caller exits with status 2.
func Parse(args []string, stderr io.Writer) (*Options, error) {
	o := &Options{Quotas: store.DefaultQuotas(), Socket: DefaultSocket(), Event: -1,
		WriteRate: store.DefaultWriteRate, WriteBurst: store.DefaultWriteBurst}
	fs := flag.NewFlagSet("xenstored", flag.ContinueOnError)
	fs.SetOutput(stderr)
	boolVar := func(p *bool, short, long, usage string) {
		fs.BoolVar(p, short, false, usage)
		fs.BoolVar(p, long, false, usage)
	}
	strVar := func(p *string, short, long, usage string) {
		fs.StringVar(p, short, *p, usage)
		fs.StringVar(p, long, *p, usage)
	}
	valVar := func(v flag.Value, short, long, usage string) {
		if short != "" {
			fs.Var(v, short, usage)
		}
		fs.Var(v, long, usage)
	}
	boolVar(&o.NoFork, "N", "no-fork", "stay in the foreground")
	strVar(&o.PidFile, "F", "pid-file", "write the daemon's pid to `file`")
	strVar(&o.TraceFile, "T", "trace-file", "log requests and replies to `file`")
	boolVar(&o.Verbose, "V", "verbose", "log more")
	boolVar(&o.KeepOrphans, "K", "keep-orphans", "keep nodes of dead domains (a security risk)")
	fs.StringVar(&o.Socket, "socket", o.Socket, "Unix socket `path` ($XENSTORED_PATH, else $XENSTORED_RUNDIR/socket)")
	fs.IntVar(&o.WriteRate, "write-rate", o.WriteRate, "changes per second an unprivileged domain may make (-1: unlimited)")
	fs.IntVar(&o.WriteBurst, "write-burst", o.WriteBurst, "burst of changes allowed above the write rate")
	fs.Int64Var(&o.MemoryCeiling, "memory-ceiling", 0, "`bytes` the store may hold before guests' changes get ENOMEM (0: half of GOMEMLIMIT; -1: none)")
	valVar(oneQuota{&o.Quotas, "nodes"}, "E", "entry-nb", "nodes per domain")
	valVar(oneQuota{&o.Quotas, "node-size"}, "S", "entry-size", "max. node size in bytes")
	valVar(oneQuota{&o.Quotas, "watches"}, "W", "watch-nb", "watches per domain")
	valVar(oneQuota{&o.Quotas, "transactions"}, "t", "transaction", "transactions per domain")
	valVar(oneQuota{&o.Quotas, "node-permissions"}, "A", "perm-nb", "permissions per node")
	valVar(oneQuota{&o.Quotas, "path-max"}, "M", "path-max", "max. relative path length")
	valVar(quotaFlag{&o.Quotas, false}, "Q", "quota", "hard quota `name=value` (repeatable)")
	valVar(quotaFlag{&o.Quotas, true}, "q", "quota-soft", "soft quota `name=value` (repeatable)")
	var master, priv, event string
	var xenIf optString
	fs.Var(&xenIf, "xen-interface", "use Xen `release`'s interface (e.g. 4.22) on a hypervisor newer than this build knows")
	strVar(&master, "m", "master-domid", "`domid` this store runs in")
	strVar(&priv, "p", "priv-domid", "`domid` of the control domain")
	strVar(&event, "e", "event", "dom0's event channel `port` (stub-domain mode)")
	boolVar(&o.StubDomain, "s", "stubdom", "run as the xenstore domain (without --event: dom0less, introduce the domains that exist)")
	boolVar(&o.NoDomainInit, "D", "no-domain-init", "do not serve dom0's own kernel ring")
	boolVar(&o.OutputPid, "P", "output-pid", "print the pid on stdout once serving")
	valVar(timeoutFlag{&o.EventTimeout}, "w", "timeout", "watch-event=`seconds` a watcher may leave events unread (0: forever)")
	for _, name := range []string{"R", "no-recovery", "I", "internal-db", "trace-control"} {
		fs.Var(ignoredFlag{}, name, "accepted for compatibility with C xenstored; no effect")
	}
	boolVar(&o.LiveUpdate, "U", "live-update", "take over from the C xenstored that executed us by live update (its state in $XENSTORED_RUNDIR/state_dump)")
	fs.BoolVar(&o.LiveUpdateCheck, "live-update-check", false, "only check the command line and the live-update state handed over, then exit (run by live update)")
	var help bool
	boolVar(&help, "H", "help", "print this help")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: xenstored [options]\n\nA xenstore daemon. Options:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if help {
		fs.Usage()
		return nil, ErrHelp
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, d := range []struct {
		s   string
		dst *uint32
		nm  string
	}{{master, &o.MasterDomid, "master-domid"}, {priv, &o.PrivDomid, "priv-domid"}} {
		if d.s == "" {
			continue
		}
		v, err := strconv.ParseUint(d.s, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("--%s: bad domid %q", d.nm, d.s)
		}
		*d.dst = uint32(v)
		o.MasterSet = o.MasterSet || d.nm == "master-domid"
		o.PrivSet = o.PrivSet || d.nm == "priv-domid"
	}
	if event != "" {
		v, err := strconv.ParseUint(event, 10, 31)
		if err != nil || v == 0 {
			return nil, fmt.Errorf("--event: bad port %q", event)
		}
		o.Event = int(v)
		o.StubDomain = true
	}
	if xenIf.set {
		v, err := domains.ParseVersion(xenIf.v)
		if err != nil {
			return nil, fmt.Errorf("--xen-interface: %w", err)
		}
		if _, ok := domains.Lookup(v); !ok {
			return nil, fmt.Errorf("--xen-interface: %w: %v", domains.ErrUnknownRelease, v)
		}
		o.XenInterface = v
	}
	if o.MemoryCeiling < -1 {
		return nil, fmt.Errorf("--memory-ceiling: %d bytes (-1: none)", o.MemoryCeiling)
	}
	o.Args = slices.Clone(args)
	return o, nil
}
