package xenring_test

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/domains"
	"github.com/xsstub/xenstored/xen/fake"
	"github.com/xsstub/xenstored/xen/ringclient"
)

// Every test here runs on the fake hypervisor playing each release the
// daemon knows: 4.17's enumeration, 4.18-4.20's per-domid getdomaininfo,
// 4.21+'s get_domain_state.
func eachRelease(t *testing.T, f func(t *testing.T, r *rig, rel domains.Release)) {
	for _, rel := range domains.Releases {
		t.Run(rel.Version.String(), func(t *testing.T) { f(t, newRigAt(t, nil, rel.Version), rel) })
	}
}

// readAs reads path through c and returns the error (nil: readable).
func readAs(t *testing.T, r *rig, id uint32, path string) error {
	t.Helper()
	_, _, c := r.guest(id)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Read(ctx, path)
	return err
}

func (d *dom0) waitReleased(t *testing.T, r *rig, id uint32) {
	t.Helper()
	if !waitFor(10*time.Second, func() bool { return !introduced(t, d, id) }) {
		t.Fatalf("domain %d still introduced", id)
	}
}

// TestReleasesXSA417: a permission entry naming a domain that does not
// exist yet grants nothing to the domain later created with that id.
func TestReleasesXSA417(t *testing.T) {
	eachRelease(t, func(t *testing.T, r *rig, _ domains.Release) {
		d0 := r.dom0()
		r.healthyGuest(d0, 5)
		home := "/local/domain/5"
		d0.call(t, wire.Write, home+"/data", "secret")
		if got := d0.call(t, wire.SetPerms, home+"/data", "n5", "r9"); got != "OK\x00" {
			t.Fatalf("SET_PERMS: %q", got)
		}
		if err := readAs(t, r, 9, home+"/data"); !isErrno(err, syscall.EACCES) {
			t.Fatalf("domain 9, created after the entry, reads: %v", err)
		}
	})
}

// TestReleasesDeath: an introduced domain's destruction fires
// @releaseDomain and releases it; a shutdown fires it too.
func TestReleasesDeath(t *testing.T) {
	eachRelease(t, func(t *testing.T, r *rig, _ domains.Release) {
		d0 := r.dom0()
		r.healthyGuest(d0, 7)
		r.healthyGuest(d0, 8)
		d0.call(t, wire.Watch, "@releaseDomain", "rel")
		d0.event(t)
		r.h.Destroy(7)
		if ev := d0.event(t); ev != "@releaseDomain" {
			t.Fatalf("event %q", ev)
		}
		d0.waitReleased(t, r, 7)
		r.h.SetShutdown(8, xen.ShutdownPoweroff)
		if ev := d0.event(t); ev != "@releaseDomain" {
			t.Fatalf("event after shutdown %q", ev)
		}
		if !introduced(t, d0, 8) {
			t.Fatal("a shut-down domain stays introduced until it is destroyed")
		}
	})
}

// TestReleasesDomidReuse: entries naming a domain that died grant nothing
// to a new domain with its id. From 4.21 this holds even when the id is
// reused before the store handles the death (unique ids); before 4.21 the
// new domain is created only after the death was handled (a documented
// limit of those releases).
func TestReleasesDomidReuse(t *testing.T) {
	eachRelease(t, func(t *testing.T, r *rig, rel domains.Release) {
		d0 := r.dom0()
		r.healthyGuest(d0, 5)
		home := "/local/domain/5"
		d0.call(t, wire.Write, home+"/data", "secret")
		old := r.healthyGuest(d0, 9)
		if got := d0.call(t, wire.SetPerms, home+"/data", "n5", "r9"); got != "OK\x00" {
			t.Fatalf("SET_PERMS: %q", got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := old.Read(ctx, home+"/data"); err != nil {
			t.Fatalf("dom9 cannot read what it was granted: %v", err)
		}
		if rel.Method == domains.DomainState {
			// Destroy and recreate before the loop handles the event.
			r.srv.Mu().Lock()
			r.h.Destroy(9)
			r.h.NewDomain(9)
			r.srv.Mu().Unlock()
		} else {
			r.h.Destroy(9)
			d0.waitReleased(t, r, 9)
			r.h.NewDomain(9)
		}
		d0.waitReleased(t, r, 9)
		d, _ := r.h.Lookup(9)
		c := r.attach(d)
		if _, err := c.Read(ctx, home+"/data"); !isErrno(err, syscall.EACCES) {
			t.Fatalf("new dom9 reads the old one's grant: %v", err)
		}
	})
}

// TestReleasesFailClosed: while the hypervisor refuses every query, a
// domain's existence cannot be established, so an entry naming it grants
// nothing; and a failed query is never taken for a death.
func TestReleasesFailClosed(t *testing.T) {
	eachRelease(t, func(t *testing.T, r *rig, _ domains.Release) {
		d0 := r.dom0()
		r.healthyGuest(d0, 5)
		home := "/local/domain/5"
		d0.call(t, wire.Write, home+"/data", "secret")
		r.healthyGuest(d0, 7)
		d9, _ := r.h.NewDomain(9) // exists, not yet introduced
		r.h.SetDomctlError(syscall.EFAULT)
		if got := d0.call(t, wire.SetPerms, home+"/data", "n5", "r9"); got != "OK\x00" {
			t.Fatalf("SET_PERMS: %q", got)
		}
		r.h.SetShutdown(9, xen.ShutdownPoweroff) // a VIRQ_DOM_EXC while refused
		d0.call(t, wire.Watch, "@releaseDomain", "rel")
		d0.event(t)
		r.h.FireVIRQ(xen.VIRQDomExc)
		if evs := d0.eventsFor(300 * time.Millisecond); len(evs) != 0 {
			t.Fatalf("events while the hypervisor refuses: %q", evs)
		}
		if !introduced(t, d0, 7) {
			t.Fatal("a failed query released a live domain")
		}
		r.h.SetDomctlError(nil)
		c := r.attach(d9)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := c.Read(ctx, home+"/data"); !isErrno(err, syscall.EACCES) {
			t.Fatalf("an entry set while existence was unknown grants: %v", err)
		}
	})
}

// TestSetPermsHypercallsBounded (issue 13, fault 2): SET_PERMS naming
// absent domains costs at most one hypercall per named domain, however
// many domains the host has (it was a scan of every domain per entry),
// and none runs under the engine lock.
func TestSetPermsHypercallsBounded(t *testing.T) {
	eachRelease(t, func(t *testing.T, r *rig, _ domains.Release) {
		d0 := r.dom0()
		for id := uint32(100); id < 160; id++ { // a busy host
			r.h.NewDomain(id)
		}
		c := r.healthyGuest(d0, 5)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Write(ctx, "n", nil); err != nil {
			t.Fatal(err)
		}
		m, err := c.Call(ctx, wire.TransactionStart, 0, []byte{0})
		if err != nil || m.Type != wire.TransactionStart {
			t.Fatalf("TRANSACTION_START: %+v, %v", m, err)
		}
		tx := uint32(atoiT(t, strings.TrimRight(string(m.Payload), "\x00")))
		const n = 200
		before := r.h.DomctlCalls()
		for i := 0; i < n; i++ {
			m, err := c.Call(ctx, wire.SetPerms, tx, wire.JoinStrings("n", "n5", "r1000", "r1001", "r1002", "r1003"))
			if err != nil || m.Type != wire.SetPerms {
				t.Fatalf("SET_PERMS %d: %+v, %v", i, m, err)
			}
		}
		// One hypercall per named domain: the owner and the four absent.
		if calls := r.h.DomctlCalls() - before; calls > 5*n {
			t.Fatalf("%d SET_PERMS naming 5 domains cost %d hypercalls (> %d)", n, calls, 5*n)
		}

		// A hypercall held in flight blocks only the ring loop that made
		// it: dom0's connection is served meanwhile.
		held, release := make(chan struct{}), make(chan struct{})
		r.h.SetDomctlHook(func() {
			select {
			case held <- struct{}{}:
				<-release
			default:
			}
		})
		done := make(chan error, 1)
		go func() {
			_, err := c.Call(ctx, wire.SetPerms, 0, wire.JoinStrings("n", "n5", "r1000"))
			done <- err
		}()
		<-held
		got := servedWhileHeld(t, release, func() string { return d0.call(t, wire.Read, "/local/domain/5/n") })
		r.h.SetDomctlHook(nil)
		if got != "" {
			t.Fatalf("dom0 read during a guest's hypercall: %q", got)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func atoiT(t *testing.T, s string) int {
	t.Helper()
	v, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return v
}

// attach connects a client to an existing fake domain and introduces it.
func (r *rig) attach(d *fake.Domain) *ringclient.Client {
	r.t.Helper()
	g, err := d.Attach()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.e.IntroduceDomain(d.ID(), d.GuestPort(), 0); err != nil {
		r.t.Fatal(err)
	}
	c, err := ringclient.New(g.Page(), g)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { c.Close() })
	return c
}

// TestIntroduceMapsOutsideLock (issue 13, fault 2): the ring page of an
// INTRODUCE is mapped before the engine lock is taken, so a mapping in
// flight holds up no other connection.
func TestIntroduceMapsOutsideLock(t *testing.T) {
	r := newRig(t)
	d0, other := r.dom0(), r.dom0()
	d, err := r.h.NewDomain(12)
	if err != nil {
		t.Fatal(err)
	}
	held, release := make(chan struct{}), make(chan struct{})
	r.h.SetMapHook(func() {
		select {
		case held <- struct{}{}:
			<-release
		default:
		}
	})
	done := make(chan string, 1)
	go func() { done <- d0.call(t, wire.Introduce, "12", "0", itoa(d.GuestPort())) }()
	<-held
	got := servedWhileHeld(t, release, func() string { return other.call(t, wire.Write, "/probe", "x") })
	r.h.SetMapHook(nil)
	if got != "OK\x00" {
		t.Fatalf("write during a mapping: %q", got)
	}
	if got := <-done; got != "OK\x00" {
		t.Fatalf("INTRODUCE: %q", got)
	}
	if !introduced(t, other, 12) {
		t.Fatal("domain 12 not introduced")
	}
}

// servedWhileHeld runs call while a hypercall or mapping is held in flight,
// then lets it go. A call that waits for it (it ran under the engine lock)
// is a deadlock: reported after 10 s rather than hanging the test.
func servedWhileHeld(t *testing.T, release chan struct{}, call func() string) string {
	t.Helper()
	res := make(chan string, 1)
	go func() { res <- call() }()
	select {
	case got := <-res:
		close(release)
		return got
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("another connection waited for the held call: it ran under the engine lock")
		return ""
	}
}
