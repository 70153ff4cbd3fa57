package evtchn

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestErrorPaths runs the calls against /dev/null, which rejects every
// ioctl: each error must carry the operation and the errno.
func TestErrorPaths(t *testing.T) {
	d, err := OpenPath("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"bind interdomain", func() error { _, err := d.BindInterdomain(5, 9); return err }, "bind interdomain dom5 port 9"},
		{"bind virq", func() error { _, err := d.BindVIRQ(3); return err }, "bind virq 3"},
		{"bind unbound", func() error { _, err := d.BindUnboundPort(4); return err }, "bind unbound port for dom4"},
		{"notify", func() error { return d.Notify(11) }, "notify port 11"},
		{"unbind", func() error { return d.Unbind(12) }, "unbind port 12"},
		{"reset", d.Reset, "reset"},
	}
	for _, tt := range tests {
		err := tt.call()
		if !errors.Is(err, syscall.ENOTTY) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want ENOTTY mentioning %q", tt.name, err, tt.want)
		}
	}
	if err := d.Unmask(1); err != nil { // /dev/null swallows writes
		t.Errorf("Unmask on /dev/null: %v", err)
	}
	if p, err := d.Pending(); err != nil || len(p) != 0 {
		t.Errorf("Pending on /dev/null = %v, %v", p, err)
	}
	if err := d.Close(); err != nil {
		t.Error(err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestRealDevice exercises the real device when running on Xen.
func TestRealDevice(t *testing.T) {
	if _, err := os.Stat(DevicePath); err != nil {
		t.Skip("no " + DevicePath + ": not on Xen")
	}
	d, err := Open()
	if err != nil {
		t.Skipf("cannot open %s: %v", DevicePath, err)
	}
	defer d.Close()
	if p, err := d.Pending(); err != nil {
		t.Errorf("Pending = %v, %v", p, err)
	}
}
