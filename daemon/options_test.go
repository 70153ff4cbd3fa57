package daemon

import (
	"io"
	"testing"
	"time"
)

func TestDefaultSocket(t *testing.T) {
	tests := []struct{ path, rundir, want string }{
		{"", "", "/run/xenstored/socket"},
		{"", "/tmp/rd", "/tmp/rd/socket"},
		{"/tmp/p/sock", "/tmp/rd", "/tmp/p/sock"}, // as C xenstored: XENSTORED_PATH wins
	}
	for _, tt := range tests {
		t.Setenv("XENSTORED_PATH", tt.path)
		t.Setenv("XENSTORED_RUNDIR", tt.rundir)
		if got := DefaultSocket(); got != tt.want {
			t.Errorf("PATH=%q RUNDIR=%q: %q, want %q", tt.path, tt.rundir, got, tt.want)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		args []string
		bad  bool
		chk  func(*Options) bool
	}{
		{args: []string{"-N", "-F", "/p", "--socket", "/s"}, chk: func(o *Options) bool { return o.NoFork && o.PidFile == "/p" && o.Socket == "/s" }},
		{args: []string{"-E", "5", "-S", "100", "-W", "3", "-t", "2", "-A", "4", "-M", "64"}, chk: func(o *Options) bool {
			return o.Quotas.Hard[0] == 5
		}},
		{args: []string{"-Q", "nodes=7", "-q", "memory=100", "-Q", "path-length=10"}, chk: func(o *Options) bool { return o.Quotas.Hard[0] == 7 }},
		{args: []string{"--event", "5"}, chk: func(o *Options) bool { return o.StubDomain && o.Event == 5 }},
		{args: []string{"-D", "-P", "-R", "-I", "--internal-db=off", "--trace-control=+io", "-w", "watch-event=5"}, chk: func(o *Options) bool {
			return o.NoDomainInit && o.OutputPid && o.EventTimeout == 5*time.Second
		}},
		{args: []string{"--timeout", "watch-event=0"}, chk: func(o *Options) bool { return o.EventTimeout < 0 }},
		{args: []string{"-w", "other=5"}, bad: true},
		{args: []string{"-Q", "bogus=1"}, bad: true},
		{args: []string{"-Q", "nodes"}, bad: true},
		// dom0less: a xenstore domain with no control domain's ring to serve.
		{args: []string{"--stubdom"}, chk: func(o *Options) bool { return o.StubDomain && o.Event < 0 && !o.PrivSet }},
		{args: []string{"--stubdom", "-p", "3"}, chk: func(o *Options) bool { return o.PrivSet && o.PrivDomid == 3 && !o.MasterSet }},
		{args: []string{"-m", "2"}, chk: func(o *Options) bool { return o.MasterSet && !o.PrivSet }},
		{args: []string{"--nope"}, bad: true},
		{args: []string{"stray"}, bad: true},
		{args: []string{"-E", "x"}, bad: true},
		{args: []string{"-Q", "nodes=4294967297"}, bad: true}, // a quota past C's int
		{args: []string{"-E", "2147483648"}, bad: true},
		{args: []string{"-E", "2147483647"}, chk: func(o *Options) bool { return o.Quotas.Hard[0] == 1<<31-1 }},
	}
	for _, tt := range tests {
		o, err := Parse(tt.args, io.Discard)
		if tt.bad {
			if err == nil {
				t.Errorf("%q: accepted", tt.args)
			}
			continue
		}
		if err != nil || !tt.chk(o) {
			t.Errorf("%q: %+v, %v", tt.args, o, err)
		}
	}
}
