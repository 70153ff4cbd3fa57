// Command pvkernel writes the PV-only variant of the stub's kernel: the same
// vmlinux with its Xen PVH entry note disabled (kernel.DisablePVH), so that
// Xen's own init-xenstore-domain (4.18 and later: PVH first, PV as the
// fallback) boots it as PV on hosts with HVM too.
//
//	go run ./build/pvkernel IN OUT
package main

import (
	"fmt"
	"os"

	"github.com/xsstub/xenstored/kernel"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: pvkernel IN OUT")
		os.Exit(2)
	}
	in, out := os.Args[1], os.Args[2]
	data, err := os.ReadFile(in)
	if err != nil {
		fail(err)
	}
	pv, n, err := kernel.DisablePVH(data)
	if err != nil {
		fail(fmt.Errorf("%s: %w", in, err))
	}
	if err := os.WriteFile(out+".tmp", pv, 0o755); err != nil {
		fail(err)
	}
	if err := os.Rename(out+".tmp", out); err != nil {
		fail(err)
	}
	fmt.Printf("== kernel: %s: PV-only variant of %s (%d PVH note(s) renamed Xen -> %s)\n", out, in, n, kernel.DisabledNoteName)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "pvkernel:", err)
	os.Exit(1)
}
