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

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	return len(ents)
}

// TestManyDomains: 5000 domains on one event channel handle, their guests
// on one GuestEvents handle: a few descriptors in all, no goroutines.
// Every guest writes into its ring and notifies; the server drains Pending
// until every port was seen once, checks each ring and answers; the guest
// side drains its Pending until every guest was seen once.
func TestManyDomains(t *testing.T) {
	const n = 5000
	h, ec := setup(t)
	gm := h.GrantMapper()
	ge, err := h.OpenGuestEvents()
	if err != nil {
		t.Fatal(err)
	}
	beforeG := runtime.NumGoroutine()
	beforeFDs := openFDs(t)
	type dom struct {
		g    *Guest
		port uint32
		srv  *ring.Server
		m    xen.Mapping
	}
	doms := make(map[uint32]*dom, n)
	byGuest := make(map[*Guest]*dom, n)
	for i := range uint32(n) {
		d, err := h.NewDomain(i + 1)
		if err != nil {
			t.Fatal(err)
		}
		g, err := ge.Attach(d)
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
		byGuest[g] = doms[port]
	}
	t.Cleanup(func() {
		for _, d := range doms {
			d.g.Close()
			d.m.Unmap()
		}
	})
	// The page memfd is the only descriptor that may have appeared.
	if grown := openFDs(t) - beforeFDs; grown > 1 {
		t.Errorf("%d domains opened %d descriptors", n, grown)
	}
	for _, d := range doms {
		gr, _ := ring.NewGuest(d.g.Page())
		gr.Write([]byte(fmt.Sprintf("dom%d", d.g.DomID)))
		d.g.Notify()
		d.g.Notify() // coalesced with the first
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
			d.srv.Write([]byte("ok"))
			if err := ec.Notify(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(seen) != n {
		t.Fatalf("saw %d of %d ports", len(seen), n)
	}
	answered := map[*Guest]bool{}
	fds[0].Fd = int32(ge.Fd())
	for len(answered) < n && time.Now().Before(deadline) {
		unix.Poll(fds, 100)
		gs, err := ge.Pending()
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range gs {
			if answered[g] {
				t.Fatalf("dom%d reported twice for one notification", g.DomID)
			}
			answered[g] = true
			gr, _ := ring.NewGuest(g.Page())
			buf := make([]byte, 8)
			if k, _ := gr.Read(buf); string(buf[:k]) != "ok" {
				t.Fatalf("dom%d read %q", g.DomID, buf[:k])
			}
			if byGuest[g] == nil {
				t.Fatalf("unknown guest %p", g)
			}
		}
	}
	if len(answered) != n {
		t.Fatalf("%d of %d guests notified", len(answered), n)
	}
	if gs, _ := ge.Pending(); len(gs) != 0 {
		t.Fatalf("spurious guest events %d", len(gs))
	}
	if g := runtime.NumGoroutine(); g > beforeG {
		t.Errorf("goroutines grew from %d to %d", beforeG, g)
	}
}

// TestGuestEvents: a GuestEvents guest has no descriptor of its own; a
// closed guest leaves the handle's list; a closed handle reports errors.
func TestGuestEvents(t *testing.T) {
	h, ec := setup(t)
	ge, err := h.OpenGuestEvents()
	if err != nil {
		t.Fatal(err)
	}
	var gs []*Guest
	var ports []uint32
	for id := uint32(1); id <= 3; id++ {
		d, _ := h.NewDomain(id)
		g, err := ge.Attach(d)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ec.BindInterdomain(id, g.Port)
		if err != nil {
			t.Fatal(err)
		}
		gs, ports = append(gs, g), append(ports, p)
	}
	if gs[0].Fd() != -1 || gs[0].Ack() != nil {
		t.Errorf("GuestEvents guest: Fd %d", gs[0].Fd())
	}
	if _, err := gs[0].Wait(0); err == nil {
		t.Error("Wait on a GuestEvents guest succeeded")
	}
	readable := func() bool {
		fds := []unix.PollFd{{Fd: int32(ge.Fd()), Events: unix.POLLIN}}
		n, _ := unix.Poll(fds, 0)
		return n > 0
	}
	if readable() {
		t.Fatal("readable before any Notify")
	}
	ec.Notify(ports[2])
	ec.Notify(ports[0])
	ec.Notify(ports[2])
	if !readable() {
		t.Fatal("not readable after Notify")
	}
	got, err := ge.Pending()
	if err != nil || !slices.Equal(got, []*Guest{gs[2], gs[0]}) {
		t.Fatalf("Pending = %v, %v", got, err)
	}
	if readable() {
		t.Fatal("still readable after Pending")
	}
	// A guest closed while pending is not reported.
	ec.Notify(ports[1])
	ec.Notify(ports[0])
	gs[1].Close()
	if got, _ := ge.Pending(); !slices.Equal(got, []*Guest{gs[0]}) {
		t.Fatalf("after close Pending = %v", got)
	}
	if err := ec.Notify(ports[1]); err != nil {
		t.Fatalf("Notify with the guest gone: %v", err)
	}
	if got, _ := ge.Pending(); len(got) != 0 {
		t.Fatalf("closed guest notified: %v", got)
	}
	// Two guests on one domain are both notified.
	d3, _ := h.NewDomain(9)
	own, err := d3.Attach()
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	shared, _ := ge.Attach(d3)
	p3, _ := ec.BindInterdomain(9, own.Port)
	ec.Notify(p3)
	if ok, _ := own.Wait(time.Second); !ok {
		t.Error("own-descriptor guest not notified")
	}
	if got, _ := ge.Pending(); !slices.Equal(got, []*Guest{shared}) {
		t.Errorf("GuestEvents guest of the same domain: %v", got)
	}
	if err := ge.Close(); err != nil {
		t.Fatal(err)
	}
	ec.Notify(ports[0]) // no longer delivered, no error
	if _, err := ge.Pending(); err == nil {
		t.Error("Pending on a closed handle succeeded")
	}
	if _, err := ge.Attach(d3); err == nil {
		t.Error("Attach on a closed handle succeeded")
	}
}

// TestUnboundNotifyDropped: as on Xen, a guest's notification while its
// port is not bound is lost, and a later bind starts with nothing pending.
func TestUnboundNotifyDropped(t *testing.T) {
	h, ec := setup(t)
	d, _ := h.NewDomain(4)
	g, err := d.Attach()
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Notify(); err != nil {
		t.Fatal(err)
	}
	port, err := ec.BindInterdomain(4, g.Port)
	if err != nil {
		t.Fatal(err)
	}
	if p := pendingNow(t, ec); len(p) != 0 {
		t.Fatalf("notification sent while unbound delivered: %v", p)
	}
	ec.Unbind(port)
	g.Notify()
	if p := pendingNow(t, ec); len(p) != 0 {
		t.Fatalf("notification after unbind delivered: %v", p)
	}
	g.Close()
	if err := g.Notify(); err == nil {
		t.Error("Notify on a closed guest succeeded")
	}
}

// TestPagesShareOneMemfd: each domain has its own page; a page is zeroed
// and reused only once its domain is gone and nothing maps it.
func TestPagesShareOneMemfd(t *testing.T) {
	h, _ := setup(t)
	gm := h.GrantMapper()
	before := openFDs(t)
	var ms []xen.Mapping
	for id := uint32(1); id <= 3; id++ {
		if _, err := h.NewDomain(id); err != nil {
			t.Fatal(err)
		}
		m, err := gm.MapForeign(id, xen.GrantRefXenstore)
		if err != nil {
			t.Fatal(err)
		}
		m.Page()[0] = byte(id)
		ms = append(ms, m)
	}
	if grown := openFDs(t) - before; grown != 1 {
		t.Errorf("three domains opened %d descriptors, want 1 (the memfd)", grown)
	}
	for i, m := range ms {
		if m.Page()[0] != byte(i+1) {
			t.Fatalf("dom%d's page holds %d", i+1, m.Page()[0])
		}
	}
	d2, _ := h.NewDomain(20)
	g, _ := d2.Attach()
	g.Page()[1] = 7
	if err := h.Destroy(2); err != nil {
		t.Fatal(err)
	}
	// Still mapped: a new domain must not get dom2's page.
	d4, _ := h.NewDomain(4)
	g4, err := d4.Attach()
	if err != nil {
		t.Fatal(err)
	}
	if g4.Page()[0] != 0 {
		t.Fatalf("new domain's page not zero: %d", g4.Page()[0])
	}
	g4.Page()[0] = 44
	if ms[1].Page()[0] != 2 {
		t.Fatalf("destroyed domain's mapping changed to %d", ms[1].Page()[0])
	}
	if err := ms[1].Unmap(); err != nil {
		t.Fatal(err)
	}
	// Now dom2's page is free: the next domain gets it, zeroed.
	d5, _ := h.NewDomain(5)
	g5, err := d5.Attach()
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(g5.Page(), func(b byte) bool { return b != 0 }) {
		t.Fatal("reused page not zeroed")
	}
	// A destroyed domain's guest keeps its page too.
	h.Destroy(20)
	d6, _ := h.NewDomain(6)
	m6, _ := gm.MapForeign(6, xen.GrantRefXenstore)
	if g.Page()[1] != 7 || m6.Page()[1] != 0 {
		t.Fatal("a page still mapped by a guest was handed out again")
	}
	for _, x := range []interface{ Close() error }{g, g4, g5} {
		if err := x.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d6.Attach(); err != nil {
		t.Fatal(err)
	}
	ms[0].Unmap()
	ms[2].Unmap()
	m6.Unmap()
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
	// Other domains first, so that the guest's page is not at offset 0.
	for id := uint32(1); id <= 3; id++ {
		h.NewDomain(id)
	}
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

// TestEventRingOverflow: the fake loses events as Linux's evtchn ring does
// when it overflows: Pending fails with xen.ErrEventOverflow, the ports
// that fired stay masked, and only Unmask brings later events through.
func TestEventRingOverflow(t *testing.T) {
	tests := []struct {
		name     string
		overflow func(ec *EventChannel)
		notify   int // guests that notify before Pending
	}{
		{"ring of one, two ports fire", func(ec *EventChannel) { ec.SetRingSize(1) }, 2},
		{"overflow next", func(ec *EventChannel) { ec.OverflowNext() }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, ec := setup(t)
			var guests []*Guest
			var ports []uint32
			for id := uint32(1); id <= 2; id++ {
				d, _ := h.NewDomain(id)
				g, err := d.Attach()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { g.Close() })
				port, err := ec.BindInterdomain(id, g.Port)
				if err != nil {
					t.Fatal(err)
				}
				guests, ports = append(guests, g), append(ports, port)
			}
			tt.overflow(ec)
			for _, g := range guests[:tt.notify] {
				g.Notify()
			}
			fds := []unix.PollFd{{Fd: int32(ec.Fd()), Events: unix.POLLIN}}
			unix.Poll(fds, 1000)
			if p, err := ec.Pending(); !errors.Is(err, xen.ErrEventOverflow) {
				t.Fatalf("Pending = %v, %v; want an overflow", p, err)
			}
			ec.SetRingSize(0)
			// The lost ports are masked: new events wait...
			for _, g := range guests[:tt.notify] {
				g.Notify()
			}
			if p := pendingNow(t, ec); len(p) != 0 {
				t.Fatalf("masked ports delivered %v", p)
			}
			// ...until unmasked; unmasking a port that is not masked is
			// harmless (the transport unmasks every port after an overflow).
			for _, p := range ports {
				if err := ec.Unmask(p); err != nil {
					t.Fatal(err)
				}
			}
			got := pendingSoon(t, ec)
			slices.Sort(got)
			if want := ports[:tt.notify]; !slices.Equal(got, want) {
				t.Fatalf("after unmask Pending = %v, want %v", got, want)
			}
		})
	}
}
