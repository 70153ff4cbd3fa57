package daemon

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/fake"
	"github.com/xsstub/xenstored/xsclient"
)

// ringEvtchnPort is the offset of the ring page's evtchn_port word
// (xenstore_domain_interface), which a domain's builder fills.
const ringEvtchnPort = 2076

// withFakeXen makes the daemon open h's devices instead of /dev/xen.
func withFakeXen(t *testing.T, h *fake.Hypervisor) {
	t.Helper()
	saved := openDevices
	t.Cleanup(func() { openDevices = saved })
	openDevices = func(int) (*xenDevices, error) {
		ev, err := h.OpenEventChannel()
		if err != nil {
			return nil, err
		}
		return &xenDevices{ev: ev, gm: h.GrantMapper(), hc: h, close: func() { ev.Close() }}, nil
	}
}

func fakeHost(t *testing.T, v xen.Version) *fake.Hypervisor {
	t.Helper()
	h := fake.New()
	t.Cleanup(func() { h.Close() })
	h.SetRelease(v)
	for _, id := range []uint32{0, 1} {
		if _, err := h.NewDomain(id); err != nil {
			t.Fatal(err)
		}
	}
	h.SetXenstoreDomain(1, true)
	return h
}

func testOptions(t *testing.T, args ...string) *Options {
	t.Helper()
	o, err := Parse(append([]string{"--socket", filepath.Join(t.TempDir(), "sock")}, args...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestRunFailsClosed: where /dev/xen exists but domains cannot be
// followed, the daemon refuses to serve, in stub and in dom0 mode, and
// says why.
func TestRunFailsClosed(t *testing.T) {
	tests := []struct {
		name    string
		release xen.Version
		domctl  error
		args    []string
		want    string
	}{
		{"stub, unknown release", xen.Version{Major: 4, Minor: 23}, nil, []string{"--event", "1"}, "Xen 4.23: unknown Xen release"},
		{"dom0, unknown release", xen.Version{Major: 4, Minor: 23}, nil, nil, "Xen 4.23: unknown Xen release"},
		{"stub, domctl refused", xen.Version{Major: 4, Minor: 20}, syscall.EACCES, []string{"--event", "1"}, "permission denied"},
		{"dom0, domctl refused", xen.Version{Major: 4, Minor: 17}, syscall.EACCES, nil, "permission denied"},
		{"dom0, hypervisor fails", xen.Version{Major: 4, Minor: 21}, syscall.EFAULT, nil, "bad address"},
		{"unknown release, assumed one refused", xen.Version{Major: 4, Minor: 23}, syscall.EACCES, []string{"--xen-interface", "4.22"}, "permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fakeHost(t, tt.release)
			h.SetDomctlError(tt.domctl)
			withFakeXen(t, h)
			o := testOptions(t, tt.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := Run(ctx, o, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "refusing to serve") {
				t.Fatalf("Run = %v, want a refusal mentioning %q", err, tt.want)
			}
			if _, err := net.Dial("unix", o.Socket); err == nil {
				t.Fatal("the socket answers after a refusal")
			}
		})
	}
}

// TestRunStubFindsItself: in stub mode on each release the daemon finds
// its own domid and serves; --xen-interface lets it run on a newer Xen.
// Domains created before it whose ring names its event channel are
// introduced where the release lets it list domains (not 4.18-4.20).
func TestRunStubFindsItself(t *testing.T) {
	for _, tt := range []struct {
		release xen.Version
		args    []string
	}{
		{xen.Version{Major: 4, Minor: 17}, nil},
		{xen.Version{Major: 4, Minor: 20}, nil},
		{xen.Version{Major: 4, Minor: 22}, nil},
		{xen.Version{Major: 4, Minor: 23}, []string{"--xen-interface", "4.22"}},
	} {
		t.Run(tt.release.String(), func(t *testing.T) {
			h := fakeHost(t, tt.release)
			// Domains built before the store: 5 has a ring with its
			// event channel written in (dom0less), 6 a ring without.
			for _, id := range []uint32{5, 6} {
				d, _ := h.NewDomain(id)
				g, err := d.Attach()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { g.Close() })
				if id == 5 {
					binary.LittleEndian.PutUint32(g.Page()[ringEvtchnPort:], d.GuestPort())
				}
			}
			withFakeXen(t, h)
			o := testOptions(t, append([]string{"--event", "1"}, tt.args...)...)
			var logged strings.Builder
			sw := &syncWriter{w: &logged}
			log := slog.New(slog.NewTextHandler(sw, nil))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- Run(ctx, o, log) }()
			deadline := time.Now().Add(10 * time.Second)
			for {
				if c, err := net.Dial("unix", o.Socket); err == nil {
					c.Close()
					break
				}
				select {
				case err := <-done:
					t.Fatalf("Run returned %v", err)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatal("socket never answered")
				}
				time.Sleep(5 * time.Millisecond)
			}
			c, err := xsclient.Dial(o.Socket)
			if err != nil {
				t.Fatal(err)
			}
			enumerable := tt.release != xen.Version{Major: 4, Minor: 20}
			for _, q := range []struct {
				id   string
				want bool
			}{{"5", enumerable}, {"6", false}} {
				got, err := c.Call(wire.IsDomainIntroduced, 0, q.id)
				if err != nil || (string(got) == "T\x00") != q.want {
					t.Errorf("IS_DOMAIN_INTRODUCED %s = %q, %v; want %v", q.id, got, err, q.want)
				}
			}
			c.Close()
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Fatalf("Run: %v", err)
			}
			// A connection's goroutine may still log after Run returned.
			sw.mu.Lock()
			s := logged.String()
			sw.mu.Unlock()
			if !strings.Contains(s, `msg="running as the xenstore domain" domid=1`) {
				t.Errorf("log lacks own domid:\n%s", s)
			}
		})
	}
}

// syncWriter serialises the daemon's goroutines' log writes.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// String is what was written, if the writer can tell.
func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.w.(fmt.Stringer); ok {
		return st.String()
	}
	return ""
}

// TestRingLoopFailureEndsDaemon: when the ring loop fails (the event
// channel device breaks) the daemon ends with the reason, in stub mode
// with or without a socket and in dom0 mode, rather than living on
// serving no guest.
func TestRingLoopFailureEndsDaemon(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		socket bool // it serves a socket (else: rings only)
	}{
		{"stub", []string{"--event", "1"}, true},
		{"stub without a socket", []string{"--event", "1", "--socket", "/dev/null/sock"}, false},
		{"dom0", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fakeHost(t, xen.Version{Major: 4, Minor: 22})
			evs := withFakeXenHandles(t, h)
			o := testOptions(t, tt.args...)
			logged := &syncWriter{w: &strings.Builder{}}
			log := slog.New(slog.NewTextHandler(logged, nil))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- Run(ctx, o, log) }()
			waitServing(t, o.Socket, tt.socket, done, logged)

			broken := errors.New("device gone")
			(<-evs).FailPending(broken)
			select {
			case err := <-done:
				if !errors.Is(err, broken) || !strings.Contains(err.Error(), "ring transport stopped") {
					t.Fatalf("Run = %v, want the ring loop's failure", err)
				}
			case <-time.After(10 * time.Second): // a hang, not a speed limit
				t.Fatalf("the daemon lives on after its ring loop failed; log:\n%s", logged.String())
			}
			if _, err := net.Dial("unix", o.Socket); err == nil {
				t.Error("the socket still answers")
			}
		})
	}
}

// withFakeXenHandles is withFakeXen that also hands over each event
// channel handle the daemon opens.
func withFakeXenHandles(t *testing.T, h *fake.Hypervisor) <-chan *fake.EventChannel {
	t.Helper()
	saved := openDevices
	t.Cleanup(func() { openDevices = saved })
	evs := make(chan *fake.EventChannel, 4)
	openDevices = func(int) (*xenDevices, error) {
		ev, err := h.OpenEventChannel()
		if err != nil {
			return nil, err
		}
		evs <- ev
		return &xenDevices{ev: ev, gm: h.GrantMapper(), hc: h, close: func() { ev.Close() }}, nil
	}
	return evs
}

// waitServing waits until the daemon's socket answers or, without one,
// until it says it serves rings only.
func waitServing(t *testing.T, sock string, socket bool, done <-chan error, logged *syncWriter) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if socket {
			if c, err := net.Dial("unix", sock); err == nil {
				c.Close()
				return
			}
		} else if strings.Contains(logged.String(), "serving rings only") {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned %v before serving", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon never served")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
