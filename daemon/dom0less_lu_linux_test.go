package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/fake"
	"github.com/xsstub/xenstored/xen/ringclient"
)

// luRig runs dom0less daemons on one fake hypervisor with one event
// channel handle, which a live update hands from the old daemon to the
// new one as the real exec does.
type luRig struct {
	t    *testing.T
	h    *fake.Hypervisor
	args []string
	log  syncWriter
	logs strings.Builder
}

func newLURig(t *testing.T, h *fake.Hypervisor) *luRig {
	t.Helper()
	ev, err := h.OpenEventChannel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ev.Close() })
	saved := openDevices
	t.Cleanup(func() { openDevices = saved })
	openDevices = func(fd int) (*xenDevices, error) {
		if fd >= 0 && fd != ev.Fd() {
			return nil, errors.New("a live update handed over another event channel handle")
		}
		return &xenDevices{ev: ev, gm: h.GrantMapper(), hc: h, close: func() {}}, nil
	}
	// No socket, as in the stub (its kernel has no networking): the
	// socket's directory is a file.
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := &luRig{t: t, h: h, args: []string{"--stubdom", "--socket", filepath.Join(notDir, "socket")}}
	r.log.w = &r.logs
	return r
}

// start runs a daemon with args in a goroutine; stop ends it and returns
// Run's error.
func (r *luRig) start(args []string) (stop func() error, err error) {
	o, err := Parse(args, io.Discard)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o, slog.New(slog.NewTextHandler(&r.log, nil))) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		case <-time.After(10 * time.Second):
			return errors.New("the daemon did not stop")
		}
	}, nil
}

// waitLog waits until the daemons' log holds s n times.
func (r *luRig) waitLog(s string, n int) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.log.mu.Lock()
		got := strings.Count(r.logs.String(), s)
		r.log.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			r.log.mu.Lock()
			defer r.log.mu.Unlock()
			r.t.Fatalf("log never held %q %d times:\n%s", s, n, r.logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// execInProcess makes a live update start the new daemon in this process:
// it gets a copy of the state descriptor (the old daemon closes its own
// when the exec "fails"), the old one stays stopped inside the exec, as
// an exec'd-away process would be, until the test ends.
func (r *luRig) execInProcess() {
	saved := execNewDaemon
	release := make(chan struct{})
	stopNew := make(chan func() error, 1)
	r.t.Cleanup(func() {
		select {
		case stop := <-stopNew:
			if err := stop(); err != nil {
				r.t.Errorf("new daemon: %v", err)
			}
		default:
		}
		close(release)
		execNewDaemon = saved
	})
	execNewDaemon = func(binary string, argv, env []string) error {
		fd := -1
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, liveUpdateEnv+"="); ok {
				fd, _ = strconv.Atoi(v)
			}
		}
		dup, err := unix.Dup(fd)
		if err != nil {
			return err
		}
		os.Setenv(liveUpdateEnv, strconv.Itoa(dup))
		stop, err := r.start(argv[1:]) // what the new process would parse
		if err != nil {
			unix.Close(dup)
			os.Unsetenv(liveUpdateEnv)
			return fmt.Errorf("the new daemon's arguments %q: %w", argv[1:], err)
		}
		stopNew <- stop
		<-release
		return syscall.ENOEXEC
	}
}

// TestDom0lessLiveUpdateKeepsControlDomain: in a dom0less boot whose
// control domain is a domU (DOMAIN_CAPS_CONTROL), that domain asks our
// xenstore domain for a live update through its ring; the new daemon,
// given the arguments the old one parsed (not the process's argv: the
// stub's init builds them from the kernel command line), answers it, finds the roles again from the domains' capabilities (as C
// xenstored 4.22's init_domains does after a live update), so the control
// domain keeps its privilege and the other domU gets none; a node readable
// by every domain (DOMID_ANY) stays so, and a watch set before the update
// fires after it.
func TestDom0lessLiveUpdateKeepsControlDomain(t *testing.T) {
	h, guests := dom0lessHost(t, xen.Version{Major: 4, Minor: 22}, false)
	if err := h.SetControlDomain(2, true); err != nil {
		t.Fatal(err)
	}
	r := newLURig(t, h)
	newBinary := filepath.Join(t.TempDir(), "xenstored-new")
	if err := os.WriteFile(newBinary, []byte("#!/bin/sh\ncat <&3 >/dev/null\necho '"+checkOK+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.execInProcess()
	stopOld, err := r.start(r.args)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopOld() })
	r.waitLog(`msg="dom0less: serving"`, 1)
	r.waitLog("store=1 priv=2", 1)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ctl, err := ringclient.New(guests[2].Page(), guests[2])
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	other, err := ringclient.New(guests[3].Page(), guests[3])
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	privileged := func(when string) {
		t.Helper()
		if m, err := ctl.Call(ctx, wire.IsDomainIntroduced, 0, []byte("3\x00")); err != nil || string(m.Payload) != "T\x00" {
			t.Errorf("%s: the control domain's IS_DOMAIN_INTRODUCED 3 = %q, %v; want T", when, m.Payload, err)
		}
		if _, err := other.Call(ctx, wire.IsDomainIntroduced, 0, []byte("2\x00")); !errors.Is(err, syscall.EACCES) {
			t.Errorf("%s: domain 3's IS_DOMAIN_INTRODUCED = %v; want EACCES", when, err)
		}
	}
	// A node every domain may read (DOMID_ANY, Xen 4.22), read by the
	// other domain before and after the update.
	if err := ctl.Write(ctx, "/local/domain/2/data/hello", []byte("from 2")); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.Call(ctx, wire.SetPerms, 0, []byte("/local/domain/2/data/hello\x00n2\x00r32757\x00")); err != nil {
		t.Fatal(err)
	}
	readsAny := func(when string) {
		t.Helper()
		if v, err := other.Read(ctx, "/local/domain/2/data/hello"); err != nil || string(v) != "from 2" {
			t.Errorf("%s: domain 3 reads the DOMID_ANY node: %q, %v", when, v, err)
		}
	}
	readsAny("before the update")
	privileged("before the update")
	if err := ctl.Watch(ctx, "@releaseDomain/3", "peer"); err != nil {
		t.Fatal(err)
	}
	<-ctl.Events()

	for _, args := range [][]string{{"-f", newBinary}, {"-s"}} {
		payload := "live-update\x00" + strings.Join(args, "\x00") + "\x00"
		m, err := ctl.Call(ctx, wire.Control, 0, []byte(payload))
		if err != nil || string(m.Payload) != "OK\x00" {
			r.log.mu.Lock()
			t.Fatalf("live-update %q = %q, %v\n%s", args, m.Payload, err, r.logs.String())
		}
	}
	r.waitLog("live-update: serving the state handed over", 1)
	privileged("after the update")
	readsAny("after the update")

	if err := h.Destroy(3); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-ctl.Events():
		if ev.Path != "@releaseDomain/3" {
			t.Errorf("event %+v", ev)
		}
	case <-ctx.Done():
		t.Error("no @releaseDomain/3 after the update")
	}
}
