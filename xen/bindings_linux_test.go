package xen_test

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/evtchn"
	"github.com/xsstub/xenstored/xen/gntdev"
	"github.com/xsstub/xenstored/xen/privcmd"
	"github.com/xsstub/xenstored/xen/xenbus"
)

// TestOpenMissing: every binding's missing device is xen.ErrNoDevice (what
// the daemon takes for "not on Xen"), keeps the errno and says which
// binding failed.
func TestOpenMissing(t *testing.T) {
	for _, tt := range []struct {
		binding string
		open    func(path string) error
	}{
		{"evtchn", func(p string) error { _, err := evtchn.OpenPath(p); return err }},
		{"gntdev", func(p string) error { _, err := gntdev.OpenPath(p); return err }},
		{"privcmd", func(p string) error { _, err := privcmd.OpenPath(p); return err }},
		{"xenbus", func(p string) error { _, err := xenbus.OpenBackendPath(p); return err }},
	} {
		t.Run(tt.binding, func(t *testing.T) {
			err := tt.open(t.TempDir() + "/missing")
			if !errors.Is(err, xen.ErrNoDevice) || !errors.Is(err, syscall.ENOENT) {
				t.Fatalf("err = %v, want ErrNoDevice and ENOENT", err)
			}
			if !strings.HasPrefix(err.Error(), tt.binding+": open ") {
				t.Errorf("error lacks context: %v", err)
			}
		})
	}
}
