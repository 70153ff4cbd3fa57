package xenring_test

import (
	"context"
	"encoding/binary"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xen/fake"
	"github.com/xsstub/xenstored/xen/ring"
	"github.com/xsstub/xenstored/xen/ringclient"
)

// Offsets of struct xenstore_domain_interface words, as a hostile guest
// writes them.
const (
	xsaReqCons    = 2048
	xsaReqProd    = 2052
	xsaRspCons    = 2056
	xsaRspProd    = 2060
	xsaConnection = 2068
	xsaErrorWord  = 2072
)

func get32(p []byte, off int) uint32    { return binary.LittleEndian.Uint32(p[off:]) }
func put32(p []byte, off int, v uint32) { binary.LittleEndian.PutUint32(p[off:], v) }

// newXSARig is newRig with explicit quotas (nil: defaults).
func newXSARig(t *testing.T, q *store.Quotas) *rig { return newRigQuotas(t, q) }

// rawGuest creates and introduces domain id without a client: the test
// plays a hostile guest on the page directly.
func (r *rig) rawGuest(id uint32) (*fake.Domain, *fake.Guest) {
	r.t.Helper()
	return r.Guest(id)
}

// attachRaw creates domain id and attaches the test to its page, without
// introducing it.
func (r *rig) attachRaw(id uint32) (*fake.Domain, *fake.Guest) {
	r.t.Helper()
	return r.Attach(id)
}

// makeHome creates /local/domain/<id> owned by id, as the toolstack does.
func makeHome(t *testing.T, d0 *dom0, id uint32) string {
	t.Helper()
	return d0.MakeHome(t, id)
}

// healthyGuest makes a well-behaved guest with a home and returns its
// client.
func (r *rig) healthyGuest(d0 *dom0, id uint32) *ringclient.Client {
	r.t.Helper()
	_, _, c := r.guest(id)
	makeHome(r.t, d0, id)
	return c
}

// assertServed checks that c completes a write and a read-back of a fresh
// value in its own home within 10 s: the witness that another guest is
// unaffected by an attack.
func assertServed(t *testing.T, c *ringclient.Client, tag string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v := []byte(tag + "-" + strconv.FormatInt(time.Now().UnixNano(), 10))
	if err := c.Write(ctx, "alive", v); err != nil {
		t.Fatalf("other guest not served (write, %s): %v", tag, err)
	}
	got, err := c.Read(ctx, "alive")
	if err != nil || string(got) != string(v) {
		t.Fatalf("other guest not served (read, %s): %q, %v", tag, got, err)
	}
}

// waitFor polls cond every 2 ms for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitErrorWord waits until the server sets the error word to want.
func waitErrorWord(t *testing.T, page []byte, want uint32) {
	t.Helper()
	if !waitFor(10*time.Second, func() bool { return get32(page, xsaErrorWord) == want }) {
		t.Fatalf("error word %d, want %d", get32(page, xsaErrorWord), want)
	}
}

// rawPut writes msg into the request queue, waiting for room (the server
// must consume); it fails the test if the ring stays full for 10 s.
func rawPut(t *testing.T, g *fake.Guest, rg *ring.Guest, msg []byte) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(msg) > 0 {
		n, err := rg.Write(msg)
		if err != nil {
			t.Fatalf("guest write: %v", err)
		}
		msg = msg[n:]
		g.Notify()
		if len(msg) > 0 {
			if time.Now().After(deadline) {
				t.Fatal("request ring stays full: the server stopped consuming")
			}
			g.Wait(5 * time.Millisecond)
		}
	}
}

// rawReader collects response messages from a raw guest ring.
type rawReader struct {
	g   *fake.Guest
	rg  *ring.Guest
	buf []byte
}

// next returns the next whole message from the response queue, waiting up
// to d; ok is false on timeout.
func (rr *rawReader) next(t *testing.T, d time.Duration) (wire.Msg, bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tmp := make([]byte, 1024)
	for {
		if len(rr.buf) >= wire.HeaderSize {
			h, err := wire.ParseHeader(rr.buf)
			if err != nil {
				t.Fatalf("server sent a bad header: %v", err)
			}
			if end := wire.HeaderSize + int(h.Len); len(rr.buf) >= end {
				m, err := wire.Decode(rr.buf[:end])
				if err != nil {
					t.Fatalf("server sent a bad message: %v", err)
				}
				m.Payload = append([]byte(nil), m.Payload...)
				rr.buf = rr.buf[end:]
				return m, true
			}
		}
		n, err := rr.rg.Read(tmp)
		if err != nil {
			t.Fatalf("guest read: %v", err)
		}
		if n > 0 {
			rr.buf = append(rr.buf, tmp[:n]...)
			rr.g.Notify()
			continue
		}
		if time.Now().After(deadline) {
			return wire.Msg{}, false
		}
		rr.g.Wait(5 * time.Millisecond)
	}
}

func enc(typ wire.Type, reqID, txID uint32, payload []byte) []byte {
	return (&wire.Msg{Type: typ, ReqID: reqID, TxID: txID, Payload: payload}).Encode()
}

// events drains d's queued output and returns the watch event paths.
func (d *dom0) drainEvents() []string {
	var evs []string
	for {
		b, ok := d.Conn.NextOutput()
		if !ok {
			return evs
		}
		m, _ := wire.Decode(b)
		if m.Type == wire.WatchEvent {
			parts, _ := wire.SplitStrings(m.Payload)
			evs = append(evs, parts[0])
		}
	}
}

// eventsFor collects d's watch events for dur.
func (d *dom0) eventsFor(dur time.Duration) []string {
	var evs []string
	deadline := time.After(dur)
	for {
		evs = append(evs, d.drainEvents()...)
		select {
		case <-d.Wake:
		case <-deadline:
			return append(evs, d.drainEvents()...)
		}
	}
}

func count(xs []string, x string) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}

// isErrno reports whether err is a ringclient reply error naming e.
func isErrno(err error, e syscall.Errno) bool {
	re, ok := err.(*ringclient.ReplyError)
	return ok && re.Errno == e
}

// engineCheck runs CONTROL check through a privileged connection and
// fails on any reported inconsistency.
func engineCheck(t *testing.T, r *rig) {
	t.Helper()
	if err := r.e.Check(); err != nil {
		t.Fatalf("store inconsistent: %v", err)
	}
}

func introduced(t *testing.T, d0 *dom0, id uint32) bool {
	t.Helper()
	got := d0.call(t, wire.IsDomainIntroduced, itoa(id))
	if got != "T\x00" && got != "F\x00" {
		t.Fatalf("IS_DOMAIN_INTRODUCED %d: %q", id, got)
	}
	return got == "T\x00"
}

func hasLine(s, sub string) bool { return strings.Contains(s, sub) }

type callResult struct {
	reply  string
	events []string
}

// callEv is dom0.call keeping the watch events that arrive before the
// reply (call drops them). It does not touch testing.T, so it may run on
// any goroutine.
func (d *dom0) callEv(typ wire.Type, args ...string) callResult {
	d.Conn.Handle(wire.Msg{Type: typ, ReqID: 1, Payload: wire.JoinStrings(args...)})
	var res callResult
	for {
		b, ok := d.Conn.NextOutput()
		if !ok {
			res.reply = "no reply"
			return res
		}
		m, _ := wire.Decode(b)
		switch m.Type {
		case wire.WatchEvent:
			parts, _ := wire.SplitStrings(m.Payload)
			res.events = append(res.events, parts[0])
			continue
		case wire.Error:
			res.reply = "error " + string(m.Payload)
		default:
			res.reply = string(m.Payload)
		}
		return res
	}
}
