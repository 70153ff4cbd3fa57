package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/xsstub/xenstored/stubdom/init/initcfg"
)

// maxLine keeps every log line short, so that one write fits a console ring.
const maxLine = 160

// logger writes short lines to the console without ever blocking. Lines
// logged before the console is open are kept and written by open.
type logger struct {
	write   func(p []byte) // nil until open
	pending []string
}

func (l *logger) printf(format string, args ...any) {
	line := "xsinit: " + fmt.Sprintf(format, args...)
	line = strings.ReplaceAll(line, "\n", " ")
	if len(line) > maxLine {
		line = line[:maxLine-3] + "..."
	}
	line += "\n"
	if l.write == nil {
		l.pending = append(l.pending, line)
		return
	}
	l.write([]byte(line))
}

func (l *logger) open() {
	l.write = openConsole()
	for _, line := range l.pending {
		l.write([]byte(line))
	}
	l.pending = nil
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
		log.printf("warning: no --event N: xenstored gets no event channel for dom0's ring")
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
