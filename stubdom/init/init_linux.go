package main

import (
	"errors"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/xsstub/xenstored/stubdom/init/initcfg"
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

func execXenstored(log *logger, cfg initcfg.Config) {
	setMemoryLimit(log)
	argv := cfg.Argv()
	log.printf("uptime %ss: exec %q", uptime(), argv)
	err := syscall.Exec(cfg.Path, argv, os.Environ())
	log.printf("error: exec %s: %v", cfg.Path, err)
}

// setMemoryLimit gives xenstored a GOMEMLIMIT from the domain's memory,
// unless one is set already (a GOMEMLIMIT=... word on the kernel command
// line reaches init's environment).
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
	limit, ok := initcfg.MemoryLimit(string(meminfo))
	if !ok {
		log.printf("no MemTotal in /proc/meminfo: xenstored runs without a memory limit")
		return
	}
	os.Setenv("GOMEMLIMIT", strconv.FormatInt(limit, 10))
	log.printf("GOMEMLIMIT=%d (3/4 of MemTotal)", limit)
}

func uptime() string {
	s := readTrim("/proc/uptime")
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			return s[:i]
		}
	}
	return s
}

// sleepForever keeps PID 1 alive: its exit would panic the kernel.
func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}
