package store

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xsstub/xenstored/wire"
)

// Seed fix 2 (XSA-326): replies not yet taken are bounded per connection,
// dom0 included; input stops while the bound is reached.
func TestOutstandingRepliesBounded(t *testing.T) {
	q := DefaultQuotas()
	q.Hard[QMaxOutstanding] = 8
	e := newTestEngine(t, func(c *Config) { c.Quotas = &q })
	wakes := 0
	c := e.NewConn(0, true, func() { wakes++ })
	other := dom0(t, e)
	sent := 0
	for c.WantsInput() && sent < 100 {
		c.Handle(wire.Msg{Type: wire.Read, ReqID: uint32(sent + 1), Payload: wire.JoinStrings("/tool")})
		sent++
	}
	if sent != 8 {
		t.Fatalf("accepted %d requests before stopping, want 8", sent)
	}
	other.read("/tool") // others unaffected
	before := wakes
	b, _ := c.NextOutput()
	if m, _ := wire.Decode(b); m.ReqID != 1 {
		t.Fatalf("first reply has req %d", m.ReqID)
	}
	if !c.WantsInput() || wakes == before {
		t.Fatal("input not resumed (or no wake) after a reply was taken")
	}
	for i := 2; ; i++ {
		b, ok := c.NextOutput()
		if !ok {
			break
		}
		if m, _ := wire.Decode(b); m.ReqID != uint32(i) {
			t.Fatalf("reply %d has req %d: order lost", i, m.ReqID)
		}
	}
}

// Watch events are bounded per watch; overflow is parked on the connection
// that caused it, which stops being served until the watcher reads.
func TestWatchEventsParkOnSource(t *testing.T) {
	q := DefaultQuotas()
	q.Hard[QMaxWatchEvents] = 4
	e := newTestEngine(t, func(c *Config) { c.Quotas = &q })
	watcher := dom0(t, e)
	writer := dom0(t, e)
	bystander := dom0(t, e)
	watcher.must(wire.Watch, 0, "/w", "T")
	watcher.takeEvents()
	n := 0
	for writer.c.WantsInput() {
		writer.write("/w/"+strconv.Itoa(n), "")
		n++
		if n > 100 {
			t.Fatal("writer never throttled")
		}
	}
	if n != 5 { // 4 queued, the 5th parked
		t.Fatalf("writer stopped after %d writes, want 5", n)
	}
	if got := watcher.c.PendingOutput(); got != 4 {
		t.Fatalf("watcher has %d queued, want 4", got)
	}
	bystander.write("/elsewhere", "x") // unaffected
	// Replies still flow to the watcher although its event queue is full.
	if got := watcher.read("/elsewhere"); got != "x" {
		t.Fatal(got)
	}
	ev := watcher.drainEvents()
	if len(ev) != 5 {
		t.Fatalf("watcher got %d events, want 5 (4 queued + 1 unparked)", len(ev))
	}
	for i, s := range ev {
		if s != "/w/"+strconv.Itoa(i)+" T" {
			t.Fatalf("event %d is %q: order lost", i, s)
		}
	}
	if !writer.c.WantsInput() {
		t.Fatal("writer still blocked after the watcher drained")
	}
	checkConsistent(t, e)
}

// Removing the watch releases parked sources and drops the queue.
func TestUnwatchReleasesParkedSource(t *testing.T) {
	q := DefaultQuotas()
	q.Hard[QMaxWatchEvents] = 2
	e := newTestEngine(t, func(c *Config) { c.Quotas = &q })
	watcher, writer := dom0(t, e), dom0(t, e)
	watcher.must(wire.Watch, 0, "/w", "T")
	watcher.takeEvents()
	n := 0
	for writer.c.WantsInput() && n < 100 {
		writer.write("/w/"+strconv.Itoa(n), "") // distinct: identical events merge
		n++
	}
	watcher.c.Handle(wire.Msg{Type: wire.ResetWatches, ReqID: 1, Payload: []byte{0}})
	if !writer.c.WantsInput() {
		t.Fatal("writer still parked after the watch was removed")
	}
	if n := watcher.c.PendingOutput(); n != 1 {
		t.Fatalf("%d items queued, want just the reply", n)
	}
	watcher.c.NextOutput()
	// Closing a connection with parked events elsewhere is fine too.
	watcher.must(wire.Watch, 0, "/w", "T")
	for writer.c.WantsInput() && n < 200 {
		writer.write("/w/"+strconv.Itoa(n), "")
		n++
	}
	watcher.c.Close()
	if !writer.c.WantsInput() {
		t.Fatal("writer parked on a closed watcher")
	}
	checkConsistent(t, e)
}

// A watcher that never reads its watch events, guest or dom0 alike (a
// stopped xenstore-watch /), holds up the connection whose writes fill its
// queue only until the events time out (C xenstored drops a guest's events
// unread for 20 s). Then the writer is released, and while the watcher
// still reads nothing its further events are dropped rather than parking
// the writer again; the log names the watcher. Once it reads, its events
// queue normally again.
func TestUnreadEventsExpire(t *testing.T) {
	tests := []struct {
		name  string
		domid uint32
		priv  bool
	}{
		{"guest watcher", 5, false},
		{"dom0 watcher", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := DefaultQuotas()
			q.Hard[QMaxWatchEvents] = 4
			var logs syncBuffer
			e := newTestEngine(t, func(c *Config) {
				c.Quotas = &q
				c.EventTimeout = 50 * time.Millisecond
				c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			})
			d := dom0(t, e)
			guestHome(t, d, "5")
			released := make(chan struct{}, 16)
			writer := &tconn{t: t, c: e.NewConn(0, true, func() {
				select {
				case released <- struct{}{}:
				default:
				}
			})}
			w := &tconn{t: t, c: e.NewConn(tt.domid, tt.priv, nil)}
			w.must(wire.Watch, 0, "/local/domain/5", "T")
			w.c.NextOutput() // the initial event
			n := 0
			write := func() {
				writer.write("/local/domain/5/n"+strconv.Itoa(n), "")
				n++
			}
			for writer.c.WantsInput() && n < 100 {
				write()
			}
			if writer.c.WantsInput() {
				t.Fatal("writer never parked behind the watcher's full queue")
			}
			deadline := time.After(5 * time.Second)
			for !writer.c.WantsInput() {
				select {
				case <-released:
				case <-deadline:
					t.Fatal("writer still parked long after the watcher's events timed out")
				}
			}
			for range 3 * q.Hard[QMaxWatchEvents] {
				if !writer.c.WantsInput() {
					t.Fatalf("writer parked again after %d writes by a watcher known to be stuck", n)
				}
				write()
			}
			want := fmt.Sprintf("conn=%d", w.c.ID())
			if l := logs.String(); !strings.Contains(l, "dropping unread watch events") || !strings.Contains(l, want) {
				t.Fatalf("log does not name the watcher (%s):\n%s", want, l)
			}
			// Reading again: the watcher gets the events since, in order.
			w.drainEvents()
			write()
			write()
			if got, want := w.drainEvents(), []string{
				"/local/domain/5/n" + strconv.Itoa(n-2) + " T",
				"/local/domain/5/n" + strconv.Itoa(n-1) + " T",
			}; !slices.Equal(got, want) {
				t.Fatalf("events after reading again: %q, want %q", got, want)
			}
			d.write("/elsewhere", "ok")
			checkConsistent(t, e)
		})
	}
}

// syncBuffer is a bytes.Buffer for a logger written from timers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
