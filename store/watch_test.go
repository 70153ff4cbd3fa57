package store

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/xsstub/xenstored/wire"
)

func TestWatches(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, d, w *tconn, g *tconn)
		want []string // events seen by w (or g) after the initial ones
	}{
		{"subtree and exact", func(t *testing.T, d, w, g *tconn) {
			w.must(wire.Watch, 0, "/a", "T")
			w.takeEvents()
			d.write("/a", "1")
			d.write("/a/b/c", "2")
			d.write("/ab", "no")
			d.must(wire.Rm, 0, "/a/b")
		}, []string{"/a T", "/a/b/c T", "/a/b T"}},
		{"initial event", func(t *testing.T, d, w, g *tconn) {
			w.must(wire.Watch, 0, "/nonexistent", "tok")
		}, []string{"/nonexistent tok"}},
		{"rm of parent reports existing watched node", func(t *testing.T, d, w, g *tconn) {
			d.write("/p/q/r", "")
			w.must(wire.Watch, 0, "/p/q", "T")
			w.must(wire.Watch, 0, "/p/zz", "U")
			w.takeEvents()
			d.must(wire.Rm, 0, "/p")
		}, []string{"/p/q T"}},
		{"depth", func(t *testing.T, d, w, g *tconn) {
			w.must(wire.Watch, 0, "/d", "T", "1")
			w.takeEvents()
			d.write("/d/1", "")
			d.write("/d/1/2", "")
		}, []string{"/d/1 T"}},
		{"unwatch", func(t *testing.T, d, w, g *tconn) {
			w.must(wire.Watch, 0, "/u", "T")
			w.fails("EEXIST", wire.Watch, 0, "/u", "T")
			w.must(wire.Unwatch, 0, "/u", "T")
			w.fails("ENOENT", wire.Unwatch, 0, "/u", "T")
			// An invalid path is EINVAL, as for WATCH (C 4.22).
			w.fails("EINVAL", wire.Unwatch, 0, "/u/", "T")
			w.fails("EINVAL", wire.Unwatch, 0, "/a b", "T")
			w.fails("ENOENT", wire.Unwatch, 0, "@x", "T")
			w.takeEvents()
			d.write("/u", "")
		}, nil},
		{"unreadable nodes give no events (XSA-115)", func(t *testing.T, d, w, g *tconn) {
			d.write("/local/domain/5", "")
			d.must(wire.SetPerms, 0, "/local/domain/5", "n5")
			g.must(wire.Watch, 0, "/", "root")
			g.takeEvents()
			d.write("/hidden/x", "secret")
			d.write("/local/domain/5/mine", "ok")
		}, []string{"/local/domain/5/mine root"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEngine(t, nil)
			d, w, g := dom0(t, e), dom0(t, e), guest(t, e, 5)
			tt.run(t, d, w, g)
			got := append(w.drainEvents(), g.drainEvents()...)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("events %q, want %q", got, tt.want)
			}
			checkConsistent(t, e)
		})
	}
}

func TestRelativeWatchEvents(t *testing.T) {
	e := newTestEngine(t, nil)
	d, g := dom0(t, e), guest(t, e, 5)
	d.write("/local/domain/5/x", "")
	d.must(wire.SetPerms, 0, "/local/domain/5", "n5")
	d.must(wire.SetPerms, 0, "/local/domain/5/x", "n5")
	g.must(wire.Watch, 0, "x", "rel")
	g.must(wire.Watch, 0, "/local/domain/5/x", "abs")
	if got := g.takeEvents(); !reflect.DeepEqual(got, []string{"x rel", "/local/domain/5/x abs"}) {
		t.Fatalf("initial events %q", got)
	}
	d.write("/local/domain/5/x/y", "1")
	if got := g.drainEvents(); !reflect.DeepEqual(got, []string{"x/y rel", "/local/domain/5/x/y abs"}) {
		t.Fatalf("events %q", got)
	}
	// Unreadable for the guest: its own watch on / sees its nodes only.
	g.must(wire.Watch, 0, "/", "root")
	g.takeEvents()
	d.write("/elsewhere", "s")
	if got := g.drainEvents(); len(got) != 0 {
		t.Fatalf("leaked events %q", got)
	}
}

func TestSpecialWatches(t *testing.T) {
	e := newTestEngine(t, nil)
	d, w := dom0(t, e), dom0(t, e)
	g := guest(t, e, 5)
	w.must(wire.Watch, 0, "@introduceDomain", "i")
	w.must(wire.Watch, 0, "@releaseDomain", "r")
	w.must(wire.Watch, 0, "@releaseDomain/7", "r7")
	w.must(wire.Watch, 0, "@introduceDomain", "i1", "1")
	g.must(wire.Watch, 0, "@introduceDomain", "gi")
	g.must(wire.Watch, 0, "@releaseDomain/7", "gr7")
	w.takeEvents()
	g.takeEvents()
	d.must(wire.Introduce, 0, "7", "4096", "3")
	d.must(wire.Introduce, 0, "8", "4096", "3")
	d.must(wire.Release, 0, "7")
	want := []string{"@introduceDomain i", "@introduceDomain/7 i1", "@introduceDomain i", "@introduceDomain/8 i1", "@releaseDomain r", "@releaseDomain/7 r7"}
	if got := w.drainEvents(); !reflect.DeepEqual(got, want) {
		t.Fatalf("events %q\nwant %q", got, want)
	}
	// @releaseDomain is readable by every domain (DOMID_ANY, as C 4.22),
	// @introduceDomain is not.
	if got := g.drainEvents(); !reflect.DeepEqual(got, []string{"@releaseDomain/7 gr7"}) {
		t.Fatalf("unprivileged guest's special events %q", got)
	}
	// Permission can be granted explicitly.
	d.must(wire.SetPerms, 0, "@introduceDomain", "n0", "r5")
	d.must(wire.Introduce, 0, "9", "4096", "3")
	// The permission change itself is an event on the node, then the
	// introduction.
	if got := g.drainEvents(); !reflect.DeepEqual(got, []string{"@introduceDomain gi", "@introduceDomain gi"}) {
		t.Fatalf("guest events after grant %q", got)
	}
	d.fails("ENOENT", wire.Release, 0, "7")
	d.fails("EINVAL", wire.Release, 0, "0")
	w.drainEvents()
}

// XSA-324: an event that would not fit the wire is dropped, nothing breaks.
func TestOversizedEventDropped(t *testing.T) {
	e := newTestEngine(t, nil)
	d, w := dom0(t, e), dom0(t, e)
	tok := strings.Repeat("t", 3000)
	w.must(wire.Watch, 0, "/", tok)
	w.takeEvents()
	long := "/" + strings.Repeat("p", 1500)
	d.write(long, "")
	d.write("/short", "")
	got := w.drainEvents()
	if len(got) != 1 || !strings.HasPrefix(got[0], "/short ") {
		t.Fatalf("got %d events", len(got))
	}
}

func TestRemovedWatchDropsQueue(t *testing.T) {
	e := newTestEngine(t, nil)
	d := dom0(t, e)
	w := dom0(t, e)
	w.must(wire.Watch, 0, "/q", "T")
	w.takeEvents()
	// Events queue up while w does not read (we call Handle directly).
	for i := 0; i < 10; i++ {
		d.write("/q/n"+strconv.Itoa(i), "x")
	}
	d.write("/q/n0", "again") // identical to a queued event: merged, as in C
	if n := w.c.PendingOutput(); n != 10 {
		t.Fatalf("%d queued", n)
	}
	w.c.Handle(wire.Msg{Type: wire.Unwatch, ReqID: 1, Payload: wire.JoinStrings("/q", "T")})
	if n := w.c.PendingOutput(); n != 1 { // just the UNWATCH reply
		t.Fatalf("%d queued after unwatch", n)
	}
	checkConsistent(t, e)
}

// Removing a connection's watches costs time linear in its watches and
// queued output (issue: closing a client with 2000 watches and queued
// events froze the daemon for a minute). The work is counted, not timed:
// the elements visited must stay within a small multiple of what there is
// to remove, which a quadratic removal exceeds by far at these sizes.
func TestRemoveWatchesLinear(t *testing.T) {
	tests := []struct {
		name     string
		watches  int
		samePath bool // every watch on one path (distinct tokens)
		writes   int  // changes fired at each watch before the removal
		read     bool // the watcher read everything before the removal
		reset    bool // RESET_WATCHES instead of closing
	}{
		{"close, distinct paths, events queued", 2000, false, 2, false, false},
		{"close, one path, events queued", 2000, true, 2, false, false},
		{"close, nothing queued", 5000, false, 0, true, false},
		{"reset, distinct paths, events queued", 2000, false, 2, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEngine(t, nil)
			d := dom0(t, e)
			bystander := dom0(t, e)
			bystander.must(wire.Watch, 0, "/w", "B")
			w := e.NewConn(0, true, nil)
			path := func(i int) string {
				if tt.samePath {
					return "/w"
				}
				return "/w/" + strconv.Itoa(i)
			}
			for i := range tt.watches {
				// Not read: replies and events stay queued.
				w.Handle(wire.Msg{Type: wire.Watch, Payload: wire.JoinStrings(path(i), "t"+strconv.Itoa(i))})
			}
			for j := range tt.writes {
				if tt.samePath {
					d.write("/w/x"+strconv.Itoa(j), "")
					continue
				}
				for i := range tt.watches {
					d.write(path(i)+"/x"+strconv.Itoa(j), "")
				}
			}
			if tt.read {
				for _, ok := w.NextOutput(); ok; _, ok = w.NextOutput() {
				}
			}
			queued := w.PendingOutput()
			before := e.removeSteps
			if tt.reset {
				w.Handle(wire.Msg{Type: wire.ResetWatches})
			} else {
				w.Close()
			}
			steps := e.removeSteps - before
			if limit := 3 * (tt.watches + queued); steps > limit {
				t.Errorf("removing %d watches with %d messages queued visited %d elements, want at most %d", tt.watches, queued, steps, limit)
			}
			if tt.reset {
				var replies int
				for {
					b, ok := w.NextOutput()
					if !ok {
						break
					}
					if m, _ := wire.Decode(b); m.Type == wire.WatchEvent {
						t.Fatalf("event %q left queued after RESET_WATCHES", m.Payload)
					}
					replies++
				}
				want := tt.watches + 1 // WATCH replies and RESET_WATCHES's
				if tt.read {
					want = 1
				}
				if replies != want {
					t.Errorf("%d replies queued after RESET_WATCHES, want %d", replies, want)
				}
			}
			checkConsistent(t, e)
			bystander.drainEvents()
			d.write("/w/after", "")
			if got := bystander.drainEvents(); !reflect.DeepEqual(got, []string{"/w/after B"}) {
				t.Errorf("bystander's watch after the removal: events %q", got)
			}
		})
	}
}
