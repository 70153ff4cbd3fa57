package launcher

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Exit statuses, as init-xenstore-domain's: 1 the domain could not be
// started, 2 bad usage, 3 it started but the follow-up (xenstore nodes,
// pid file) failed.
const (
	ExitFail   = 1
	ExitUsage  = 2
	ExitFollow = 3
)

// DrainArg is the hidden first argument of the console-draining child
// process the launcher starts (itself, re-executed).
const DrainArg = "__drain-console"

// Main runs the launcher with args (without the program name) and returns
// the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == DrainArg {
		if err := drainMain(args[1:]); err != nil {
			fmt.Fprintf(stderr, "xenstore-stubdom-launch: console: %v\n", err)
			return ExitFail
		}
		return 0
	}
	o, err := Parse(args)
	if errors.Is(err, ErrHelp) {
		PrintUsage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "xenstore-stubdom-launch: %v\n\n", err)
		PrintUsage(stderr)
		return ExitUsage
	}
	if err := Preflight(o); err != nil {
		fmt.Fprintf(stderr, "xenstore-stubdom-launch: %v\n", err)
		return ExitFail
	}
	return run(o, stdout, stderr)
}

// Preflight checks what can be checked without Xen: the kernel and ramdisk
// files exist, and a kernel meant for PVH has the PVH note.
func Preflight(o Options) error {
	ki, err := InspectKernel(o.Kernel)
	if err != nil {
		return err
	}
	if o.Mode == ModePVH && !ki.HasPVH {
		return fmt.Errorf("kernel %s (%s) has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): "+
			"PVH needs an ELF kernel (vmlinux) built with CONFIG_XEN_PVH; use --pv for a PV boot", o.Kernel, ki.Format)
	}
	if o.Ramdisk != "" {
		f, err := os.Open(o.Ramdisk)
		if err != nil {
			return fmt.Errorf("ramdisk: %w", err)
		}
		f.Close()
	}
	return nil
}
