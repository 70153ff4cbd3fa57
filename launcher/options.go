// Package launcher starts the xenstore stub domain from dom0: a drop-in for
// Xen's init-xenstore-domain (tools/helpers/init-xenstore-domain.c) that
// also boots a Linux stub as PVH. This file parses its options; the
// hypervisor calls live in package launcher/xc and the sequence in
// launch_linux.go. Everything here is pure Go and tested without Xen.
package launcher

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ErrUsage marks a command line the launcher cannot accept (exit status 2).
var ErrUsage = errors.New("usage")

// Mode selects the kind of domain to build.
type Mode int

const (
	// ModeAuto builds PVH when Xen offers HVM with HAP (or shadow), PV
	// otherwise.
	ModeAuto Mode = iota
	// ModePV forces a PV domain (--pv).
	ModePV
	// ModePVH forces a PVH domain (--pvh); it fails where Xen cannot.
	ModePVH
)

func (m Mode) String() string {
	switch m {
	case ModePV:
		return "pv"
	case ModePVH:
		return "pvh"
	}
	return "auto"
}

// Defaults.
const (
	DefaultName       = "Xenstore"
	DefaultPIDFile    = "/var/run/xen/xenstored.pid"
	DefaultConsoleLog = "/var/log/xen/xenstore-domain-console.log"
	DefaultTimeout    = 120 * time.Second
)

// Options are the launcher's settings. The first block mirrors
// init-xenstore-domain's options; the rest are this launcher's own.
type Options struct {
	Kernel  string
	Ramdisk string
	// MemoryMiB is --memory: the domain's size in MiB.
	MemoryMiB int
	// Maxmem is --maxmem as given ("" when absent); ResolveMaxmem turns it
	// into MiB once the host's memory is known.
	Maxmem string
	// Params are the --param values in order (init-xenstore-domain keeps
	// only the last one; here they are all appended, so several --param
	// words from XENSTORE_DOMAIN_ARGS work).
	Params  []string
	Name    string
	Flask   string
	Verbose int // count of -v

	Mode Mode
	// PIDFile is written with "domid:N" once the store answers; it is what
	// xencommons' launch-xenstore waits for.
	PIDFile string
	// ConsoleLog receives the stub's console until xenconsoled binds it:
	// a file, "-" for stdout, or "none".
	ConsoleLog string
	// Timeout bounds the wait for the stub's xenstored to answer.
	Timeout time.Duration
	// NoPrivcmdParam leaves xen_privcmd.unrestricted=1 off the stub's
	// command line.
	NoPrivcmdParam bool
}

// Usage is the help text.
const Usage = `Usage: xenstore-stubdom-launch <options>

Starts the xenstore stub domain (a drop-in for Xen's init-xenstore-domain).

  --kernel <file>      kernel of the xenstore domain (mandatory); ELF with the
                       PVH note for PVH, any Xen PV kernel for PV
  --memory <MiB>       size of the domain in MiB (mandatory)
  --ramdisk <file>     initramfs of the domain
  --param <words>      extra kernel command-line words (repeatable)
  --name <name>        domain name (default Xenstore)
  --maxmem <spec>      maximum size: <MiB> | <a>/<b> of host memory |
                       <MiB>:<a>/<b> (the larger of both)
  --flask <label>      FLASK security label of the domain
  -v[v[v]]             more detail from the domain builder
  --pv / --pvh         force the domain type (default: PVH when Xen has HVM
                       with HAP or shadow paging, else PV)
  --pid-file <file>    written "domid:N" once xenstore answers
                       (default /var/run/xen/xenstored.pid)
  --console-log <file> where the stub's console goes until xenconsoled
                       binds it: a file, "-" (stdout) or "none"
                       (default /var/log/xen/xenstore-domain-console.log)
  --timeout <dur>      how long to wait for the stub's xenstored (default 2m)
  --no-privcmd-param   do not add xen_privcmd.unrestricted=1
`

// valueOpts are the options that take a value.
var valueOpts = map[string]bool{
	"kernel": true, "memory": true, "ramdisk": true, "param": true, "name": true,
	"maxmem": true, "flask": true, "pid-file": true, "console-log": true, "timeout": true,
}

// Parse reads the command line (without the program name) the way
// init-xenstore-domain's getopt_long does: --opt value, --opt=value, -v,
// -vvv, --verbose, "--" ends the options, and unambiguous prefixes of long
// options are accepted. Parse reports help as ErrHelp.
func Parse(args []string) (Options, error) {
	o := Options{Name: DefaultName, PIDFile: DefaultPIDFile, ConsoleLog: DefaultConsoleLog, Timeout: DefaultTimeout}
	var names []string
	for n := range valueOpts {
		names = append(names, n)
	}
	names = append(names, "verbose", "pv", "pvh", "no-privcmd-param", "help")
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			if i+1 < len(args) {
				return o, fmt.Errorf("%w: unexpected argument %q", ErrUsage, args[i+1])
			}
			i = len(args)
			continue
		case strings.HasPrefix(a, "--"):
		case a == "-h":
			return o, ErrHelp
		case strings.HasPrefix(a, "-") && len(a) > 1 && strings.Trim(a[1:], "v") == "":
			o.Verbose += len(a) - 1
			continue
		default:
			return o, fmt.Errorf("%w: unexpected argument %q", ErrUsage, a)
		}
		name, val, hasVal := strings.Cut(a[2:], "=")
		full, err := matchOpt(name, names)
		if err != nil {
			return o, err
		}
		if !valueOpts[full] {
			if hasVal {
				return o, fmt.Errorf("%w: option --%s takes no value", ErrUsage, full)
			}
			switch full {
			case "verbose":
				o.Verbose++
			case "pv":
				o.Mode = ModePV
			case "pvh":
				o.Mode = ModePVH
			case "no-privcmd-param":
				o.NoPrivcmdParam = true
			case "help":
				return o, ErrHelp
			}
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return o, fmt.Errorf("%w: option --%s needs a value", ErrUsage, full)
			}
			i++
			val = args[i]
		}
		if err := o.set(full, val); err != nil {
			return o, err
		}
	}
	return o, o.check()
}

// ErrHelp is returned by Parse for --help and -h.
var ErrHelp = errors.New("help requested")

func matchOpt(name string, names []string) (string, error) {
	var hits []string
	for _, n := range names {
		if n == name {
			return n, nil
		}
		if name != "" && strings.HasPrefix(n, name) {
			hits = append(hits, n)
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], nil
	case 0:
		return "", fmt.Errorf("%w: unknown option --%s", ErrUsage, name)
	}
	return "", fmt.Errorf("%w: option --%s is ambiguous (%s)", ErrUsage, name, strings.Join(hits, ", "))
}

func (o *Options) set(name, val string) error {
	switch name {
	case "kernel":
		o.Kernel = val
	case "ramdisk":
		o.Ramdisk = val
	case "memory":
		n, err := strconv.Atoi(val)
		if err != nil || n <= 0 || n >= 1<<21 {
			return fmt.Errorf("%w: --memory %q: want a size in MiB between 1 and %d", ErrUsage, val, 1<<21-1)
		}
		o.MemoryMiB = n
	case "param":
		if strings.TrimSpace(val) != "" {
			o.Params = append(o.Params, strings.TrimSpace(val))
		}
	case "name":
		if val == "" || strings.ContainsAny(val, "/\x00") {
			return fmt.Errorf("%w: --name %q: want a non-empty name without '/'", ErrUsage, val)
		}
		o.Name = val
	case "maxmem":
		if _, _, _, err := splitMaxmem(val); err != nil {
			return err
		}
		o.Maxmem = val
	case "flask":
		o.Flask = val
	case "pid-file":
		o.PIDFile = val
	case "console-log":
		o.ConsoleLog = val
	case "timeout":
		d, err := time.ParseDuration(val)
		if err != nil {
			n, nerr := strconv.Atoi(val)
			if nerr != nil {
				return fmt.Errorf("%w: --timeout %q: want a duration (90s, 2m) or seconds", ErrUsage, val)
			}
			d = time.Duration(n) * time.Second
		}
		if d <= 0 {
			return fmt.Errorf("%w: --timeout %q must be positive", ErrUsage, val)
		}
		o.Timeout = d
	}
	return nil
}

func (o *Options) check() error {
	var miss []string
	if o.Kernel == "" {
		miss = append(miss, "--kernel")
	}
	if o.MemoryMiB == 0 {
		miss = append(miss, "--memory")
	}
	if len(miss) > 0 {
		return fmt.Errorf("%w: %s missing", ErrUsage, strings.Join(miss, " and "))
	}
	return nil
}

// splitMaxmem parses <MiB> | <a>/<b> | <MiB>:<a>/<b> (either order, as
// init-xenstore-domain accepts). Zero means absent.
func splitMaxmem(s string) (mib, a, b uint64, err error) {
	bad := fmt.Errorf("%w: illegal value for --maxmem: %q (want <MiB>, <a>/<b> or <MiB>:<a>/<b>)", ErrUsage, s)
	if s == "" {
		return 0, 0, 0, bad
	}
	num := func(t string) (uint64, bool) {
		n, err := strconv.ParseUint(t, 10, 32)
		return n, err == nil && n > 0 && n < (1<<31-1)/1024
	}
	parts := strings.Split(s, ":")
	if len(parts) > 2 {
		return 0, 0, 0, bad
	}
	for _, p := range parts {
		if x, y, frac := strings.Cut(p, "/"); frac {
			na, ok1 := num(x)
			nb, ok2 := num(y)
			if !ok1 || !ok2 || a != 0 {
				return 0, 0, 0, bad
			}
			a, b = na, nb
			continue
		}
		n, ok := num(p)
		if !ok || mib != 0 {
			return 0, 0, 0, bad
		}
		mib = n
	}
	return mib, a, b, nil
}

// ResolveMaxmem turns --maxmem into MiB given the host's memory in pages
// of 4 KiB: the larger of the absolute value and the fraction. A result not
// above --memory is 0 (no separate maximum), as in init-xenstore-domain.
func ResolveMaxmem(spec string, memoryMiB int, hostPages uint64) (int, error) {
	if spec == "" {
		return 0, nil
	}
	mib, a, b, err := splitMaxmem(spec)
	if err != nil {
		return 0, err
	}
	var frac uint64
	if a != 0 {
		frac = hostPages * a / (b * 256) // 256 pages per MiB
	}
	if frac >= (1<<31-1)/1024 {
		return 0, fmt.Errorf("%w: --maxmem %q: %d MiB is too large", ErrUsage, spec, frac)
	}
	m := max(mib, frac)
	if int(m) <= memoryMiB {
		return 0, nil
	}
	return int(m), nil
}

// PrintUsage writes Usage to w.
func PrintUsage(w io.Writer) { fmt.Fprint(w, Usage) }
