package xenringtest

import (
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/transport/xenring"
	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/fake"
)

// Options adjusts a Rig. The zero value is the latest release the fake
// plays with the engine's default configuration.
type Options struct {
	// Release is the Xen release the fake hypervisor plays (zero:
	// fake.LatestRelease).
	Release xen.Version
	// Engine, if set, adjusts the engine's configuration before the
	// engine is made (quotas, write rate, live update...). Platform and
	// Logger are already set.
	Engine func(*store.Config)
}

// Rig is the real transport and engine serving fake domains' rings. Its
// fields are there for tests to reach past the rig; the rig owns them.
type Rig struct {
	T   testing.TB
	H   *fake.Hypervisor
	Ev  *fake.EventChannel // the server's event channel handle
	E   *store.Engine
	Srv *xenring.Server
	Log *slog.Logger // discards everything

	stopOnce sync.Once
	stop     chan struct{}
	done     chan error
}

// New starts a rig; t's Cleanup stops it.
func New(t testing.TB, o Options) *Rig {
	t.Helper()
	h := fake.New()
	if o.Release != (xen.Version{}) {
		h.SetRelease(o.Release)
	}
	ev, err := h.OpenEventChannel()
	if err != nil {
		h.Close()
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := xenring.New(ev, h.GrantMapper(), h.MustTracker(), log)
	if err != nil {
		h.Close()
		t.Fatal(err)
	}
	// Domain 0 exists, as on any Xen host.
	if _, err := h.NewDomain(0); err != nil {
		h.Close()
		t.Fatal(err)
	}
	cfg := store.Config{Platform: srv, Logger: log}
	if o.Engine != nil {
		o.Engine(&cfg)
	}
	e := store.New(cfg)
	srv.SetEngine(e)
	if err := srv.WatchDomains(); err != nil {
		h.Close()
		t.Fatal(err)
	}
	r := &Rig{T: t, H: h, Ev: ev, E: e, Srv: srv, Log: log, stop: make(chan struct{}), done: make(chan error, 1)}
	go func() { r.done <- srv.Serve(r.stop) }()
	t.Cleanup(func() {
		r.Stop()
		h.Close()
	})
	return r
}

// Stop ends the server's event loop (once; Cleanup calls it too). An
// error from the loop fails the test.
func (r *Rig) Stop() {
	r.stopOnce.Do(func() {
		close(r.stop)
		if err := <-r.done; err != nil {
			r.T.Error(err)
		}
	})
}

// Attach creates domain id and attaches the test to its ring page in
// process, without introducing it. The guest is closed at Cleanup.
func (r *Rig) Attach(id uint32) (*fake.Domain, *fake.Guest) {
	r.T.Helper()
	d, err := r.H.NewDomain(id)
	if err != nil {
		r.T.Fatal(err)
	}
	g, err := d.Attach()
	if err != nil {
		r.T.Fatal(err)
	}
	r.T.Cleanup(func() { g.Close() })
	return d, g
}

// Introduce introduces d to the engine, as XS_INTRODUCE does: the
// transport maps its page and binds its port.
func (r *Rig) Introduce(d *fake.Domain) {
	r.T.Helper()
	if err := r.E.IntroduceDomain(d.ID(), d.GuestPort(), 0); err != nil {
		r.T.Fatal(err)
	}
}

// Guest creates domain id, attaches to its page and introduces it.
func (r *Rig) Guest(id uint32) (*fake.Domain, *fake.Guest) {
	r.T.Helper()
	d, g := r.Attach(id)
	r.Introduce(d)
	return d, g
}

// Dom0 opens a privileged connection to the rig's engine.
func (r *Rig) Dom0() *Dom0 { return Dom0For(r.E) }

// Dom0 is an in-process privileged connection: requests are handled
// synchronously; replies and watch events queue on Conn.
type Dom0 struct {
	Conn *store.Conn
	// Wake has a value when Conn may have new output (watch events).
	Wake chan struct{}
}

// Dom0For opens a privileged connection to e (a rig's engine, or one a
// test made itself).
func Dom0For(e *store.Engine) *Dom0 {
	d := &Dom0{Wake: make(chan struct{}, 1)}
	d.Conn = e.NewConn(0, true, func() {
		select {
		case d.Wake <- struct{}{}:
		default:
		}
	})
	return d
}

// Call sends one request and returns the reply's payload, or "error " and
// the payload of an error reply. Watch events before the reply are
// dropped.
func (d *Dom0) Call(t testing.TB, typ wire.Type, args ...string) string {
	t.Helper()
	d.Conn.Handle(wire.Msg{Type: typ, ReqID: 1, Payload: wire.JoinStrings(args...)})
	for {
		b, ok := d.Conn.NextOutput()
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

// Event waits up to 10 s for the next watch event and returns its path.
func (d *Dom0) Event(t testing.TB) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if b, ok := d.Conn.NextOutput(); ok {
			m, _ := wire.Decode(b)
			if m.Type == wire.WatchEvent {
				parts, _ := wire.SplitStrings(m.Payload)
				return parts[0]
			}
			continue
		}
		select {
		case <-d.Wake:
		case <-deadline:
			t.Fatal("no watch event within 10 s")
		}
	}
}

// MakeHome creates /local/domain/<id> owned by id, as the toolstack does,
// and returns its path.
func (d *Dom0) MakeHome(t testing.TB, id uint32) string {
	t.Helper()
	home := "/local/domain/" + strconv.FormatUint(uint64(id), 10)
	if got := d.Call(t, wire.Write, home, ""); got != "OK\x00" {
		t.Fatalf("write %s: %q", home, got)
	}
	if got := d.Call(t, wire.SetPerms, home, "n"+strconv.FormatUint(uint64(id), 10)); got != "OK\x00" {
		t.Fatalf("set perms %s: %q", home, got)
	}
	return home
}

// Share creates path owned by dom0 that each of domids may read and write,
// as a toolstack sets up a node several domains share. The domains must
// exist: permissions naming a domain that does not are dropped.
func (d *Dom0) Share(t testing.TB, path string, domids ...uint32) {
	t.Helper()
	perms := []string{path, "n0"}
	for _, id := range domids {
		perms = append(perms, "b"+strconv.FormatUint(uint64(id), 10))
	}
	if got := d.Call(t, wire.Write, path, ""); got != "OK\x00" {
		t.Fatalf("write %s: %q", path, got)
	}
	if got := d.Call(t, wire.SetPerms, perms...); got != "OK\x00" {
		t.Fatalf("set perms %v: %q", perms, got)
	}
}
