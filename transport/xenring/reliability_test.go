package xenring

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/xsstub/xenstored/store/wire"
	"github.com/xsstub/xenstored/xen/ringclient"
)

// TestEventOverflowUnmasksPorts: after the event channel's pending buffer
// overflows, every bound port is unmasked, so a guest whose event was lost
// is still served afterwards and domain deaths (VIRQ_DOM_EXC) are still
// noticed (issue 13 item 3).
func TestEventOverflowUnmasksPorts(t *testing.T) {
	tests := []struct {
		name string
		// lose makes one event be lost in an overflow; after it, check
		// must show the port is served again.
		lose, check func(t *testing.T, r *rig, d0 *dom0, g *ringclient.Client)
	}{
		{"guest ring port", func(t *testing.T, r *rig, d0 *dom0, g *ringclient.Client) {
			// Answered all the same: the overflow marks every ring dirty.
			guestWrite(t, g, "lost", "1")
		}, func(t *testing.T, r *rig, d0 *dom0, g *ringclient.Client) {
			for i := 0; i < 3; i++ {
				guestWrite(t, g, "after"+strconv.Itoa(i), "1")
			}
		}},
		{"VIRQ_DOM_EXC port", func(t *testing.T, r *rig, d0 *dom0, g *ringclient.Client) {
			r.killGuest(t, d0, 8)
		}, func(t *testing.T, r *rig, d0 *dom0, g *ringclient.Client) {
			r.killGuest(t, d0, 9)
			guestWrite(t, g, "after", "1")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			d0 := r.dom0()
			d0.call(t, wire.Watch, "@releaseDomain", "r")
			d0.event(t) // the initial event
			g := r.homeGuest(t, d0, 7)
			for _, id := range []uint32{8, 9} {
				r.homeGuest(t, d0, id)
			}
			guestWrite(t, g, "before", "1") // every port quiet and unmasked
			r.ev.OverflowNext()
			tt.lose(t, r, d0, g)
			tt.check(t, r, d0, g)
		})
	}
}

// homeGuest introduces guest id with a home it owns and a ring client.
func (r *rig) homeGuest(t *testing.T, d0 *dom0, id uint32) *ringclient.Client {
	t.Helper()
	_, _, c := r.guest(id)
	home := "/local/domain/" + strconv.Itoa(int(id))
	d0.call(t, wire.Write, home, "")
	if got := d0.call(t, wire.SetPerms, home, "n"+strconv.Itoa(int(id))); got != "OK\x00" {
		t.Fatalf("set perms of %s: %q", home, got)
	}
	return c
}

// killGuest destroys domain id and waits for dom0's @releaseDomain event.
func (r *rig) killGuest(t *testing.T, d0 *dom0, id uint32) {
	t.Helper()
	if err := r.h.SetDying(id); err != nil {
		t.Fatal(err)
	}
	if got := d0.event(t); got != "@releaseDomain" {
		t.Fatalf("event %q", got)
	}
}

// guestWrite writes through g's ring and fails the test if no answer
// comes within 10 s (a ring nobody serves any more).
func guestWrite(t *testing.T, g *ringclient.Client, path, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Write(ctx, path, []byte(value)); err != nil {
		t.Fatalf("guest write %s: %v", path, err)
	}
}
