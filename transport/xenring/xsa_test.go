package xenring_test

// Ring-level regression tests for the xenstore security advisories that
// need a ring or a domain lifecycle (the engine-only ones are in
// store/xsa_test.go). Each test states the attack, asserts the correct
// behaviour, and asserts that another guest is unaffected. The guest side
// is played either by ringclient (well-behaved) or by the test writing the
// shared page directly (hostile). /work/shared/xsa.md lists the advisories.

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/ring"
)

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// assertIdle fails if the process burns more than half of a 300 ms idle
// window: a server spinning on a broken ring (livelock) would.
func assertIdle(t *testing.T) {
	t.Helper()
	before := cpuTime()
	time.Sleep(300 * time.Millisecond)
	if used := cpuTime() - before; used > 150*time.Millisecond {
		t.Fatalf("server busy while idle: %v CPU in 300 ms (livelock on a broken ring?)", used)
	}
}

// TestXSA38BadRingIndices: XSA-38 (oxenstored). The guest writes
// inconsistent producer/consumer indices (more than the ring size in
// flight, a consumer ahead of its producer, on either queue), which made
// oxenstored crash or loop. Expect: that ring's error word is set to
// XENSTORE_ERROR_RINGIDX, the ring is never served again (even once the
// guest "repairs" it), the domain stays introduced, the loop does not spin,
// and another guest is served.
func TestXSA38BadRingIndices(t *testing.T) {
	attacks := []struct {
		name string
		hit  func(t *testing.T, p []byte, rg *ring.Guest)
	}{
		{"req prod beyond ring", func(t *testing.T, p []byte, _ *ring.Guest) {
			put32(p, xsaReqProd, get32(p, xsaReqCons)+5000)
		}},
		{"req prod one past full", func(t *testing.T, p []byte, _ *ring.Guest) {
			put32(p, xsaReqProd, get32(p, xsaReqCons)+ring.RingSize+1)
		}},
		{"req cons ahead of prod", func(t *testing.T, p []byte, _ *ring.Guest) {
			put32(p, xsaReqCons, get32(p, xsaReqProd)+1)
		}},
		{"rsp cons ahead of prod, then a request", func(t *testing.T, p []byte, rg *ring.Guest) {
			put32(p, xsaRspCons, get32(p, xsaRspProd)+2000)
			if _, err := rg.Write(enc(wire.Read, 1, 0, []byte("/tool\x00"))); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for i, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			r := newXSARig(t, nil)
			d0 := r.dom0()
			good := r.healthyGuest(d0, 20)
			id := uint32(30 + i)
			_, g := r.rawGuest(id)
			rg, _ := ring.NewGuest(g.Page())
			// One honest exchange first, so the indices are not all zero.
			rawPut(t, g, rg, enc(wire.Read, 7, 0, []byte("/tool\x00")))
			rr := &rawReader{g: g, rg: rg}
			if m, ok := rr.next(t, 10*time.Second); !ok || m.ReqID != 7 {
				t.Fatalf("no honest reply: %v %v", m, ok)
			}
			p := g.Page()
			a.hit(t, p, rg)
			g.Notify()
			waitErrorWord(t, p, ring.ErrorRingIdx)
			assertServed(t, good, "after bad indices")
			if !introduced(t, d0, id) {
				t.Fatal("domain released because its ring is corrupt (XSA-325)")
			}
			// The guest "repairs" its ring and asks again: ignored.
			put32(p, xsaReqCons, 0)
			put32(p, xsaReqProd, 0)
			put32(p, xsaRspCons, get32(p, xsaRspProd))
			msg := enc(wire.Read, 8, 0, []byte("/tool\x00"))
			rg.Write(msg)
			for range 50 {
				g.Notify()
			}
			time.Sleep(100 * time.Millisecond)
			if c := get32(p, xsaReqCons); c != 0 {
				t.Fatalf("broken ring served again (req_cons %d)", c)
			}
			assertIdle(t)
			assertServed(t, good, "after repair attempt")
			engineCheck(t, r)
		})
	}
}

// TestXSA38FullRing: XSA-38's other half. A full ring (exactly 1024 bytes
// in flight), messages longer than the ring in both directions, and a
// guest that lets the response ring fill up are legal and must be served
// without corruption or loss, in order.
func TestXSA38FullRing(t *testing.T) {
	r := newXSARig(t, nil)
	d0 := r.dom0()
	good := r.healthyGuest(d0, 20)
	_, g := r.rawGuest(21)
	makeHome(t, d0, 21)
	rg, _ := ring.NewGuest(g.Page())
	rr := &rawReader{g: g, rg: rg}
	p := g.Page()

	t.Run("request ring exactly full", func(t *testing.T) {
		// 16 requests of 64 bytes: prod-cons == 1024, written before any
		// notification.
		var all []byte
		for i := range 16 {
			path := "/local/domain/21/" + strings.Repeat("a", 27) + strconv.Itoa(100+i)
			pl := wire.JoinStrings(path)
			all = append(all, enc(wire.Read, uint32(100+i), 0, pl)...)
		}
		if len(all) != ring.RingSize {
			t.Fatalf("setup: %d bytes", len(all))
		}
		if n, err := rg.Write(all); n != ring.RingSize || err != nil {
			t.Fatalf("fill: %d %v", n, err)
		}
		if get32(p, xsaReqProd)-get32(p, xsaReqCons) != ring.RingSize {
			t.Fatal("ring not full")
		}
		g.Notify()
		for i := range 16 {
			m, ok := rr.next(t, 10*time.Second)
			if !ok {
				t.Fatalf("reply %d of 16 missing", i)
			}
			if m.ReqID != uint32(100+i) || m.Type != wire.Error || string(m.Payload) != "ENOENT\x00" {
				t.Fatalf("reply %d: %v %d %q", i, m.Type, m.ReqID, m.Payload)
			}
		}
	})

	t.Run("response ring fills while the guest does not read", func(t *testing.T) {
		val := strings.Repeat("v", 100)
		rawPut(t, g, rg, enc(wire.Write, 1, 0, append(wire.JoinStrings("/local/domain/21/big"), val...)))
		if m, ok := rr.next(t, 10*time.Second); !ok || m.Type != wire.Write {
			t.Fatalf("write: %v %v", m, ok)
		}
		const n = 40 // 40 × 116-byte replies: 4.5 rings' worth
		for i := range n {
			rawPut(t, g, rg, enc(wire.Read, uint32(200+i), 0, wire.JoinStrings("/local/domain/21/big")))
		}
		// Without reading, the response queue must fill to the brim and
		// never beyond.
		if !waitFor(10*time.Second, func() bool { return get32(p, xsaRspProd)-get32(p, xsaRspCons) > ring.RingSize-116 }) {
			t.Fatalf("response ring not filled: %d bytes", get32(p, xsaRspProd)-get32(p, xsaRspCons))
		}
		time.Sleep(50 * time.Millisecond)
		if q := get32(p, xsaRspProd) - get32(p, xsaRspCons); q > ring.RingSize {
			t.Fatalf("server overfilled the response ring: %d bytes", q)
		}
		for i := range n {
			m, ok := rr.next(t, 10*time.Second)
			if !ok || m.ReqID != uint32(200+i) || string(m.Payload) != val {
				t.Fatalf("reply %d: ok %v id %d %q", i, ok, m.ReqID, m.Payload)
			}
		}
	})

	t.Run("messages longer than the ring", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Through a second, well-behaved guest: ringclient writes a message
		// longer than the free space in pieces, as Linux's xenbus does, and
		// waits for the server's event to write the rest. Sizes stay within
		// the node-size quota. Whether the guest finds room again before it
		// sleeps is a race, hence the repetitions.
		for i := range 30 {
			size := 1100 + 27*i
			v := []byte(strings.Repeat("x", size))
			if err := good.Write(ctx, "big", v); err != nil {
				t.Fatalf("%d-byte write: %v", size, err)
			}
			got, err := good.Read(ctx, "big")
			if err != nil || string(got) != string(v) {
				t.Fatalf("%d-byte value came back as %d bytes, %v", size, len(got), err)
			}
		}
	})
	if e := get32(p, xsaErrorWord); e != 0 {
		t.Fatalf("legal full ring set error word %d", e)
	}
	assertServed(t, good, "after full rings")
}

// TestXSA420HugeLengths: XSA-420 (oxenstored on 32-bit): a header length of
// 1 GiB or more turned negative and livelocked the server. Expect: any
// length above 4096 — 4097, 1 GiB, 2 GiB, 4 GiB-1, also when the header
// arrives in two pieces — sets XENSTORE_ERROR_PROTO on that ring only; no
// more bytes are consumed from it; the server does not spin while the
// attacker keeps notifying; another guest is served meanwhile.
func TestXSA420HugeLengths(t *testing.T) {
	cases := []struct {
		name string
		len  uint32
		torn bool
	}{
		{"4097", 4097, false},
		{"1 GiB", 1 << 30, false},
		{"2 GiB", 1 << 31, false},
		{"4 GiB-1", 0xffffffff, false},
		{"1 GiB torn header", 1 << 30, true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newXSARig(t, nil)
			d0 := r.dom0()
			good := r.healthyGuest(d0, 20)
			id := uint32(40 + i)
			_, g := r.rawGuest(id)
			rg, _ := ring.NewGuest(g.Page())
			var h [wire.HeaderSize]byte
			wire.Header{Type: wire.Write, ReqID: 1, Len: c.len}.Put(h[:])
			if c.torn {
				rawPut(t, g, rg, h[:9])
				time.Sleep(20 * time.Millisecond)
				if e := get32(g.Page(), xsaErrorWord); e != 0 {
					t.Fatalf("error word %d on half a header", e)
				}
				rawPut(t, g, rg, h[9:])
			} else {
				rawPut(t, g, rg, h[:])
			}
			// Body bytes the server must never take.
			rg.Write([]byte(strings.Repeat("x", 200)))
			g.Notify()
			waitErrorWord(t, g.Page(), ring.ErrorProto)
			cons := get32(g.Page(), xsaReqCons)
			if cons > wire.HeaderSize {
				t.Fatalf("server consumed %d bytes of a packet it rejected", cons)
			}
			// The attacker hammers the event channel while another guest
			// works.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
						g.Notify()
					}
				}
			}()
			for j := range 50 {
				assertServed(t, good, "during notify flood "+strconv.Itoa(j))
			}
			close(stop)
			wg.Wait()
			if c2 := get32(g.Page(), xsaReqCons); c2 != cons {
				t.Fatalf("rejected ring read again: cons %d -> %d", cons, c2)
			}
			assertIdle(t)
			if !introduced(t, d0, id) {
				t.Fatal("domain released for a protocol error (XSA-325)")
			}
			engineCheck(t, r)
		})
	}
}

// TestXSA325CorruptRingNoEarlyRelease: XSA-325 (C and O). A guest corrupts
// its ring; the servers freed the domain and fired @releaseDomain at once,
// and then never again at its real death, leaving a zombie the toolstack
// never cleaned up. Expect: after the corruption the domain stays
// introduced with its nodes, no @releaseDomain fires (not even on later
// VIRQ_DOM_EXC scans for unrelated events), and when the domain really
// dies @releaseDomain fires exactly once (not again on destruction); the
// other guest stays introduced and served.
func TestXSA325CorruptRingNoEarlyRelease(t *testing.T) {
	for _, how := range []string{"bad indices", "huge length"} {
		t.Run(how, func(t *testing.T) {
			r := newXSARig(t, nil)
			d0 := r.dom0()
			d0.call(t, wire.Watch, "@releaseDomain", "rel")
			if ev := d0.event(t); ev != "@releaseDomain" {
				t.Fatalf("initial event %q", ev)
			}
			good := r.healthyGuest(d0, 8)
			_, g := r.rawGuest(7)
			makeHome(t, d0, 7)
			d0.call(t, wire.Write, "/local/domain/7/name", "victim")
			d0.call(t, wire.SetPerms, "/local/domain/7/name", "n7")
			p := g.Page()
			want := uint32(ring.ErrorRingIdx)
			if how == "bad indices" {
				put32(p, xsaReqProd, 4242)
			} else {
				var h [wire.HeaderSize]byte
				wire.Header{Type: wire.Read, Len: 0x80000000}.Put(h[:])
				copy(p, h[:])
				put32(p, xsaReqProd, wire.HeaderSize)
				want = ring.ErrorProto
			}
			g.Notify()
			waitErrorWord(t, p, want)
			// Unrelated domain events make the server rescan.
			for range 3 {
				r.h.FireVIRQ(xen.VIRQDomExc)
			}
			if evs := d0.eventsFor(300 * time.Millisecond); len(evs) != 0 {
				t.Fatalf("events after ring corruption: %q (released early)", evs)
			}
			if !introduced(t, d0, 7) {
				t.Fatal("domain no longer introduced after ring corruption")
			}
			if got := d0.call(t, wire.Read, "/local/domain/7/name"); got != "victim\x00" {
				t.Fatalf("node of live domain: %q", got)
			}
			assertServed(t, good, "after corruption")

			// Real death: exactly one @releaseDomain.
			if err := r.h.SetDying(7); err != nil {
				t.Fatal(err)
			}
			if ev := d0.event(t); ev != "@releaseDomain" {
				t.Fatalf("event %q", ev)
			}
			if err := r.h.Destroy(7); err != nil {
				t.Fatal(err)
			}
			r.h.FireVIRQ(xen.VIRQDomExc)
			if evs := d0.eventsFor(300 * time.Millisecond); len(evs) != 0 {
				t.Fatalf("@releaseDomain fired again: %q", evs)
			}
			if introduced(t, d0, 7) {
				t.Fatal("dead domain still introduced (zombie)")
			}
			if got := d0.call(t, wire.Read, "/local/domain/7/name"); got != "error ENOENT\x00" {
				t.Fatalf("node of dead domain: %q", got)
			}
			if !introduced(t, d0, 8) {
				t.Fatal("other guest released")
			}
			assertServed(t, good, "after death")
			engineCheck(t, r)
		})
	}
}

// flood keeps a raw guest's request ring busy with distinct WRITEs to its
// home and consumes whatever comes back, until stop. It counts replies.
func flood(g interface{ Notify() error }, rg *ring.Guest, id uint32, stop <-chan struct{}, replies *atomic.Int64) {
	buf := make([]byte, 1024)
	var pending []byte
	var rx []byte
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		if len(pending) == 0 {
			path := "/local/domain/" + itoa(id) + "/f" + strconv.Itoa(i%200)
			pending = enc(wire.Write, uint32(i+1), 0, append(wire.JoinStrings(path), "value"...))
		}
		n, err := rg.Write(pending)
		if err != nil {
			return
		}
		pending = pending[n:]
		m, err := rg.Read(buf)
		if err != nil {
			return
		}
		rx = append(rx, buf[:m]...)
		for len(rx) >= wire.HeaderSize {
			h, err := wire.ParseHeader(rx)
			if err != nil {
				return
			}
			end := wire.HeaderSize + int(h.Len)
			if len(rx) < end {
				break
			}
			replies.Add(1)
			rx = rx[end:]
		}
		g.Notify()
		if n == 0 && m == 0 {
			time.Sleep(50 * time.Microsecond)
		}
	}
}

// TestXSA425ReleaseDuringPendingIO: XSA-425 (C xenstored). XS_RELEASE of a
// domain (soft reset, kexec) while its connection had requests in flight
// freed the connection twice and crashed the daemon. Here dom0 releases a
// guest from its own goroutine while the guest floods requests, many
// times over. Expect: RELEASE answers OK, the domain is no longer
// introduced and its nodes are gone, @releaseDomain fires once, nothing
// crashes, the same domain can be introduced again and works, and another
// guest is served throughout.
func TestXSA425ReleaseDuringPendingIO(t *testing.T) {
	r := newXSARig(t, nil)
	d0 := r.dom0()
	good := r.healthyGuest(d0, 20)
	d0.call(t, wire.Watch, "@releaseDomain", "rel")
	d0.event(t)
	const id = 9
	dom, g := r.rawGuest(id)
	p := g.Page()
	rounds := 15
	if testing.Short() {
		rounds = 5
	}
	for round := range rounds {
		makeHome(t, d0, id)
		rg, _ := ring.NewGuest(p)
		stop := make(chan struct{})
		var replies atomic.Int64
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); flood(g, rg, id, stop, &replies) }()
		if !waitFor(10*time.Second, func() bool { return replies.Load() >= int64(20+round*7) }) {
			t.Fatalf("round %d: flood not served (%d replies)", round, replies.Load())
		}
		// Mid-flood, from another goroutine than the ring loop.
		got := make(chan callResult, 1)
		go func() { got <- d0.callEv(wire.Release, itoa(id)) }()
		res := <-got
		if res.reply != "OK\x00" {
			t.Fatalf("round %d: RELEASE: %q", round, res.reply)
		}
		time.Sleep(time.Duration(round%3) * time.Millisecond) // flood on a released ring
		close(stop)
		wg.Wait()
		if evs := append(res.events, d0.eventsFor(20*time.Millisecond)...); len(evs) != 1 || evs[0] != "@releaseDomain" {
			t.Fatalf("round %d: events %q, want one @releaseDomain", round, evs)
		}
		if introduced(t, d0, id) {
			t.Fatalf("round %d: released domain still introduced", round)
		}
		if got := d0.call(t, wire.Directory, "/local/domain/"+itoa(id)); got != "error ENOENT\x00" {
			t.Fatalf("round %d: released domain's nodes remain: %q", round, got)
		}
		assertServed(t, good, "round "+strconv.Itoa(round))
		// The guest's new kernel starts with a fresh ring and the toolstack
		// introduces it again.
		for off := xsaReqCons; off <= xsaRspProd; off += 4 {
			put32(p, off, 0)
		}
		if err := r.e.IntroduceDomain(id, dom.GuestPort(), 0); err != nil {
			t.Fatalf("round %d: re-introduce: %v", round, err)
		}
	}
	makeHome(t, d0, id)
	rg, _ := ring.NewGuest(p)
	rawPut(t, g, rg, enc(wire.Write, 1, 0, append(wire.JoinStrings("again"), "yes"...)))
	rr := &rawReader{g: g, rg: rg}
	if m, ok := rr.next(t, 10*time.Second); !ok || m.Type != wire.Write {
		t.Fatalf("re-introduced guest not served: %v %v", m, ok)
	}
	if got := d0.call(t, wire.Read, "/local/domain/9/again"); got != "yes" {
		t.Fatalf("re-introduced guest's write: %q", got)
	}
	engineCheck(t, r)
}

// TestXSA233DomainAndTargetDieTogether: XSA-233 (C xenstored). A domain
// and its stub device model (SET_TARGET dm guest) are destroyed together;
// the target relation was unlinked twice and the daemon crashed. Expect, in
// either order and when both die at once: each gets exactly one
// @releaseDomain/<domid>, both leave the domain table, the store stays
// consistent, a surviving device model gains no rights over a domain that
// reuses its dead target's id, and another guest is served.
func TestXSA233DomainAndTargetDieTogether(t *testing.T) {
	const guest, dm = 40, 41
	for _, order := range []string{"target first", "device model first", "together"} {
		t.Run(order, func(t *testing.T) {
			r := newXSARig(t, nil)
			d0 := r.dom0()
			other := r.healthyGuest(d0, 50)
			r.healthyGuest(d0, guest)
			dmc := r.healthyGuest(d0, dm)
			if got := d0.call(t, wire.SetTarget, itoa(dm), itoa(guest)); got != "OK\x00" {
				t.Fatalf("SET_TARGET: %q", got)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := dmc.Write(ctx, "/local/domain/40/device-model", []byte("x")); err != nil {
				t.Fatalf("device model cannot act for its target: %v", err)
			}
			d0.call(t, wire.Watch, "@releaseDomain", "rel", "1")
			d0.event(t)
			var evs []string
			die := func(id uint32) {
				t.Helper()
				if err := r.h.SetDying(id); err != nil {
					t.Fatal(err)
				}
			}
			waitRelease := func(id uint32) {
				t.Helper()
				want := "@releaseDomain/" + itoa(id)
				if !waitFor(10*time.Second, func() bool { evs = append(evs, d0.drainEvents()...); return count(evs, want) > 0 }) {
					t.Fatalf("no %s (events %q)", want, evs)
				}
			}
			switch order {
			case "target first":
				die(guest)
				waitRelease(guest)
				assertServed(t, dmc, "device model after its target died")
				// The id is reused by a new, unrelated domain.
				r.h.Destroy(guest)
				r.healthyGuest(d0, guest)
				d0.call(t, wire.Write, "/local/domain/40/secret", "s")
				d0.call(t, wire.SetPerms, "/local/domain/40/secret", "n40")
				if _, err := dmc.Read(ctx, "/local/domain/40/secret"); !isErrno(err, syscall.EACCES) {
					t.Fatalf("old device model reads the new domain %d: %v", guest, err)
				}
				die(dm)
				waitRelease(dm)
				die(guest)
				waitRelease(guest)
			case "device model first":
				die(dm)
				waitRelease(dm)
				die(guest)
				waitRelease(guest)
			case "together":
				die(guest)
				die(dm)
				waitRelease(guest)
				waitRelease(dm)
			}
			evs = append(evs, d0.eventsFor(200*time.Millisecond)...)
			wantGuest := 1
			if order == "target first" {
				wantGuest = 2 // the reused id died too
			}
			if count(evs, "@releaseDomain/40") != wantGuest || count(evs, "@releaseDomain/41") != 1 {
				t.Fatalf("release events %q", evs)
			}
			for _, id := range []uint32{guest, dm} {
				if introduced(t, d0, id) {
					t.Fatalf("domain %d still introduced", id)
				}
			}
			if !introduced(t, d0, 50) {
				t.Fatal("bystander released")
			}
			assertServed(t, other, "bystander")
			engineCheck(t, r)
		})
	}
}

// TestXSA326GuestNeverReadsRequests: XSA-326 (C and O) over a ring. A guest
// streams requests and never reads a reply, to make the server queue
// replies without bound. Expect: the server stops taking its requests once
// maxoutstanding replies wait (plus what the 1 KiB response ring holds);
// CONTROL queues shows its input stopped; another guest is served; and
// when the guest finally reads, every request it sent is answered, in
// order, none lost.
func TestXSA326GuestNeverReadsRequests(t *testing.T) {
	q := store.DefaultQuotas()
	const maxOut = 50
	q.Hard[store.QMaxOutstanding] = maxOut
	r := newXSARig(t, &q)
	d0 := r.dom0()
	good := r.healthyGuest(d0, 20)
	_, g := r.rawGuest(30)
	rg, _ := ring.NewGuest(g.Page())
	p := g.Page()
	req := func(i int) []byte { return enc(wire.Read, uint32(i+1), 0, []byte("/tool\x00")) } // 22 bytes, reply 23
	const total = 600
	sent := 0
	deadline := time.Now().Add(500 * time.Millisecond)
	for sent < total && time.Now().Before(deadline) {
		m := req(sent)
		if n, _ := rg.Writable(); n < len(m) {
			g.Notify()
			g.Wait(2 * time.Millisecond)
			continue
		}
		rg.Write(m)
		sent++
		g.Notify()
	}
	consumed := int(get32(p, xsaReqCons)) / 22
	// maxOut queued in the engine, at most 44 replies in the response ring,
	// one being written, one being handled.
	if bound := maxOut + ring.RingSize/23 + 2; consumed > bound {
		t.Fatalf("server took %d requests from a guest that reads nothing (bound %d)", consumed, bound)
	}
	if sent == total {
		t.Fatalf("all %d requests accepted: no back-pressure", total)
	}
	out := d0.call(t, wire.Control, "queues", "30")
	if !hasLine(out, "input stopped") || !hasLine(out, "replies-queued "+strconv.Itoa(maxOut)) {
		t.Fatalf("flooding guest not throttled at %d replies:\n%s", maxOut, out)
	}
	assertServed(t, good, "during flood")
	// Now the guest reads: everything it sent, and the rest it sends now,
	// is answered in order.
	rr := &rawReader{g: g, rg: rg}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := sent; i < total; i++ {
			m := req(i)
			for {
				if n, _ := rg.Writable(); n >= len(m) {
					break
				}
				g.Notify()
				g.Wait(2 * time.Millisecond)
			}
			rg.Write(m)
			g.Notify()
		}
	}()
	for i := range total {
		m, ok := rr.next(t, 10*time.Second)
		if !ok {
			t.Fatalf("reply %d of %d lost", i, total)
		}
		if m.ReqID != uint32(i+1) || string(m.Payload) != "EACCES\x00" {
			t.Fatalf("reply %d: id %d %q", i, m.ReqID, m.Payload)
		}
	}
	wg.Wait()
	if _, ok := rr.next(t, 50*time.Millisecond); ok {
		t.Fatal("more replies than requests")
	}
}

// TestXSA326GuestNeverReadsEvents: XSA-326 over a ring, the event side. A
// guest watches its home and never reads, while the toolstack writes many
// distinct nodes there, to make the server queue events without bound.
// Expect: at most maxwatchevents events queued for the watch (the rest
// parked, back-pressure on the writer); a different dom0 connection and
// another guest are served meanwhile; once the guest reads, every event
// arrives exactly once and in order.
//
// Note: the writing toolstack connection itself is stalled while the
// guest does not read (oxenstored's design, documented in README.md); the
// test logs how far it got.
func TestXSA326GuestNeverReadsEvents(t *testing.T) {
	q := store.DefaultQuotas()
	const maxEv = 40
	q.Hard[store.QMaxWatchEvents] = maxEv
	r := newXSARig(t, &q)
	d0 := r.dom0()
	good := r.healthyGuest(d0, 20)
	_, g := r.rawGuest(31)
	makeHome(t, d0, 31)
	rg, _ := ring.NewGuest(g.Page())
	rr := &rawReader{g: g, rg: rg}
	rawPut(t, g, rg, enc(wire.Watch, 1, 0, wire.JoinStrings("/local/domain/31", "w")))
	if m, ok := rr.next(t, 10*time.Second); !ok || m.Type != wire.Watch {
		t.Fatalf("watch: %v %v", m, ok)
	}
	if m, ok := rr.next(t, 10*time.Second); !ok || m.Type != wire.WatchEvent {
		t.Fatalf("initial event: %v %v", m, ok)
	}

	// The writer behaves like a transport: it hands over a request only
	// while its connection wants input.
	writer := r.dom0()
	const total = 300
	written := 0
	deadline := time.Now().Add(500 * time.Millisecond)
	for written < total && time.Now().Before(deadline) {
		if !writer.Conn.WantsInput() {
			time.Sleep(time.Millisecond)
			continue
		}
		writer.call(t, wire.Write, "/local/domain/31/e"+strconv.Itoa(written), "v")
		written++
	}
	t.Logf("toolstack connection completed %d of %d writes while the guest did not read", written, total)
	out := d0.call(t, wire.Control, "queues", "31")
	t.Logf("queues 31:\n%s", out)
	queued, parked := watchQueue(t, out, "/local/domain/31")
	if queued > maxEv {
		t.Fatalf("watch queue %d > maxwatchevents %d", queued, maxEv)
	}
	// The writer stalled because the queue is full and its next event
	// parked (the ring page holds the events the transport moved there).
	if written == total || queued != maxEv || parked < 1 {
		t.Fatalf("watch queued %d, parked %d after %d of %d writes; want a full queue (%d) and parked events", queued, parked, written, total, maxEv)
	}
	// Others are served meanwhile.
	if got := d0.call(t, wire.Write, "/local/other", "x"); got != "OK\x00" {
		t.Fatalf("other dom0 connection: %q", got)
	}
	assertServed(t, good, "during event flood")

	// The guest reads; the writer finishes.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := written; i < total; i++ {
			if !waitFor(10*time.Second, writer.Conn.WantsInput) {
				t.Errorf("writer never released (at %d)", i)
				return
			}
			writer.call(t, wire.Write, "/local/domain/31/e"+strconv.Itoa(i), "v")
		}
	}()
	for i := range total {
		m, ok := rr.next(t, 10*time.Second)
		if !ok {
			t.Fatalf("event %d of %d lost", i, total)
		}
		parts, _ := wire.SplitStrings(m.Payload)
		if want := "/local/domain/31/e" + strconv.Itoa(i); m.Type != wire.WatchEvent || parts[0] != want {
			t.Fatalf("event %d: %v %q, want %s", i, m.Type, parts, want)
		}
	}
	wg.Wait()
	if m, ok := rr.next(t, 50*time.Millisecond); ok {
		t.Fatalf("unexpected extra message %v %q", m.Type, m.Payload)
	}
	engineCheck(t, r)
}

// TestXSA115OverRings: XSA-115 (C and O). An unprivileged guest uses the
// special watches @introduceDomain/@releaseDomain to learn about other
// domains, IS_DOMAIN_INTRODUCED as an oracle, watch events and error codes
// to learn names of nodes it cannot read. Expect: no special events for it
// (only a domain given read access on the special node gets them), EACCES
// for IS_DOMAIN_INTRODUCED, no events for unreadable nodes, EACCES (not
// ENOENT) below an unreadable node; the permitted guest gets its events.
func TestXSA115OverRings(t *testing.T) {
	r := newXSARig(t, nil)
	d0 := r.dom0()
	spy := r.healthyGuest(d0, 60)
	victim := r.healthyGuest(d0, 61)
	allowed := r.healthyGuest(d0, 62)
	for _, s := range []string{"@releaseDomain", "@introduceDomain"} {
		if got := d0.call(t, wire.SetPerms, s, "n0", "r62"); got != "OK\x00" {
			t.Fatalf("perms %s: %q", s, got)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, w := range []struct{ path, tok string }{
		{"@releaseDomain", "rel"}, {"@introduceDomain", "intro"}, {"/local/domain/61", "victim"}, {"/", "root"},
	} {
		if err := spy.Watch(ctx, w.path, w.tok); err != nil {
			t.Fatalf("spy watch %s: %v", w.path, err)
		}
		<-spy.Events() // the initial event names only the watched path
	}
	for _, s := range []string{"@releaseDomain", "@introduceDomain"} {
		if err := allowed.Watch(ctx, s, "a"); err != nil {
			t.Fatal(err)
		}
		<-allowed.Events()
	}
	// Domain life and a secret write elsewhere.
	d, _ := r.h.NewDomain(63)
	if err := r.e.IntroduceDomain(63, d.GuestPort(), 0); err != nil {
		t.Fatal(err)
	}
	d0.call(t, wire.Write, "/local/domain/61/secret", "s")
	if err := victim.Write(ctx, "private", []byte("p")); err != nil {
		t.Fatal(err)
	}
	if got := d0.call(t, wire.Release, "63"); got != "OK\x00" {
		t.Fatalf("release: %q", got)
	}
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case ev := <-allowed.Events():
			got[ev.Path] = true
		case <-ctx.Done():
			t.Fatalf("permitted guest missed special events: %v", got)
		}
	}
	// The spy sees none of it.
	select {
	case ev := <-spy.Events():
		t.Fatalf("unprivileged guest got event %q (token %q)", ev.Path, ev.Token)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := spy.Call(ctx, wire.IsDomainIntroduced, 0, wire.JoinStrings("61")); !isErrno(err, syscall.EACCES) {
		t.Fatalf("IS_DOMAIN_INTRODUCED from a guest: %v", err)
	}
	if _, err := spy.Read(ctx, "/local/domain/61/nonexistent"); !isErrno(err, syscall.EACCES) {
		t.Fatalf("read below an unreadable node: %v (ENOENT leaks existence)", err)
	}
	if _, err := spy.Call(ctx, wire.GetPerms, 0, wire.JoinStrings("/local/domain/61/private")); !isErrno(err, syscall.EACCES) {
		t.Fatalf("GET_PERMS of another guest's node: %v", err)
	}
	// The spy's own events still flow: its watches are live, just filtered.
	if err := spy.Write(ctx, "mine", []byte("m")); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-spy.Events():
		if ev.Path != "/local/domain/60/mine" {
			t.Fatalf("spy got %q", ev.Path)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("spy's own write produced no event on its / watch")
	}
	assertServed(t, victim, "victim")
}

// TestRingGuestCannotImpersonate: a guest's requests are always handled
// as its own domid whatever it puts in a request: relative paths resolve
// to its own home, nodes it creates are owned by it, it cannot write,
// read or take over another guest's nodes, use another connection's
// transaction ids, give a node away (XSA-352) or use privileged operations.
func TestRingGuestCannotImpersonate(t *testing.T) {
	r := newXSARig(t, nil)
	d0 := r.dom0()
	a := r.healthyGuest(d0, 70)
	b := r.healthyGuest(d0, 71)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Both write the same relative key at once; each lands in its own home.
	var wg sync.WaitGroup
	for i, c := range []interface {
		Write(context.Context, string, []byte) error
	}{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				if err := c.Write(ctx, "key", []byte(strconv.Itoa(70+i)+"/"+strconv.Itoa(j))); err != nil {
					t.Errorf("guest %d: %v", 70+i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, id := range []string{"70", "71"} {
		if got := d0.call(t, wire.Read, "/local/domain/"+id+"/key"); got != id+"/49" {
			t.Fatalf("domain %s's key: %q", id, got)
		}
		if got := d0.call(t, wire.GetPerms, "/local/domain/"+id+"/key"); got != "n"+id+"\x00" {
			t.Fatalf("domain %s's key owned by %q", id, got)
		}
	}
	if v, err := a.Read(ctx, "key"); err != nil || string(v) != "70/49" {
		t.Fatalf("relative read: %q %v", v, err)
	}
	if _, err := a.Read(ctx, "/local/domain/71/key"); !isErrno(err, syscall.EACCES) {
		t.Fatalf("read of another guest's node: %v", err)
	}
	if err := a.Write(ctx, "/local/domain/71/key", []byte("forged")); !isErrno(err, syscall.EACCES) {
		t.Fatalf("write to another guest's node: %v", err)
	}
	if _, err := a.Call(ctx, wire.SetPerms, 0, wire.JoinStrings("/local/domain/71/key", "n70")); !isErrno(err, syscall.EACCES) {
		t.Fatalf("take-over of another guest's node: %v", err)
	}
	if _, err := a.Call(ctx, wire.SetPerms, 0, wire.JoinStrings("key", "n71")); !isErrno(err, syscall.EPERM) {
		t.Fatalf("give-away of own node (XSA-352): %v", err)
	}
	for _, bad := range []string{"../71/key", "/local/domain/70/../71/key", "./key"} {
		if err := a.Write(ctx, bad, []byte("x")); err == nil {
			t.Fatalf("path %q accepted", bad)
		}
	}
	// Transaction ids belong to a connection.
	r2, err := b.Call(ctx, wire.TransactionStart, 0, wire.JoinStrings(""))
	if err != nil {
		t.Fatal(err)
	}
	txB, _ := strconv.Atoi(strings.TrimRight(string(r2.Payload), "\x00"))
	if _, err := a.Call(ctx, wire.Write, uint32(txB), append(wire.JoinStrings("/local/domain/71/key"), "forged"...)); !isErrno(err, syscall.ENOENT) {
		t.Fatalf("write in another guest's transaction %d: %v", txB, err)
	}
	if _, err := a.Call(ctx, wire.TransactionEnd, uint32(txB), wire.JoinStrings("T")); !isErrno(err, syscall.ENOENT) {
		t.Fatalf("commit of another guest's transaction: %v", err)
	}
	if _, err := b.Call(ctx, wire.TransactionEnd, uint32(txB), wire.JoinStrings("F")); err != nil {
		t.Fatalf("owner's abort: %v", err)
	}
	for _, op := range []struct {
		typ  wire.Type
		args []string
	}{
		{wire.Introduce, []string{"71", "0", "5"}},
		{wire.Release, []string{"71"}},
		{wire.SetTarget, []string{"70", "71"}},
		{wire.Resume, []string{"71"}},
		{wire.SetQuota, []string{"70", "nodes", "100000"}},
		{wire.Control, []string{"print", "x"}},
	} {
		if _, err := a.Call(ctx, op.typ, 0, wire.JoinStrings(op.args...)); !isErrno(err, syscall.EACCES) {
			t.Fatalf("%v from a guest: %v", op.typ, err)
		}
	}
	// A relative watch reports relative paths of its own home only.
	if err := a.Watch(ctx, "key", "k"); err != nil {
		t.Fatal(err)
	}
	if ev := <-a.Events(); ev.Path != "key" {
		t.Fatalf("initial relative event %q", ev.Path)
	}
	if err := b.Write(ctx, "key", []byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := a.Write(ctx, "key", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if ev := <-a.Events(); ev.Path != "key" {
		t.Fatalf("relative event %q", ev.Path)
	}
	select {
	case ev := <-a.Events():
		t.Fatalf("event for another guest's write: %q", ev.Path)
	case <-time.After(100 * time.Millisecond):
	}
	if got := d0.call(t, wire.Read, "/local/domain/71/key"); got != "b" {
		t.Fatalf("domain 71's key: %q", got)
	}
}

// TestRingReconnect: docs/misc/xenstore-ring.txt ring reconnection. The
// guest sets connection=XENSTORE_RECONNECT mid-conversation (a
// transaction open, a watch set, replies unread, half a request in the
// ring). Expect: the server empties both queues, drops the partial packet,
// every watch and transaction, sets connection back to 0 with the error
// word clear, notifies, and serves the next request as a fresh packet;
// also when its input was stopped by unread replies. Another guest is
// unaffected.
func TestRingReconnect(t *testing.T) {
	q := store.DefaultQuotas()
	q.Hard[store.QMaxOutstanding] = 20
	r := newXSARig(t, &q)
	d0 := r.dom0()
	good := r.healthyGuest(d0, 20)
	_, g := r.rawGuest(80)
	makeHome(t, d0, 80)
	p := g.Page()
	rg, _ := ring.NewGuest(p)
	rr := &rawReader{g: g, rg: rg}
	if rg.Features()&ring.FeatureReconnection == 0 {
		t.Fatal("reconnection not advertised")
	}
	rawPut(t, g, rg, enc(wire.TransactionStart, 1, 0, wire.JoinStrings("")))
	m, ok := rr.next(t, 10*time.Second)
	if !ok || m.Type != wire.TransactionStart {
		t.Fatalf("transaction start: %v %v", m, ok)
	}
	tx, _ := strconv.Atoi(strings.TrimRight(string(m.Payload), "\x00"))
	rawPut(t, g, rg, enc(wire.Write, 2, uint32(tx), append(wire.JoinStrings("/local/domain/80/txval"), "t"...)))
	rawPut(t, g, rg, enc(wire.Watch, 3, 0, wire.JoinStrings("/local/domain/80/w", "tok")))
	for range 3 { // write reply, watch reply, initial event
		if _, ok := rr.next(t, 10*time.Second); !ok {
			t.Fatal("setup reply missing")
		}
	}
	reconnect := func(t *testing.T) {
		t.Helper()
		put32(p, xsaConnection, ring.Reconnect)
		g.Notify()
		if !waitFor(10*time.Second, func() bool { return get32(p, xsaConnection) == ring.Connected }) {
			t.Fatal("server never completed the reconnection")
		}
		for _, off := range []int{xsaReqCons, xsaReqProd, xsaRspCons, xsaRspProd} {
			if v := get32(p, off); v != 0 {
				t.Fatalf("index at %d is %d after reconnection", off, v)
			}
		}
		if e := get32(p, xsaErrorWord); e != 0 {
			t.Fatalf("error word %d after reconnection", e)
		}
		rr.buf = nil
	}

	t.Run("mid-conversation", func(t *testing.T) {
		// Unread replies, then half a request.
		for i := range 5 {
			rawPut(t, g, rg, enc(wire.Read, uint32(10+i), 0, wire.JoinStrings("/local/domain/80")))
		}
		half := enc(wire.Read, 99, 0, wire.JoinStrings("/local/domain/80"))
		rawPut(t, g, rg, half[:10])
		if !waitFor(10*time.Second, func() bool { return get32(p, xsaReqCons) == get32(p, xsaReqProd) }) {
			t.Fatal("server did not consume")
		}
		reconnect(t)
		out := d0.call(t, wire.Control, "queues", "80")
		if !hasLine(out, "watches 0 ") || !hasLine(out, "transactions 0 ") || !hasLine(out, "replies-queued 0 ") {
			t.Fatalf("state survived reconnection:\n%s", out)
		}
		// A fresh packet is parsed from the start.
		rawPut(t, g, rg, enc(wire.Read, 100, 0, wire.JoinStrings("/local/domain/80/txval")))
		if m, ok := rr.next(t, 10*time.Second); !ok || m.ReqID != 100 || string(m.Payload) != "ENOENT\x00" {
			t.Fatalf("first request after reconnection: %v %d %q", ok, m.ReqID, m.Payload)
		}
		rawPut(t, g, rg, enc(wire.TransactionEnd, 101, uint32(tx), wire.JoinStrings("T")))
		if m, ok := rr.next(t, 10*time.Second); !ok || m.Type != wire.Error || string(m.Payload) != "ENOENT\x00" {
			t.Fatalf("old transaction after reconnection: %v %v %q", ok, m.Type, m.Payload)
		}
		if got := d0.call(t, wire.Read, "/local/domain/80/txval"); got != "error ENOENT\x00" {
			t.Fatalf("discarded transaction's write visible: %q", got)
		}
		d0.call(t, wire.Write, "/local/domain/80/w", "changed")
		if m, ok := rr.next(t, 200*time.Millisecond); ok {
			t.Fatalf("discarded watch fired: %v %q", m.Type, m.Payload)
		}
	})

	t.Run("input stopped by unread replies", func(t *testing.T) {
		stopped := func() bool { return hasLine(d0.call(t, wire.Control, "queues", "80"), "input stopped") }
		deadline := time.Now().Add(10 * time.Second)
		for i := 0; !stopped(); i++ {
			if time.Now().After(deadline) {
				t.Fatal("input never stopped")
			}
			m := enc(wire.Read, uint32(200+i), 0, wire.JoinStrings("/local/domain/80"))
			if n, _ := rg.Writable(); n >= len(m) {
				rg.Write(m)
			}
			g.Notify()
			g.Wait(time.Millisecond)
		}
		reconnect(t)
		rawPut(t, g, rg, enc(wire.Read, 400, 0, wire.JoinStrings("/local/domain/80/w")))
		if m, ok := rr.next(t, 10*time.Second); !ok || m.ReqID != 400 || string(m.Payload) != "changed\x00" {
			t.Fatalf("after reconnection: %v %d %q", ok, m.ReqID, m.Payload)
		}
	})
	assertServed(t, good, "bystander")
	if !introduced(t, d0, 80) {
		t.Fatal("reconnection released the domain")
	}
	engineCheck(t, r)
}

// watchQueue parses the line of CONTROL queues output for the watch on
// path ("  watch <path> token <t> queued <n> parked <m>") and returns its
// counts; it fails the test if there is not exactly one such line or it
// does not parse, so a changed output format cannot make checks vacuous.
func watchQueue(t *testing.T, out, path string) (queued, parked int) {
	t.Helper()
	found := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "watch" || f[1] != path {
			continue
		}
		found++
		if len(f) != 8 || f[2] != "token" || f[4] != "queued" || f[6] != "parked" {
			t.Fatalf("unparsable watch line %q", line)
		}
		var err1, err2 error
		queued, err1 = strconv.Atoi(f[5])
		parked, err2 = strconv.Atoi(f[7])
		if err1 != nil || err2 != nil {
			t.Fatalf("unparsable watch line %q: %v %v", line, err1, err2)
		}
	}
	if found != 1 {
		t.Fatalf("%d watch lines for %s in %q, want 1", found, path, out)
	}
	return queued, parked
}
