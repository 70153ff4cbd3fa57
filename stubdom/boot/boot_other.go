//go:build !linux

package boot

import (
	"runtime"
	"time"

	"github.com/xsstub/xenstored/stubdom/boot/initcfg"
)

// The stub domain runs Linux; elsewhere init only logs what it would do.

func mountAll(log *logger, mounts []initcfg.Mount) {
	log.printf("mounts need linux, not %s", runtime.GOOS)
}

func openConsole() func([]byte) { return func([]byte) {} }

func execOther(log *logger, path string, argv []string) {
	log.printf("would exec %q (exec needs linux)", argv)
}

func setMemoryLimit(log *logger) {}

func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}
