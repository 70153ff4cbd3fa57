package xenring_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/transport/conn"
	"github.com/xsstub/xenstored/transport/xenring"
	"github.com/xsstub/xenstored/transport/xenring/xenringtest"
	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xen/ring"
)

// capture is a LiveUpdater that, instead of executing a new daemon,
// freezes the rings and keeps what a new daemon would get.
type capture struct {
	srv   *xenring.Server
	st    *store.State
	rings []conn.Handover
}

func (c *capture) CheckBinary(string) error { return nil }

func (c *capture) NewImage(int) (io.WriteCloser, error) { return nil, errors.New("no images here") }

func (c *capture) Exec(st *store.State, _ string, _ string) error {
	c.st, c.rings = st, c.srv.Freeze()
	if err := c.srv.UnwatchDomains(); err != nil {
		return err
	}
	return errors.New("captured")
}

// TestRingsAcrossLiveUpdate: fake-ring guests go on across a live update
// done in-process (the state and the rings handed from one engine and
// transport to new ones on the same event channel handle, as an exec
// would): a watch keeps firing, a request written half before the switch
// and half after is answered once, queued output is delivered, domain
// deaths are still seen.
func TestRingsAcrossLiveUpdate(t *testing.T) {
	cap := &capture{}
	r := newRigConfig(t, func(c *store.Config) { c.LiveUpdate = cap })
	cap.srv = r.srv
	d0 := r.dom0()
	watcher := r.healthyGuest(d0, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := watcher.Watch(ctx, "/local/domain/5/w", "tok"); err != nil {
		t.Fatal(err)
	}
	<-watcher.Events() // the initial event
	_, g6 := r.rawGuest(6)
	makeHome(t, d0, 6)
	rg, err := ring.NewGuest(g6.Page())
	if err != nil {
		t.Fatal(err)
	}
	req := enc(wire.Read, 41, 0, []byte("/local/domain/6\x00"))
	rawPut(t, g6, rg, req[:9]) // half a header before the switch
	time.Sleep(20 * time.Millisecond)

	// The update: the engine freezes everything and hands it over.
	if got := d0.call(t, wire.Control, "live-update", "-f", "/new"); got != "OK\x00" {
		t.Fatal(got)
	}
	d0.call(t, wire.Control, "live-update", "-s")
	if cap.st == nil {
		t.Fatal("no handover")
	}
	r.stopLoop()
	srv2, err := xenring.New(r.ev, r.h.GrantMapper(), r.h.MustTracker(), r.log)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := store.Restore(store.Config{Platform: srv2, Logger: r.log}, cap.st)
	if err != nil {
		t.Fatal(err)
	}
	srv2.SetEngine(e2)
	if err := srv2.WatchDomains(); err != nil {
		t.Fatal(err)
	}
	for _, h := range cap.rings {
		if err := srv2.Adopt(e2.ConnByID(h.Store.ID()), uint32(h.State.FD), h.State.In, h.State.Out); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- srv2.Serve(stop) }()
	defer func() { close(stop); <-done }()
	nd0 := &dom0{xenringtest.Dom0For(e2)}

	// The rest of the request; its answer comes once.
	rawPut(t, g6, rg, req[9:])
	rr := &rawReader{g: g6, rg: rg}
	m, ok := rr.next(t, 10*time.Second)
	if !ok || m.ReqID != 41 || m.Type != wire.Read {
		t.Fatalf("request split across the update: %+v %v", m, ok)
	}
	if m, ok := rr.next(t, 200*time.Millisecond); ok {
		t.Fatalf("answered twice: %+v", m)
	}
	// The watch fires in the new daemon.
	nd0.call(t, wire.Write, "/local/domain/5/w", "after")
	select {
	case ev := <-watcher.Events():
		if ev.Path != "/local/domain/5/w" || ev.Token != "tok" {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch lost across the update")
	}
	if v, err := watcher.Read(ctx, "/local/domain/5/w"); err != nil || string(v) != "after\x00" {
		t.Fatalf("guest read after the update: %q %v", v, err)
	}
	// Deaths are seen by the new daemon.
	nd0.call(t, wire.Watch, "@releaseDomain", "rel")
	r.h.Destroy(6)
	deadline := time.Now().Add(10 * time.Second)
	for introduced(t, nd0, 6) {
		if time.Now().After(deadline) {
			t.Fatal("death after the update not seen")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
