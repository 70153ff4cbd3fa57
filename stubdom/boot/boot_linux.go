package boot

import (
	"errors"
	"os"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/xsstub/xenstored/stubdom/boot/initcfg"
)

func mountAll(log *logger, mounts []initcfg.Mount) {
	for _, m := range mounts {
		if err := os.MkdirAll(m.Target, 0o755); err != nil && m.Required {
			log.printf("error: mkdir %s: %v", m.Target, err)
		}
		err := syscall.Mount(m.Source, m.Target, m.FSType, syscall.MS_NOSUID|syscall.MS_NOEXEC, "")
		switch {
		case err == nil:
			log.printf("mounted %s on %s", m.FSType, m.Target)
		case errors.Is(err, syscall.EBUSY):
			log.printf("%s already mounted on %s", m.FSType, m.Target)
		case m.Required:
			log.printf("error: mount %s on %s: %v", m.FSType, m.Target, err)
		default:
			log.printf("no %s on %s: %v", m.FSType, m.Target, err)
		}
	}
}

// openConsole opens its own non-blocking descriptor for /dev/console, so that
// a full console drops init's lines instead of stopping init; fds 0-2, which
// xenstored inherits, keep their mode. Without a console lines go nowhere.
func openConsole() func([]byte) {
	fd, err := syscall.Open("/dev/console", syscall.O_WRONLY|syscall.O_NOCTTY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		fd = -1
	}
	return func(p []byte) {
		if fd < 0 {
			return
		}
		for len(p) > 0 {
			n, err := syscall.Write(fd, p)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil || n <= 0 {
				return // EAGAIN: console full; drop the rest
			}
			p = p[n:]
		}
	}
}

// execOther replaces this process by the program xenstored.path named.
func execOther(log *logger, path string, argv []string) {
	log.printf("uptime %ss: exec %q", uptime(), argv)
	err := syscall.Exec(path, argv, os.Environ())
	log.printf("error: exec %s: %v", path, err)
}

// setMemoryLimit sets the Go memory limit from the memory the domain has
// left, unless GOMEMLIMIT is set already (a GOMEMLIMIT=... word on the
// kernel command line reaches init's environment). It goes into the
// environment too, so that a live update's new program keeps it.
func setMemoryLimit(log *logger) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		log.printf("GOMEMLIMIT=%s (from the command line)", v)
		return
	}
	meminfo, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		log.printf("no /proc/meminfo (%v): xenstored runs without a memory limit", err)
		return
	}
	limit, why, ok := initcfg.MemoryLimit(string(meminfo))
	if !ok {
		log.printf("%s: xenstored runs without a memory limit", why)
		return
	}
	os.Setenv("GOMEMLIMIT", strconv.FormatInt(limit, 10))
	debug.SetMemoryLimit(limit)
	log.printf("GOMEMLIMIT=%d (%s)", limit, why)
}

// sleepForever keeps PID 1 alive: its exit would panic the kernel.
func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}
