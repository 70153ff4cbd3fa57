package ringclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/transport/xenring/xenringtest"
	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/fake"
	"github.com/xsstub/xenstored/xen/ring"
)

// env is the real ring transport and store engine over a fake
// hypervisor (xenringtest), with a privileged dom0 connection to play the
// toolstack.
type env struct {
	*xenringtest.Rig
	d0 *xenringtest.Dom0
}

// newEnv starts the rig. A guest gets what a domU gets from the real
// store, with two limits lifted because these tests are about the client:
// no write rate limit (XSA-206: it would make TestConcurrentCalls slow)
// and no node-size quota, so that values as big as a request can carry
// are stored.
func newEnv(t *testing.T) *env {
	t.Helper()
	r := xenringtest.New(t, xenringtest.Options{Engine: func(c *store.Config) {
		c.WriteRate = -1
		q := store.DefaultQuotas()
		q.Hard[store.QNodeSize] = 0
		c.Quotas = &q
	}})
	return &env{Rig: r, d0: r.Dom0()}
}

// client creates domain domid, introduces it, gives it its home
// (/local/domain/<domid>, which relative paths name) and returns a client
// on its ring and the home's path.
func (e *env) client(t *testing.T, domid uint32) (*Client, string) {
	t.Helper()
	_, g := e.Guest(domid)
	home := e.d0.MakeHome(t, domid)
	c, err := New(g.Page(), g)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, home
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

func nextEvent(t *testing.T, c *Client) WatchEvent {
	t.Helper()
	select {
	case ev, ok := <-c.Events():
		if !ok {
			t.Fatal("events closed")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no watch event")
	}
	return WatchEvent{}
}

func TestBasicOps(t *testing.T) {
	e := newEnv(t)
	c, home := e.client(t, 1)
	x := ctx(t)
	if err := c.Write(x, home+"/a", []byte("b")); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Read(x, home+"/a"); err != nil || string(v) != "b" {
		t.Fatalf("Read = %q, %v", v, err)
	}
	if v, err := c.Read(x, "a"); err != nil || string(v) != "b" {
		t.Fatalf("Read relative = %q, %v", v, err)
	}
	if _, err := c.Read(x, home+"/missing"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("Read missing: %v", err)
	}
	var re *ReplyError
	if _, err := c.Read(x, home+"/missing"); !errors.As(err, &re) || re.Name != "ENOENT" || re.Op != wire.Read {
		t.Fatalf("ReplyError = %+v", re)
	}
	if err := c.Write(x, "/a", nil); !errors.As(err, &re) || re.Name != "EACCES" || re.Op != wire.Write {
		t.Fatalf("write outside the home: %v", err)
	}
	d := home + "/d"
	for _, p := range []string{d + "/x", d + "/y", d + "/y/z"} {
		if err := c.Write(x, p, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Mkdir(x, d+"/w"); err != nil {
		t.Fatal(err)
	}
	names, err := c.Directory(x, d)
	slices.Sort(names) // xenstore gives children in no defined order
	if err != nil || !slices.Equal(names, []string{"w", "x", "y"}) {
		t.Fatalf("Directory = %v, %v", names, err)
	}
	if err := c.Rm(x, d+"/y"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(x, d+"/y/z"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("child survived Rm: %v", err)
	}
	if _, err := c.Call(x, wire.Type(99), 0, nil); !errors.Is(err, syscall.ENOSYS) {
		t.Fatalf("unknown op: %v", err)
	}
	if _, err := c.Call(x, wire.Write, 0, make([]byte, wire.PayloadMax+1)); err == nil {
		t.Fatal("oversized payload accepted")
	}
}

// TestLargeMessages sends values bigger than the ring, so every request and
// reply is split across several ring fills and wraps; the largest makes a
// request of exactly wire.PayloadMax bytes.
func TestLargeMessages(t *testing.T) {
	e := newEnv(t)
	c, home := e.client(t, 1)
	x := ctx(t)
	path := home + "/v"
	for _, size := range []int{1000, 1024, 1025, 3000, wire.PayloadMax - len(path) - 1} {
		val := bytes.Repeat([]byte{byte(size)}, size)
		if err := c.Write(x, path, val); err != nil {
			t.Fatalf("Write %d: %v", size, err)
		}
		got, err := c.Read(x, path)
		if err != nil || !bytes.Equal(got, val) {
			t.Fatalf("Read %d: %d bytes, %v", size, len(got), err)
		}
	}
}

func TestConcurrentCalls(t *testing.T) {
	e := newEnv(t)
	c, home := e.client(t, 1)
	x := ctx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 15 {
				p := fmt.Sprintf("%s/c/%d/%d", home, i, j)
				v := []byte(fmt.Sprintf("v%d.%d", i, j))
				if err := c.Write(x, p, v); err != nil {
					errs <- err
					return
				}
				got, err := c.Read(x, p)
				if err != nil || !bytes.Equal(got, v) {
					errs <- fmt.Errorf("%s: %q, %v", p, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestWatches: domain 1 watches a node both domains may use (dom0 made
// it so); domain 2's changes below it reach domain 1's client.
func TestWatches(t *testing.T) {
	e := newEnv(t)
	a, _ := e.client(t, 1)
	b, _ := e.client(t, 2)
	e.d0.Share(t, "/w", 1, 2)
	x := ctx(t)
	if err := a.Watch(x, "/w", "tok"); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, a); ev != (WatchEvent{"/w", "tok"}) {
		t.Fatalf("initial event %+v", ev)
	}
	// A change by another domain fires a's watch.
	if err := b.Write(x, "/w/sub", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, a); ev != (WatchEvent{"/w/sub", "tok"}) {
		t.Fatalf("event %+v", ev)
	}
	// Events queue up without blocking replies even if nobody reads them.
	for i := range 50 {
		if err := b.Write(x, fmt.Sprintf("/w/%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Read(x, "/w/49"); err != nil {
		t.Fatalf("reply blocked behind events: %v", err)
	}
	for i := range 50 {
		if ev := nextEvent(t, a); ev.Path != fmt.Sprintf("/w/%d", i) {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	if err := a.Unwatch(x, "/w", "tok"); err != nil {
		t.Fatal(err)
	}
	if err := a.Unwatch(x, "/w", "tok"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("second Unwatch: %v", err)
	}
}

// TestDomainDeath: when domain 2 shuts down or is destroyed, the transport
// notices (VIRQ_DOM_EXC, then the domain's state) and domain 1's client
// gets @releaseDomain, which dom0 let it read. A destroyed domain is
// released (no longer introduced, its home gone); a shut-down one stays
// introduced until the toolstack releases it.
func TestDomainDeath(t *testing.T) {
	tests := []struct {
		name     string
		kill     func(h *fake.Hypervisor) error
		released bool
	}{
		{"shutdown", func(h *fake.Hypervisor) error { return h.SetShutdown(2, xen.ShutdownPoweroff) }, false},
		{"destroyed", func(h *fake.Hypervisor) error { return h.Destroy(2) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			a, home1 := e.client(t, 1)
			_, home2 := e.client(t, 2)
			x := ctx(t)
			if got := e.d0.Call(t, wire.SetPerms, "@releaseDomain", "n0", "r1"); got != "OK\x00" {
				t.Fatalf("set perms of @releaseDomain: %q", got)
			}
			if err := a.Watch(x, "@releaseDomain", "r"); err != nil {
				t.Fatal(err)
			}
			nextEvent(t, a)
			if err := tt.kill(e.H); err != nil {
				t.Fatal(err)
			}
			if ev := nextEvent(t, a); ev != (WatchEvent{"@releaseDomain", "r"}) {
				t.Fatalf("event %+v", ev)
			}
			introduced := map[bool]string{true: "T\x00", false: "F\x00"}
			if got := e.d0.Call(t, wire.IsDomainIntroduced, "2"); got != introduced[!tt.released] {
				t.Fatalf("domain 2 introduced: %q", got)
			}
			if got := e.d0.Call(t, wire.IsDomainIntroduced, "1"); got != introduced[true] {
				t.Fatalf("domain 1 introduced: %q", got)
			}
			if got := e.d0.Call(t, wire.Read, home2); (got == "error ENOENT\x00") != tt.released {
				t.Fatalf("home of domain 2: %q", got)
			}
			if _, err := a.Read(x, home1); err != nil {
				t.Fatalf("domain 1 no longer served: %v", err)
			}
		})
	}
}

func TestCloseAndCancel(t *testing.T) {
	e := newEnv(t)
	c, _ := e.client(t, 1)
	if err := c.Watch(ctx(t), "x", "t"); err != nil {
		t.Fatal(err)
	}
	cx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Read(cx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(ctx(t), "x"); !errors.Is(err, ErrClosed) || !errors.Is(err, ErrBroken) {
		t.Fatalf("call after Close: %v", err)
	}
	// The unread initial watch event is dropped and the channel closed.
	select {
	case _, ok := <-c.Events():
		if ok {
			// One queued event may have been handed over before Close.
			if _, ok := <-c.Events(); ok {
				t.Fatal("events not closed")
			}
		}
	case <-time.After(time.Second):
		t.Fatal("events not closed")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// rawDomain gives a client on a fake domain whose server side the test
// drives by hand.
func rawDomain(t *testing.T) (*Client, *ring.Server, *fake.EventChannel, uint32) {
	t.Helper()
	h := fake.New()
	t.Cleanup(func() { h.Close() })
	ec, err := h.OpenEventChannel()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := h.NewDomain(3)
	g, err := d.Attach()
	if err != nil {
		t.Fatal(err)
	}
	port, err := ec.BindInterdomain(3, d.GuestPort())
	if err != nil {
		t.Fatal(err)
	}
	m, err := h.GrantMapper().MapForeign(3, xen.GrantRefXenstore)
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := ring.NewServer(m.Page())
	c, err := New(g.Page(), g)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		g.Close()
		m.Unmap()
	})
	return c, srv, ec, port
}

// readRequests waits for n complete requests on the server side.
func readRequests(t *testing.T, srv *ring.Server, n int) []wire.Msg {
	t.Helper()
	var buf []byte
	tmp := make([]byte, 1024)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		k, err := srv.Read(tmp)
		if err != nil {
			t.Fatal(err)
		}
		buf = append(buf, tmp[:k]...)
		msgs, _, err := splitMessages(buf)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) >= n {
			return msgs
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("fewer than %d requests arrived", n)
	return nil
}

// TestOutOfOrderReplies: replies are matched by req_id, not order.
func TestOutOfOrderReplies(t *testing.T) {
	c, srv, ec, port := rawDomain(t)
	x := ctx(t)
	type res struct {
		v   string
		err error
	}
	results := make([]chan res, 3)
	for i := range results {
		results[i] = make(chan res, 1)
		go func() {
			v, err := c.Read(x, fmt.Sprintf("/%d", i))
			results[i] <- res{string(v), err}
		}()
	}
	reqs := readRequests(t, srv, 3)
	for i := len(reqs) - 1; i >= 0; i-- {
		r := reqs[i]
		path, _ := wire.SplitStrings(r.Payload)
		srv.Write((&wire.Msg{Type: wire.Read, ReqID: r.ReqID, Payload: []byte("val" + path[0])}).Encode())
	}
	ec.Notify(port)
	for i, ch := range results {
		r := <-ch
		if r.err != nil || r.v != fmt.Sprintf("val/%d", i) {
			t.Errorf("call %d: %q, %v", i, r.v, r.err)
		}
	}
}

// TestBrokenConnection: each server misbehaviour ends the client with
// ErrBroken.
func TestBrokenConnection(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(srv *ring.Server, page []byte)
	}{
		{"oversized reply header", func(srv *ring.Server, _ []byte) {
			h := make([]byte, 16)
			wire.Header{Type: wire.Read, ReqID: 1, Len: wire.PayloadMax + 1}.Put(h)
			srv.Write(h)
		}},
		{"error word set", func(srv *ring.Server, _ []byte) { srv.SetError(ring.ErrorProto) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, srv, ec, port := rawDomain(t)
			errc := make(chan error, 1)
			go func() { _, err := c.Read(ctx(t), "/a"); errc <- err }()
			readRequests(t, srv, 1)
			tt.break_(srv, nil)
			ec.Notify(port)
			select {
			case err := <-errc:
				if !errors.Is(err, ErrBroken) {
					t.Fatalf("err = %v, want ErrBroken", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("call did not fail")
			}
			if _, err := c.Read(ctx(t), "/b"); !errors.Is(err, ErrBroken) {
				t.Fatalf("later call: %v", err)
			}
		})
	}
}

// TestBadIndices: the server corrupts rsp indices; the client stops.
func TestBadIndices(t *testing.T) {
	h := fake.New()
	defer h.Close()
	ec, _ := h.OpenEventChannel()
	d, _ := h.NewDomain(4)
	g, _ := d.Attach()
	defer g.Close()
	port, _ := ec.BindInterdomain(4, d.GuestPort())
	c, err := New(g.Page(), g)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m, _ := h.GrantMapper().MapForeign(4, 1)
	defer m.Unmap()
	// rsp_prod (offset 2060) far beyond rsp_cons.
	m.Page()[2060+3] = 0x40
	ec.Notify(port)
	if _, err := c.Read(ctx(t), "/a"); !errors.Is(err, ErrBroken) || !errors.Is(err, ring.ErrRingIndex) {
		t.Fatalf("err = %v, want ErrBroken wrapping ErrRingIndex", err)
	}
}
