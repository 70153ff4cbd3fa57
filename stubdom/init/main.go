// Command init is /init of the xenstore stub domain's initramfs.
//
// It mounts /dev, /proc and /sys (and /proc/xen when the kernel has xenfs),
// works out xenstored's arguments from its own argv and /proc/cmdline (see
// package initcfg for the options), and execs xenstored. If that fails it
// logs why and sleeps forever: PID 1 must not exit.
//
// Log lines go to /dev/console opened non-blocking and are dropped when the
// console cannot take them (a Xen console ring that nobody drains yet).
package main

import (
	"os"

	"github.com/xsstub/xenstored/stubdom/init/initcfg"
)

func main() {
	log := &logger{}
	mountAll(log, initcfg.Mounts())
	log.open()
	cmdline := readCmdline(log)
	cfg := configure(log, os.Args[1:], cmdline)
	execXenstored(log, cfg)
	sleepForever()
}
