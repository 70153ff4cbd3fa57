package xenring

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/fake"
	"github.com/xsstub/xenstored/xen/ring"
	"github.com/xsstub/xenstored/xen/ringclient"
)

type rig struct {
	t   *testing.T
	h   *fake.Hypervisor
	ev  *fake.EventChannel // the server's handle
	e   *store.Engine
	srv *Server
	log *slog.Logger

	stopOnce sync.Once
	stop     chan struct{}
	done     chan error
}

// stopLoop ends the server's event loop (once).
func (r *rig) stopLoop() {
	r.stopOnce.Do(func() {
		close(r.stop)
		if err := <-r.done; err != nil {
			r.t.Error(err)
		}
	})
}

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
	h := fake.New()
	h.SetRelease(v)
	ev, err := h.OpenEventChannel()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := New(ev, h.GrantMapper(), h.MustTracker(), log)
	if err != nil {
		t.Fatal(err)
	}
	// Domain 0 exists, as on any Xen host.
	if _, err := h.NewDomain(0); err != nil {
		t.Fatal(err)
	}
	cfg := store.Config{Platform: srv, Logger: log}
	if mod != nil {
		mod(&cfg)
	}
	e := store.New(cfg)
	srv.SetEngine(e)
	if err := srv.WatchDomains(); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, h: h, ev: ev, e: e, srv: srv, log: log, stop: make(chan struct{}), done: make(chan error, 1)}
	go func() { r.done <- srv.Serve(r.stop) }()
	t.Cleanup(func() {
		r.stopLoop()
		h.Close()
	})
	return r
}

// guest creates domain id, introduces it and returns a client on its ring.
func (r *rig) guest(id uint32) (*fake.Domain, *fake.Guest, *ringclient.Client) {
	r.t.Helper()
	d, err := r.h.NewDomain(id)
	if err != nil {
		r.t.Fatal(err)
	}
	g, err := d.Attach()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.e.IntroduceDomain(id, d.GuestPort(), 0); err != nil {
		r.t.Fatal(err)
	}
	c, err := ringclient.New(g.Page(), g)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { c.Close() })
	return d, g, c
}

// dom0 is an in-process privileged connection.
type dom0 struct {
	c    *store.Conn
	wake chan struct{}
}

func (r *rig) dom0() *dom0 {
	d := &dom0{wake: make(chan struct{}, 1)}
	d.c = r.e.NewConn(0, true, func() {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	})
	return d
}

func (d *dom0) call(t *testing.T, typ wire.Type, args ...string) string {
	t.Helper()
	d.c.Handle(wire.Msg{Type: typ, ReqID: 1, Payload: wire.JoinStrings(args...)})
	for {
		b, ok := d.c.NextOutput()
		if !ok {
			t.Fatalf("no reply to %v", typ)
		}
		m, _ := wire.Decode(b)
		if m.Type == wire.WatchEvent {
			continue
		}
		if m.Type == wire.Error {
			return "error " + string(m.Payload)
		}
		return string(m.Payload)
	}
}

// event waits for the next watch event on d.
func (d *dom0) event(t *testing.T) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if b, ok := d.c.NextOutput(); ok {
			m, _ := wire.Decode(b)
			if m.Type == wire.WatchEvent {
				parts, _ := wire.SplitStrings(m.Payload)
				return parts[0]
			}
			continue
		}
		select {
		case <-d.wake:
		case <-deadline:
			t.Fatal("no watch event within 10 s")
		}
	}
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
	r.srv.mu.Lock()
	before := r.srv.wakeWrites
	r.srv.mu.Unlock()
	const n = 200
	for i := 0; i < n; i++ {
		if _, err := c.Read(ctx, "k"); err != nil {
			t.Fatal(err)
		}
	}
	r.srv.mu.Lock()
	writes := r.srv.wakeWrites - before
	r.srv.mu.Unlock()
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
