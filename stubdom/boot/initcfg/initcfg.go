// Package initcfg is the logic of the stub domain's /init: it turns the
// kernel command line and init's own arguments into the command that starts
// xenstored, and says what init should mount first.
//
// # Where options come from
//
// Linux hands bare command-line words it does not know to /init as
// arguments (so Xen's init-xenstore-domain, which puts "--event N" in the
// domain's command line, reaches init as argv "--event", "N"). Words of the
// form name=value become init's environment, and words whose name contains a
// dot (module parameters such as "xenstored.path=…") reach init only through
// /proc/cmdline. Parse therefore reads both argv and /proc/cmdline.
//
// # Options
//
//	--event N, --event=N   event channel of dom0's xenstore ring (argv or cmdline)
//	xenstored.event=N      the same
//	xenstored.path=P       program to exec (default /bin/xenstored)
//	xenstored.arg=A        append A verbatim to xenstored's arguments (repeatable;
//	                       quote to include spaces: xenstored.arg="-x y")
//	xenstored.NAME=VALUE   append --NAME=VALUE to xenstored's arguments
//	xenstored.NAME         append --NAME
//	--internal-db, -I      dropped: the C xenstored's in-memory database flag
//	                       that init-xenstore-domain adds; always true here
//
// Any other word in argv is passed to xenstored verbatim, in order, after the
// arguments above. Words after "--" on the kernel command line reach init as
// argv too, so "-- --flag value" is a way to pass arbitrary arguments.
//
// The resulting command is: PATH --stubdom [--event N] [--NAME[=VALUE]...]
// [xenstored.arg values...] [other argv words...].
package initcfg

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultXenstored is the program init runs unless xenstored.path says
// otherwise: the image's own xenstored (a link to /init), which then runs
// in init's process instead of being executed.
const DefaultXenstored = "/bin/xenstored"

// PrivcmdParam is the kernel parameter that lets /dev/xen/privcmd issue
// hypercalls in a domain that is not dom0. privcmd is built into the stub
// kernel, where its parameters are prefixed by the module name xen_privcmd
// ("xen-privcmd" works too: the kernel treats - and _ alike).
const PrivcmdParam = "xen_privcmd.unrestricted"

// Config is what init does after mounting.
type Config struct {
	// Path is the program to exec.
	Path string
	// Event is dom0's xenstore event channel; HaveEvent says whether one
	// was given.
	Event     uint32
	HaveEvent bool
	// Flags are --NAME[=VALUE] arguments from xenstored.NAME[=VALUE].
	Flags []string
	// Extra are xenstored.arg values, then the remaining argv words.
	Extra []string
	// Dropped are argv words init recognised and did not pass on.
	Dropped []string
}

// Argv is the full argument vector for exec, program name first.
func (c *Config) Argv() []string {
	argv := []string{c.Path, "--stubdom"}
	if c.HaveEvent {
		argv = append(argv, "--event", strconv.FormatUint(uint64(c.Event), 10))
	}
	argv = append(argv, c.Flags...)
	return append(argv, c.Extra...)
}

// Parse builds the Config from init's arguments (os.Args[1:]) and the
// contents of /proc/cmdline. Problems that do not stop init (a malformed
// event channel, say) come back as warnings, and the option is ignored.
func Parse(args []string, cmdline string) (Config, []string) {
	c := Config{Path: DefaultXenstored}
	var warns []string
	setEvent := func(v, from string) {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			warns = append(warns, fmt.Sprintf("ignoring %s event channel %q: not a number", from, v))
			return
		}
		if c.HaveEvent && c.Event != uint32(n) {
			warns = append(warns, fmt.Sprintf("%s event channel %d ignored: already %d", from, n, c.Event))
			return
		}
		c.Event, c.HaveEvent = uint32(n), true
	}

	// init's own arguments.
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--event" || a == "-e":
			if i+1 >= len(args) {
				warns = append(warns, a+" without a value")
				continue
			}
			i++
			setEvent(args[i], "argv")
		case strings.HasPrefix(a, "--event="):
			setEvent(strings.TrimPrefix(a, "--event="), "argv")
		case a == "--internal-db" || a == "-I":
			c.Dropped = append(c.Dropped, a)
		default:
			rest = append(rest, a)
		}
	}

	// The kernel command line. Words before "--" are the kernel's; those
	// after it are init's argv, already handled above.
	words := Split(cmdline)
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w == "--" {
			break
		}
		name, value, hasValue := strings.Cut(w, "=")
		switch {
		case name == "--event" && hasValue:
			// --event=N reaches init as an environment variable, not argv.
			setEvent(value, "cmdline")
		case name == "--event" && !c.HaveEvent && i+1 < len(words):
			// Normally also in argv; this covers an init started without it.
			i++
			setEvent(words[i], "cmdline")
		case strings.HasPrefix(name, "xenstored."):
			key := strings.TrimPrefix(name, "xenstored.")
			switch {
			case key == "":
				warns = append(warns, fmt.Sprintf("ignoring %q: no option name", w))
			case key == "event":
				setEvent(value, "xenstored.event")
			case key == "path":
				if value == "" {
					warns = append(warns, "ignoring empty xenstored.path")
				} else {
					c.Path = value
				}
			case key == "arg":
				if hasValue {
					c.Extra = append(c.Extra, value)
				}
			case hasValue:
				c.Flags = append(c.Flags, "--"+key+"="+value)
			default:
				c.Flags = append(c.Flags, "--"+key)
			}
		}
	}
	c.Extra = append(c.Extra, rest...)
	return c, warns
}

// Split splits a kernel command line into words the way the kernel does:
// at spaces, except inside double quotes, which are removed.
func Split(cmdline string) []string {
	var words []string
	var b strings.Builder
	in, quoted := false, false
	for _, r := range cmdline {
		switch {
		case r == '"':
			quoted = !quoted
			in = true
		case !quoted && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			if in {
				words = append(words, b.String())
				b.Reset()
				in = false
			}
		default:
			b.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, b.String())
	}
	return words
}

// PrivcmdWarnings checks the command line of a domain that runs under Xen for
// the privcmd parameter xenstored needs, and for names of it that a
// built-in privcmd does not understand.
func PrivcmdWarnings(cmdline string) []string {
	var warns []string
	found := false
	for _, w := range Split(cmdline) {
		if w == "--" {
			break
		}
		name, value, _ := strings.Cut(w, "=")
		switch strings.ReplaceAll(name, "-", "_") {
		case PrivcmdParam:
			found = true
			if on, ok := kernelBool(w, value); !ok || !on {
				warns = append(warns, fmt.Sprintf("%s: privcmd stays restricted; hypercalls from xenstored will block", w))
			}
		case "privcmd.unrestricted":
			warns = append(warns, fmt.Sprintf("%s has no effect on this kernel (privcmd is built in): use %s=1", w, PrivcmdParam))
		}
	}
	if !found {
		warns = append(warns, fmt.Sprintf("no %s=1 on the command line: privcmd hypercalls will block in a domain that is not dom0", PrivcmdParam))
	}
	return warns
}

// kernelBool reads a bool kernel parameter as the kernel does (kstrtobool
// looks at the first one or two characters); a bare name without "=" means
// true.
func kernelBool(word, value string) (on, ok bool) {
	if !strings.Contains(word, "=") {
		return true, true
	}
	if value == "" {
		return false, false
	}
	switch value[0] {
	case 'y', 'Y', 't', 'T', '1':
		return true, true
	case 'n', 'N', 'f', 'F', '0':
		return false, true
	case 'o', 'O':
		if len(value) > 1 {
			switch value[1] {
			case 'n', 'N':
				return true, true
			case 'f', 'F':
				return false, true
			}
		}
	}
	return false, false
}

// Mount is one filesystem init mounts before starting xenstored.
type Mount struct {
	Source, Target, FSType string
	// Required says a failure is an error. Init goes on either way:
	// xenstored's own error then tells what was missing.
	Required bool
}

// Mounts lists init's mounts, in order.
func Mounts() []Mount {
	return []Mount{
		{Source: "devtmpfs", Target: "/dev", FSType: "devtmpfs", Required: true},
		{Source: "proc", Target: "/proc", FSType: "proc", Required: true},
		{Source: "sysfs", Target: "/sys", FSType: "sysfs", Required: true},
		// Only under Xen, and only with CONFIG_XENFS.
		{Source: "xenfs", Target: "/proc/xen", FSType: "xenfs"},
	}
}

// MemoryLimit is the Go memory limit for xenstored in the stub domain: the
// memory the domain has left when init runs (MemAvailable: free pages and
// reclaimable caches; the kernel, its allocations so far and the
// initramfs's files, which stay in memory, are gone from it already), less
// a reserve for what the kernel still allocates for xenstored as it serves
// (page tables, a page per mapped guest ring, kernel stacks): an eighth, at
// least 1 MiB. MemTotal would count memory the process can never have, and
// a limit above what is there lets the heap grow until the kernel kills
// PID 1. why says where the number came from, or why there is none.
func MemoryLimit(meminfo string) (limit int64, why string, ok bool) {
	avail, found := meminfoKB(meminfo, "MemAvailable:")
	if !found {
		return 0, "no MemAvailable in /proc/meminfo", false
	}
	reserve := max(avail/8, 1<<20)
	if avail-reserve < 1<<20 {
		return 0, fmt.Sprintf("only %d bytes available", avail), false
	}
	return avail - reserve, fmt.Sprintf("MemAvailable %d bytes less %d for the kernel", avail, reserve), true
}

// meminfoKB is the value of a "Name: N kB" line of /proc/meminfo in bytes.
func meminfoKB(meminfo, name string) (int64, bool) {
	for _, line := range strings.Split(meminfo, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != name || f[2] != "kB" {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || kb <= 0 || kb > 1<<40 {
			return 0, false
		}
		return kb * 1024, true
	}
	return 0, false
}
