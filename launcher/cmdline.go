package launcher

import (
	"fmt"
	"strings"
)

// PrivcmdParam lets the stub's /dev/xen/privcmd issue hypercalls: Linux
// refuses them in a domain other than dom0 without it. privcmd is built
// into the stub's kernel, so the parameter carries the built-in module
// name xen_privcmd (kernel/README.md).
const PrivcmdParam = "xen_privcmd.unrestricted=1"

// MaxCmdline is the longest command line the domain builder passes whole
// (the PV start_info's MAX_GUEST_CMDLINE is 1024 including the NUL).
const MaxCmdline = 1023

// Cmdline assembles the stub's kernel command line: "--event PORT" first
// (Linux hands it to /init, which gives it to xenstored), then
// xen_privcmd.unrestricted=1 unless disabled or already given, then the
// --param values in order.
func Cmdline(port uint32, params []string, privcmd bool) (string, error) {
	words := []string{"--event", fmt.Sprint(port)}
	if privcmd {
		have := false
		for _, p := range params {
			for _, w := range strings.Fields(p) {
				if k, _, _ := strings.Cut(w, "="); k == "xen_privcmd.unrestricted" || k == "xen-privcmd.unrestricted" {
					have = true
				}
			}
		}
		if !have {
			words = append(words, PrivcmdParam)
		}
	}
	words = append(words, params...)
	s := strings.Join(words, " ")
	if len(s) > MaxCmdline {
		return "", fmt.Errorf("kernel command line is %d bytes, more than %d: shorten --param", len(s), MaxCmdline)
	}
	return s, nil
}
