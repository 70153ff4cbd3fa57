package bench

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xen/fake"
	"github.com/xsstub/xenstored/xen/ring"
)

// driveRings is the guest side of RingThroughput without ring clients: one
// goroutine (one thread) drives every guest's ring directly, keeping depth
// requests in flight on each, waiting for the server's notifications on
// the guests' one GuestEvents handle ge (one descriptor for all). It is
// what lets a 2-core machine measure the transport with 1000 guests:
// ringclient's goroutine per guest blocks a thread in poll(2) each, and
// 1000 threads would measure the scheduler instead.
//
// The server answers a ring's requests in order, so replies are matched
// first-in first-out. stop is checked between wake-ups; after it is set no
// new requests are issued and the call returns once every ring drained.
func driveRings(ge *fake.GuestEvents, guests []*fake.Guest, depth int, cycle []ringRequest, stop func(done uint64) bool) (*Histogram, error) {
	type dg struct {
		g     *fake.Guest
		r     *ring.Guest
		next  int
		out   []byte
		in    []byte
		sent  []time.Time // FIFO of in-flight send times
		ready bool
	}
	// Notifications from before (ring clients during setup) are stale.
	if _, err := ge.Pending(); err != nil {
		return nil, err
	}
	ds := make([]*dg, len(guests))
	byGuest := make(map[*fake.Guest]*dg, len(guests))
	reqs := make([][]byte, len(cycle))
	for i, c := range cycle {
		reqs[i] = (&wire.Msg{Type: c.typ, ReqID: uint32(i + 1), Payload: c.payload}).Encode()
	}
	for i, g := range guests {
		r, err := ring.NewGuest(g.Page())
		if err != nil {
			return nil, err
		}
		d := &dg{g: g, r: r}
		ds[i] = d
		byGuest[g] = d
	}
	lat := &Histogram{}
	stopping := false
	// push queues one request and writes what fits.
	push := func(d *dg) {
		d.out = append(d.out, reqs[d.next%len(reqs)]...)
		d.next++
		d.sent = append(d.sent, time.Now())
	}
	flush := func(d *dg) error {
		if len(d.out) > 0 {
			n, err := d.r.Write(d.out)
			if err != nil {
				return err
			}
			d.out = d.out[:copy(d.out, d.out[n:])]
		}
		return d.g.Notify()
	}
	for _, d := range ds {
		for k := 0; k < depth; k++ {
			push(d)
		}
		if err := flush(d); err != nil {
			return nil, err
		}
	}
	inflight := len(ds) * depth
	fds := []unix.PollFd{{Fd: int32(ge.Fd()), Events: unix.POLLIN}}
	buf := make([]byte, 4096)
	for inflight > 0 {
		if !stopping && stop(lat.Count()) {
			stopping = true
		}
		fds[0].Revents = 0
		n, err := unix.Poll(fds, 1000)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return lat, fmt.Errorf("ring driver: no reply for 1s with %d requests in flight", inflight)
		}
		woken, err := ge.Pending()
		if err != nil {
			return nil, err
		}
		for _, g := range woken {
			d := byGuest[g]
			if d == nil {
				continue
			}
			for {
				m, err := d.r.Read(buf)
				if err != nil {
					return nil, err
				}
				if m == 0 {
					break
				}
				d.in = append(d.in, buf[:m]...)
			}
			for len(d.in) >= wire.HeaderSize {
				h, err := wire.ParseHeader(d.in)
				if err != nil {
					return nil, err
				}
				end := wire.HeaderSize + int(h.Len)
				if len(d.in) < end {
					break
				}
				if h.Type == wire.Error {
					return nil, fmt.Errorf("ring driver: dom%d: error reply %q", d.g.DomID, d.in[wire.HeaderSize:end])
				}
				d.in = d.in[:copy(d.in, d.in[end:])]
				if h.Type == wire.WatchEvent {
					continue
				}
				lat.Record(time.Since(d.sent[0]))
				d.sent = d.sent[:copy(d.sent, d.sent[1:])]
				inflight--
				if !stopping {
					push(d)
					inflight++
				}
			}
			if err := flush(d); err != nil {
				return nil, err
			}
		}
	}
	return lat, nil
}
