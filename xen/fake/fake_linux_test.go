package fake

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/ring"
)

// setup returns a hypervisor with one event channel handle, cleaned up at
// the end of the test.
func setup(t *testing.T) (*Hypervisor, *EventChannel) {
	t.Helper()
	h := New()
	ec, err := h.OpenEventChannel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	})
	return h, ec
}

// pendingSoon polls ec until it reports something or a second passes.
func pendingSoon(t *testing.T, ec *EventChannel) []uint32 {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(ec.Fd()), Events: unix.POLLIN}}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		unix.Poll(fds, 50)
		p, err := ec.Pending()
		if err != nil {
			t.Fatal(err)
		}
		if len(p) > 0 {
			return p
		}
	}
	return nil
}

func pendingNow(t *testing.T, ec *EventChannel) []uint32 {
	t.Helper()
	p, err := ec.Pending()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSharedPage(t *testing.T) {
	h, _ := setup(t)
	d, err := h.NewDomain(5)
	if err != nil {
		t.Fatal(err)
	}
	g, err := d.Attach()
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	m, err := h.GrantMapper().MapForeign(5, xen.GrantRefXenstore)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmap()
	if len(m.Page()) != xen.PageSize || len(g.Page()) != xen.PageSize {
		t.Fatal("wrong page sizes")
	}
	gr, _ := ring.NewGuest(g.Page())
	sr, _ := ring.NewServer(m.Page())
	if _, err := gr.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	n, err := sr.Read(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("server read %q, %v", buf[:n], err)
	}
}

func TestGrantMapperErrors(t *testing.T) {
	h, _ := setup(t)
	if _, err := h.NewDomain(1); err != nil {
		t.Fatal(err)
	}
	gm := h.GrantMapper()
	tests := []struct {
		name       string
		domid, ref uint32
		want       error
	}{
		{"no such domain", 9, 1, syscall.ESRCH},
		{"wrong ref", 1, 2, syscall.EINVAL},
	}
	for _, tt := range tests {
		if _, err := gm.MapForeign(tt.domid, tt.ref); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
	gm.Close()
	if _, err := gm.MapForeign(1, 1); err == nil {
		t.Error("MapForeign after Close succeeded")
	}
	if _, err := h.NewDomain(1); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("duplicate NewDomain: %v", err)
	}
	if _, err := h.NewDomain(0x7ff0); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("reserved NewDomain: %v", err)
	}
}

func TestBindErrors(t *testing.T) {
	h, ec := setup(t)
	d, _ := h.NewDomain(3)
	tests := []struct {
		name      string
		dom, port uint32
		want      error
	}{
		{"no such domain", 4, d.GuestPort(), syscall.ESRCH},
		{"wrong port", 3, d.GuestPort() + 1, syscall.EINVAL},
	}
	for _, tt := range tests {
		if _, err := ec.BindInterdomain(tt.dom, tt.port); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	p, err := ec.BindInterdomain(3, d.GuestPort())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ec.BindInterdomain(3, d.GuestPort()); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("second bind: %v", err)
	}
	if err := ec.Unbind(p); err != nil {
		t.Fatal(err)
	}
	if _, err := ec.BindInterdomain(3, d.GuestPort()); err != nil {
		t.Errorf("bind after unbind: %v", err)
	}
	for _, f := range []func(uint32) error{ec.Notify, ec.Unmask, ec.Unbind} {
		if err := f(9999); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("op on unknown port: %v", err)
		}
	}
	v, _ := ec.BindVIRQ(xen.VIRQDomExc)
	if err := ec.Notify(v); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Notify on VIRQ port: %v", err)
	}
	if _, err := ec.BindVIRQ(xen.VIRQDomExc); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("double BindVIRQ: %v", err)
	}
}

// TestEventsAndMasking checks delivery in both directions and the Linux
// evtchn masking rule.
func TestEventsAndMasking(t *testing.T) {
	h, ec := setup(t)
	d, _ := h.NewDomain(2)
	g, err := d.Attach()
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	port, err := ec.BindInterdomain(2, g.Port)
	if err != nil {
		t.Fatal(err)
	}
	if p := pendingNow(t, ec); len(p) != 0 {
		t.Fatalf("spurious events %v", p)
	}
	g.Notify()
	if p := pendingSoon(t, ec); !slices.Equal(p, []uint32{port}) {
		t.Fatalf("Pending = %v, want [%d]", p, port)
	}
	// Masked: a second notification is held back...
	g.Notify()
	if p := pendingNow(t, ec); len(p) != 0 {
		t.Fatalf("masked port delivered: %v", p)
	}
	// ...and delivered after Unmask.
	if err := ec.Unmask(port); err != nil {
		t.Fatal(err)
	}
	if p := pendingSoon(t, ec); !slices.Equal(p, []uint32{port}) {
		t.Fatalf("after unmask Pending = %v", p)
	}
	ec.Unmask(port)
	// Unmask with nothing pending delivers nothing.
	if p := pendingNow(t, ec); len(p) != 0 {
		t.Fatalf("spurious after unmask: %v", p)
	}
	// Server -> guest.
	if got, _ := g.Wait(0); got {
		t.Fatal("guest saw an event before any Notify")
	}
	ec.Notify(port)
	ec.Notify(port)
	if got, err := g.Wait(time.Second); !got || err != nil {
		t.Fatalf("guest Wait = %v, %v", got, err)
	}
	if got, _ := g.Wait(0); got {
		t.Fatal("notifications not coalesced/consumed")
	}
}

func TestDomainLifecycle(t *testing.T) {
	h, ec := setup(t)
	for _, id := range []uint32{0, 4, 9, 2} {
		if _, err := h.NewDomain(id); err != nil {
			t.Fatal(err)
		}
	}
	virq, err := ec.BindVIRQ(xen.VIRQDomExc)
	if err != nil {
		t.Fatal(err)
	}
	h.SetXenstoreDomain(0, true)
	steps := []struct {
		name   string
		do     func() error
		want   []xen.DomInfo
		wantEv bool
	}{
		{"initial", func() error { return nil }, []xen.DomInfo{{ID: 0, XenstoreDomain: true}, {ID: 2}, {ID: 4}, {ID: 9}}, false},
		{"crash 4", func() error { return h.SetShutdown(4, xen.ShutdownCrash) },
			[]xen.DomInfo{{ID: 0, XenstoreDomain: true}, {ID: 2}, {ID: 4, Shutdown: true, ShutdownReason: xen.ShutdownCrash}, {ID: 9}}, true},
		{"dying 4", func() error { return h.SetDying(4) },
			[]xen.DomInfo{{ID: 0, XenstoreDomain: true}, {ID: 2}, {ID: 4, Dying: true, Shutdown: true, ShutdownReason: xen.ShutdownCrash}, {ID: 9}}, true},
		{"destroy 4", func() error { return h.Destroy(4) }, []xen.DomInfo{{ID: 0, XenstoreDomain: true}, {ID: 2}, {ID: 9}}, true},
		{"destroy 4 again", func() error {
			if err := h.Destroy(4); !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("second destroy: %v", err)
			}
			return nil
		}, []xen.DomInfo{{ID: 0, XenstoreDomain: true}, {ID: 2}, {ID: 9}}, false},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got, err := h.Domains()
		if err != nil || !slices.Equal(got, st.want) {
			t.Fatalf("%s: Domains = %+v, %v; want %+v", st.name, got, err, st.want)
		}
		p := pendingNow(t, ec)
		if st.wantEv != slices.Equal(p, []uint32{virq}) {
			t.Fatalf("%s: Pending = %v, want VIRQ %v", st.name, p, st.wantEv)
		}
		ec.Unmask(virq)
	}
	h.FireVIRQ(xen.VIRQDomExc)
	if p := pendingNow(t, ec); !slices.Equal(p, []uint32{virq}) {
		t.Fatalf("FireVIRQ: Pending = %v", p)
	}
}

// TestDestroyWhileBound: a destroyed domain's descriptors live until its
// port is unbound; mappings made before stay valid.
func TestDestroyWhileBound(t *testing.T) {
	h, ec := setup(t)
	d, _ := h.NewDomain(6)
	port, err := ec.BindInterdomain(6, d.GuestPort())
	if err != nil {
		t.Fatal(err)
	}
	m, err := h.GrantMapper().MapForeign(6, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Destroy(6); err != nil {
		t.Fatal(err)
	}
	if err := ec.Notify(port); err != nil {
		t.Errorf("Notify on destroyed-but-bound domain: %v", err)
	}
	m.Page()[0] = 1 // still mapped
	if err := ec.Unbind(port); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Attach(); err == nil {
		t.Error("Attach after destroy+unbind succeeded")
	}
	if err := m.Unmap(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.NewDomain(6); err != nil {
		t.Errorf("re-creating a destroyed id: %v", err)
	}
}

// TestManyDomains: 1500 domains on one handle, one epoll fd, no
// goroutines. Every guest writes into its ring and notifies; the server
// drains Pending until every port was seen once, then checks each ring.
func TestManyDomains(t *testing.T) {
	const n = 1500
	// Six descriptors per domain here: three hypervisor-side, three for the
	// in-process guest. Go raises the soft limit to the hard one at start.
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < 6*n+256 {
		t.Skipf("RLIMIT_NOFILE %d too low for %d domains", lim.Cur, n)
	}
	h, ec := setup(t)
	gm := h.GrantMapper()
	before := runtime.NumGoroutine()
	type dom struct {
		g    *Guest
		port uint32
		srv  *ring.Server
		m    xen.Mapping
	}
	doms := make(map[uint32]*dom, n)
	for i := range uint32(n) {
		d, err := h.NewDomain(i + 1)
		if err != nil {
			t.Fatal(err)
		}
		g, err := d.Attach()
		if err != nil {
			t.Fatal(err)
		}
		m, err := gm.MapForeign(i+1, xen.GrantRefXenstore)
		if err != nil {
			t.Fatal(err)
		}
		srv, _ := ring.NewServer(m.Page())
		port, err := ec.BindInterdomain(i+1, g.Port)
		if err != nil {
			t.Fatal(err)
		}
		doms[port] = &dom{g: g, port: port, srv: srv, m: m}
	}
	t.Cleanup(func() {
		for _, d := range doms {
			d.g.Close()
			d.m.Unmap()
		}
	})
	for _, d := range doms {
		gr, _ := ring.NewGuest(d.g.Page())
		gr.Write([]byte(fmt.Sprintf("dom%d", d.g.DomID)))
		d.g.Notify()
	}
	seen := map[uint32]bool{}
	fds := []unix.PollFd{{Fd: int32(ec.Fd()), Events: unix.POLLIN}}
	deadline := time.Now().Add(10 * time.Second)
	for len(seen) < n && time.Now().Before(deadline) {
		unix.Poll(fds, 100)
		ports, err := ec.Pending()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ports {
			if seen[p] {
				t.Fatalf("port %d reported twice while masked", p)
			}
			seen[p] = true
			d := doms[p]
			buf := make([]byte, 64)
			k, err := d.srv.Read(buf)
			if err != nil || string(buf[:k]) != fmt.Sprintf("dom%d", d.g.DomID) {
				t.Fatalf("port %d: read %q, %v", p, buf[:k], err)
			}
		}
	}
	if len(seen) != n {
		t.Fatalf("saw %d of %d ports", len(seen), n)
	}
	if g := runtime.NumGoroutine(); g > before {
		t.Errorf("goroutines grew from %d to %d", before, g)
	}
}

// The cross-process test re-executes the test binary as the guest.
const childEnv = "XSFAKE_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(childMain())
	}
	os.Exit(m.Run())
}

// childMain is the guest process: it writes "ping" into the request ring,
// notifies, waits for the server, and expects "pong" in the response ring.
func childMain() int {
	g, err := AttachGuestFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer g.Close()
	r, err := ring.NewGuest(g.Page())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if _, err := r.Write([]byte("ping")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	g.Notify()
	buf := make([]byte, 16)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		g.Wait(100 * time.Millisecond)
		n, err := r.Read(buf)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		if n > 0 {
			fmt.Printf("dom%d got %s\n", g.DomID, buf[:n])
			return 0
		}
	}
	fmt.Fprintln(os.Stderr, "timeout")
	return 3
}

func TestSeparateProcess(t *testing.T) {
	h, ec := setup(t)
	d, err := h.NewDomain(12)
	if err != nil {
		t.Fatal(err)
	}
	port, err := ec.BindInterdomain(12, d.GuestPort())
	if err != nil {
		t.Fatal(err)
	}
	m, err := h.GrantMapper().MapForeign(12, xen.GrantRefXenstore)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmap()
	srv, _ := ring.NewServer(m.Page())

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done, err := d.ConfigureCmd(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done()
	// The server's descriptors must still be non-blocking after exec.
	if fl, _ := unix.FcntlInt(uintptr(d.toServer), unix.F_GETFL, 0); fl&unix.O_NONBLOCK == 0 {
		t.Error("exec left the server's eventfd blocking")
	}
	if p := pendingSoon(t, ec); !slices.Equal(p, []uint32{port}) {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("Pending = %v; child stderr: %s", p, errb.String())
	}
	buf := make([]byte, 16)
	n, err := srv.Read(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("server read %q, %v", buf[:n], err)
	}
	srv.Write([]byte("pong"))
	ec.Notify(port)
	ec.Unmask(port)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v; stderr: %s", err, errb.String())
	}
	if got := out.String(); got != "dom12 got pong\n" {
		t.Errorf("child printed %q", got)
	}
}
