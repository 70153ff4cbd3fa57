//go:build !linux

package main

import (
	"runtime"
	"time"

	"github.com/xsstub/xenstored/stubdom/init/initcfg"
)

// The stub domain runs Linux; elsewhere init only logs what it would do.

func mountAll(log *logger, mounts []initcfg.Mount) {
	log.printf("mounts need linux, not %s", runtime.GOOS)
}

func openConsole() func([]byte) { return func([]byte) {} }

func execXenstored(log *logger, cfg initcfg.Config) {
	log.printf("would exec %q (exec needs linux)", cfg.Argv())
}

func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}
