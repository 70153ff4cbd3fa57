package ringtest

import (
	"testing"
	"time"

	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xen/fake"
	"github.com/xsstub/xenstored/xen/ring"
)

// guestRing sets up one introduced domain and returns its guest end.
func guestRing(t *testing.T) (*fake.Guest, *ring.Guest) {
	t.Helper()
	h := fake.New()
	ec, err := h.OpenEventChannel()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(ec, h.GrantMapper(), h.MustTracker())
	if err != nil {
		t.Fatal(err)
	}
	r, err := Start(s)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := h.NewDomain(1)
	g, err := d.Attach()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Introduce(1, d.GuestPort()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Stop()
		g.Close()
		h.Close()
	})
	gr, _ := ring.NewGuest(g.Page())
	return g, gr
}

func waitFor(t *testing.T, g *fake.Guest, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		g.Wait(50 * time.Millisecond)
	}
}

func TestFeaturesAdvertised(t *testing.T) {
	_, gr := guestRing(t)
	if f := gr.Features(); f&(ring.FeatureReconnection|ring.FeatureError) != 3 {
		t.Fatalf("features %#x", f)
	}
}

func TestReconnect(t *testing.T) {
	g, gr := guestRing(t)
	// Half a request in flight, then ask for a reconnect.
	gr.Write([]byte{1, 2, 3, 4, 5})
	gr.RequestReconnect()
	g.Notify()
	waitFor(t, g, func() bool { return gr.Connection() == ring.Connected })
	if n, _ := gr.Readable(); n != 0 {
		t.Fatalf("%d response bytes after reconnect", n)
	}
	if w, _ := gr.Writable(); w != ring.RingSize {
		t.Fatalf("request queue not emptied: %d free", w)
	}
	// The connection works afterwards, on a packet boundary.
	gr.Write((&wire.Msg{Type: wire.Write, ReqID: 7, Payload: []byte("/a\x00b")}).Encode())
	g.Notify()
	waitFor(t, g, func() bool { n, _ := gr.Readable(); return n >= wire.HeaderSize+3 })
	buf := make([]byte, 64)
	n, _ := gr.Read(buf)
	h, err := wire.ParseHeader(buf[:n])
	if err != nil || h.ReqID != 7 || h.Type != wire.Write {
		t.Fatalf("reply %+v, %v", h, err)
	}
}

func TestProtocolErrors(t *testing.T) {
	tests := []struct {
		name string
		do   func(gr *ring.Guest, page []byte)
		want uint32
	}{
		{"payload too long", func(gr *ring.Guest, _ []byte) {
			h := make([]byte, wire.HeaderSize)
			wire.Header{Type: wire.Read, Len: wire.PayloadMax + 1}.Put(h)
			gr.Write(h)
		}, ring.ErrorProto},
		{"bad ring index", func(_ *ring.Guest, page []byte) {
			page[2052+3] = 0x10 // req_prod far ahead of req_cons
		}, ring.ErrorRingIdx},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, gr := guestRing(t)
			tt.do(gr, g.Page())
			g.Notify()
			waitFor(t, g, func() bool { return gr.Error() != ring.ErrorNone })
			if e := gr.Error(); e != tt.want {
				t.Fatalf("error word %d, want %d", e, tt.want)
			}
		})
	}
}
