// Package boot is the stub domain image's init. The image holds one Go
// program, xenstored, as /init: when the kernel starts it as PID 1, it calls
// Start first, which
//
//   - mounts /dev, /proc, /sys (and /proc/xen when the kernel has xenfs);
//   - opens its own non-blocking descriptor of /dev/console for short
//     "xsinit: ..." lines, dropped when the console is full (a Xen console
//     ring that nobody drains yet must never stop the boot);
//   - works out xenstored's arguments from its argv and /proc/cmdline
//     (package initcfg has the options);
//   - sets the Go memory limit from the memory the domain has left
//     (initcfg.MemoryLimit), so that the collector works harder as the
//     store grows instead of the kernel killing PID 1;
//
// and returns the arguments; xenstored then runs in the same process, which
// stays PID 1 (its exit panics the kernel). One program instead of an init
// that execs xenstored keeps a second Go binary out of the domain's memory.
// With xenstored.path=P on the command line Start execs P instead.
package boot

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/xsstub/xenstored/stubdom/boot/initcfg"
)

// liveUpdateEnv marks a process executed by a live update (daemon package):
// it is PID 1 too, but must not redo the boot.
const liveUpdateEnv = "XENSTORED_LIVE_UPDATE_FD"

// IsInit reports whether this process is the image's init: PID 1, started
// as /init by the kernel, not by a live update.
func IsInit() bool {
	return os.Getpid() == 1 && filepath.Base(os.Args[0]) == "init" && os.Getenv(liveUpdateEnv) == ""
}

// Start does init's work and returns xenstored's arguments (without the
// program name). When the command line names another program it execs it
// and, if that fails, logs why and never returns: PID 1 must not exit.
func Start() []string {
	log := &logger{}
	mountAll(log, initcfg.Mounts())
	log.open()
	log.printf("uptime %ss: init", uptime())
	cmdline := readCmdline(log)
	cfg := configure(log, os.Args[1:], cmdline)
	setMemoryLimit(log)
	argv := cfg.Argv()
	if cfg.Path != initcfg.DefaultXenstored {
		execOther(log, cfg.Path, argv)
		sleepForever()
	}
	log.printf("uptime %ss: xenstored %q", uptime(), argv[1:])
	return argv[1:]
}

func readCmdline(log *logger) string {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		log.printf("reading /proc/cmdline: %v", err)
		return ""
	}
	return strings.TrimSpace(string(b))
}

// configure parses the options and logs what init found.
func configure(log *logger, args []string, cmdline string) initcfg.Config {
	log.printf("argv %q", args)
	log.printf("cmdline %q", cmdline)
	cfg, warns := initcfg.Parse(args, cmdline)
	for _, w := range warns {
		log.printf("warning: %s", w)
	}
	if len(cfg.Dropped) > 0 {
		log.printf("not passed on: %q", cfg.Dropped)
	}
	if !cfg.HaveEvent {
		log.printf("no --event N: dom0less, xenstored introduces the domains Xen built")
	}
	if hv := readTrim("/sys/hypervisor/type"); hv == "xen" {
		log.printf("xen guest, type %s", readTrim("/sys/hypervisor/guest_type"))
		for _, w := range initcfg.PrivcmdWarnings(cmdline) {
			log.printf("warning: %s", w)
		}
	} else {
		log.printf("not running on xen (/sys/hypervisor/type %q)", hv)
	}
	return cfg
}

func readTrim(name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func uptime() string {
	s, _, _ := strings.Cut(readTrim("/proc/uptime"), " ")
	return s
}
