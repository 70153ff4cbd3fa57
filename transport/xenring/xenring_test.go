package xenring_test

import (
	"context"
	"encoding/binary"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/transport/xenring"
	"github.com/xsstub/xenstored/transport/xenring/xenringtest"
	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/fake"
	"github.com/xsstub/xenstored/xen/ring"
	"github.com/xsstub/xenstored/xen/ringclient"
)

// rig is xenringtest's Rig under the short names these tests use.
type rig struct {
	*xenringtest.Rig
	t   *testing.T
	h   *fake.Hypervisor
	ev  *fake.EventChannel // the server's handle
	e   *store.Engine
	srv *xenring.Server
	log *slog.Logger
}

// stopLoop ends the server's event loop (once).
func (r *rig) stopLoop() { r.Stop() }

func newRig(t *testing.T) *rig { return newRigQuotas(t, nil) }

// newRigQuotas builds the rig with explicit quotas (nil: defaults).
func newRigQuotas(t *testing.T, q *store.Quotas) *rig { return newRigAt(t, q, fake.LatestRelease) }

// newRigAt builds the rig on a fake hypervisor playing Xen release v.
func newRigAt(t *testing.T, q *store.Quotas, v xen.Version) *rig {
	t.Helper()
	return newRigConfigAt(t, func(c *store.Config) { c.Quotas = q }, v)
}

// newRigConfig builds the rig; mod adjusts the engine's configuration.
func newRigConfig(t *testing.T, mod func(*store.Config)) *rig {
	return newRigConfigAt(t, mod, fake.LatestRelease)
}

func newRigConfigAt(t *testing.T, mod func(*store.Config), v xen.Version) *rig {
	t.Helper()
	x := xenringtest.New(t, xenringtest.Options{Release: v, Engine: mod})
	return &rig{Rig: x, t: t, h: x.H, ev: x.Ev, e: x.E, srv: x.Srv, log: x.Log}
}

// guest creates domain id, introduces it and returns a client on its ring.
func (r *rig) guest(id uint32) (*fake.Domain, *fake.Guest, *ringclient.Client) {
	r.t.Helper()
	d, g := r.Guest(id)
	c, err := ringclient.New(g.Page(), g)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { c.Close() })
	return d, g, c
}

// dom0 is an in-process privileged connection.
type dom0 struct{ *xenringtest.Dom0 }

func (r *rig) dom0() *dom0 { return &dom0{r.Dom0()} }

func (d *dom0) call(t *testing.T, typ wire.Type, args ...string) string {
	t.Helper()
	return d.Call(t, typ, args...)
}

// event waits for the next watch event on d.
func (d *dom0) event(t *testing.T) string {
	t.Helper()
	return d.Event(t)
}

func TestGuestsOverRings(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	const n = 50
	clients := make([]*ringclient.Client, n)
	d0 := r.dom0()
	for i := range clients {
		id := uint32(10 + i)
		_, _, clients[i] = r.guest(id)
		home := "/local/domain/" + strconv.Itoa(int(id))
		d0.call(t, wire.Write, home, "")
		if got := d0.call(t, wire.SetPerms, home, "n"+strconv.Itoa(int(id))); got != "OK\x00" {
			t.Fatalf("set perms: %q", got)
		}
	}
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				v := []byte(strconv.Itoa(i*100 + j))
				if err := c.Write(ctx, "k"+strconv.Itoa(j), v); err != nil {
					t.Errorf("guest %d write: %v", i, err)
					return
				}
				got, err := c.Read(ctx, "k"+strconv.Itoa(j))
				if err != nil || string(got) != string(v) {
					t.Errorf("guest %d read %q, %v", i, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := d0.call(t, wire.Read, "/local/domain/12/k3"); got != "203" {
		t.Fatalf("dom0 sees %q", got)
	}
}

func TestDomainDeathFiresReleaseDomain(t *testing.T) {
	r := newRig(t)
	d0 := r.dom0()
	d0.call(t, wire.Watch, "@releaseDomain", "r")
	d0.event(t) // initial
	_, _, g := r.guest(7)
	d0.call(t, wire.Write, "/local/domain/7", "")
	d0.call(t, wire.SetPerms, "/local/domain/7", "n7")
	if err := g.Write(context.Background(), "name", []byte("guest")); err != nil {
		t.Fatal(err)
	}
	if err := r.h.SetDying(7); err != nil {
		t.Fatal(err)
	}
	if got := d0.event(t); got != "@releaseDomain" {
		t.Fatalf("event %q", got)
	}
	if got := d0.call(t, wire.IsDomainIntroduced, "7"); got != "F\x00" {
		t.Fatalf("still introduced: %q", got)
	}
	if got := d0.call(t, wire.Read, "/local/domain/7/name"); got != "error ENOENT\x00" {
		t.Fatalf("node of dead domain: %q", got)
	}
}

// Hostile guests (XSA-38, XSA-420, XSA-325): bad indices or a huge length
// break only that ring; the domain stays introduced; others are served.
func TestHostileRings(t *testing.T) {
	attacks := []struct {
		name string
		hit  func(page []byte)
		want uint32
	}{
		{"indices off by more than the ring", func(p []byte) {
			binary.LittleEndian.PutUint32(p[2052:], 5000) // req_prod
		}, ring.ErrorRingIdx},
		{"4 GiB length", func(p []byte) {
			var h [16]byte
			wire.Header{Type: wire.Read, ReqID: 1, Len: 0xffffffff}.Put(h[:])
			copy(p[0:], h[:])
			binary.LittleEndian.PutUint32(p[2052:], 16)
		}, ring.ErrorProto},
	}
	for i, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			r := newRig(t)
			ctx := context.Background()
			_, _, good := r.guest(20)
			bad, err := r.h.NewDomain(uint32(30 + i))
			if err != nil {
				t.Fatal(err)
			}
			g, _ := bad.Attach()
			if err := r.e.IntroduceDomain(bad.ID(), bad.GuestPort(), 0); err != nil {
				t.Fatal(err)
			}
			a.hit(g.Page())
			g.Notify()
			deadline := time.Now().Add(10 * time.Second)
			for binary.LittleEndian.Uint32(g.Page()[2072:]) != a.want {
				if time.Now().After(deadline) {
					t.Fatalf("error word %d, want %d", binary.LittleEndian.Uint32(g.Page()[2072:]), a.want)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if _, err := good.Read(ctx, "/tool/xenstored"); err == nil || err.Error() != "xenstore READ: EACCES" {
				t.Fatalf("good guest unserved: %v", err)
			}
			d0 := r.dom0()
			if got := d0.call(t, wire.IsDomainIntroduced, strconv.Itoa(int(bad.ID()))); got != "T\x00" {
				t.Fatalf("broken domain released early: %q", got)
			}
		})
	}
}

// TestOwnRepliesWriteNoWakePipe: the reply to a request the loop is
// handling wakes the loop from within; that costs no pipe write (before,
// every round trip wrote the pipe once, and the loop polled and read it).
// A wake from elsewhere (dom0's write firing the guest's watch) still
// reaches the guest.
func TestOwnRepliesWriteNoWakePipe(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	_, _, c := r.guest(7)
	d0 := r.dom0()
	d0.call(t, wire.Write, "/local/domain/7", "")
	d0.call(t, wire.SetPerms, "/local/domain/7", "n7")
	if err := c.Write(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	before := r.srv.WakeWrites()
	const n = 200
	for i := 0; i < n; i++ {
		if _, err := c.Read(ctx, "k"); err != nil {
			t.Fatal(err)
		}
	}
	writes := r.srv.WakeWrites() - before
	if writes > n/10 {
		t.Errorf("%d round trips wrote the wake pipe %d times", n, writes)
	}
	if err := c.Watch(ctx, "k", "tok"); err != nil {
		t.Fatal(err)
	}
	d0.call(t, wire.Write, "/local/domain/7/k", "w")
	deadline := time.After(10 * time.Second)
	for got := 0; got < 2; { // the watch's first event, then the write's
		select {
		case <-c.Events():
			got++
		case <-deadline:
			t.Fatalf("%d of 2 watch events reached the guest", got)
		}
	}
}
