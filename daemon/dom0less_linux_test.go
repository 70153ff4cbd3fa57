package daemon

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/fake"
	"github.com/xsstub/xenstored/xen/ringclient"
	"github.com/xsstub/xenstored/xsclient"
)

// Offsets in the ring page: its connection word and req_prod.
const (
	ringConnection = 2068
	ringReqProd    = 2052
)

func TestDom0lessRoles(t *testing.T) {
	xs := func(id uint32) xen.DomInfo { return xen.DomInfo{ID: id, XenstoreDomain: true} }
	ctl := func(id uint32) xen.DomInfo { return xen.DomInfo{ID: id, Control: true} }
	plain := func(id uint32) xen.DomInfo { return xen.DomInfo{ID: id} }
	tests := []struct {
		name            string
		doms            []xen.DomInfo
		args            []string
		store, priv     uint32
		wantErrContains string
	}{
		{"store only: priv defaults to it", []xen.DomInfo{xs(1), plain(2), plain(3)}, nil, 1, 1, ""},
		{"a control domain", []xen.DomInfo{plain(1), xs(2), ctl(3), ctl(4)}, nil, 2, 3, ""},
		{"-p wins", []xen.DomInfo{xs(1), ctl(3)}, []string{"-p", "7"}, 1, 7, ""},
		{"-m wins", []xen.DomInfo{xs(1), plain(2)}, []string{"-m", "2"}, 2, 2, ""},
		{"a dying xenstore domain is not ours", []xen.DomInfo{{ID: 1, XenstoreDomain: true, Dying: true}, xs(4)}, nil, 4, 4, ""},
		{"no xenstore domain", []xen.DomInfo{plain(1), ctl(2)}, nil, 0, 0, "no domain is flagged as xenstore domain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := Parse(append([]string{"--stubdom"}, tt.args...), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			b, err := dom0lessRoles(tt.doms, o)
			if tt.wantErrContains != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrContains) {
					t.Fatalf("err = %v, want %q", err, tt.wantErrContains)
				}
				return
			}
			if err != nil || b.store != tt.store || b.priv != tt.priv {
				t.Fatalf("roles = %+v, %v; want store %d priv %d", b, err, tt.store, tt.priv)
			}
		})
	}
}

// dom0lessHost is Xen after a dom0less boot: no dom0, domain 1 the
// xenstore domain (ours), 2 and 3 domUs whose rings Xen set to
// XENSTORE_RECONNECT, with the event channel port written in the ring
// (ringPort) or, as Xen 4.22 on Arm does, not (0).
func dom0lessHost(t *testing.T, v xen.Version, ringPort bool) (*fake.Hypervisor, map[uint32]*fake.Guest) {
	t.Helper()
	h := fake.New()
	t.Cleanup(func() { h.Close() })
	h.SetRelease(v)
	guests := map[uint32]*fake.Guest{}
	for _, id := range []uint32{1, 2, 3} {
		d, err := h.NewDomain(id)
		if err != nil {
			t.Fatal(err)
		}
		if id == 1 {
			continue
		}
		g, err := d.Attach()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		binary.LittleEndian.PutUint32(g.Page()[ringConnection:], 1) // XENSTORE_RECONNECT
		if ringPort {
			binary.LittleEndian.PutUint32(g.Page()[ringEvtchnPort:], d.GuestPort())
		}
		guests[id] = g
	}
	h.SetXenstoreDomain(1, true)
	return h, guests
}

// queueEarly has the guest write a READ of its domid into its ring before
// any store serves it, as Linux does when a process writes to
// /dev/xen/xenbus before the store came up. The reply comes on the
// channel; the client is closed then.
func queueEarly(t *testing.T, g *fake.Guest) <-chan string {
	t.Helper()
	c, err := ringclient.New(g.Page(), g)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		v, err := c.Read(ctx, "domid")
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- string(v)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for binary.LittleEndian.Uint32(g.Page()[ringReqProd:]) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the early request never reached the ring")
		}
		time.Sleep(time.Millisecond)
	}
	return got
}

// runDaemon starts Run and waits for its socket; the returned function
// stops it and returns Run's error.
func runDaemon(t *testing.T, o *Options, log *slog.Logger) (stop func() error, early error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o, log) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", o.Socket); err == nil {
			c.Close()
			break
		}
		select {
		case err := <-done:
			cancel()
			return nil, err
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("socket never answered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return func() error {
		cancel()
		err := <-done
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}, nil
}

// TestRunDom0less: started with --stubdom and no --event on a dom0less
// host, the daemon finds itself by its xenstore flag, introduces both
// domUs (their port from the ring, or found by binding when Xen left it
// out), completes their ring's reconnection, gives each a home it owns,
// and the two talk through the store: one writes a node every domain may
// read (DOMID_ANY), the other reads it and watches @releaseDomain/<peer>,
// which fires when the peer is destroyed.
func TestRunDom0less(t *testing.T) {
	for _, tt := range []struct {
		name     string
		ringPort bool
		from     string
	}{
		{"port in the ring", true, "port_from=ring"},
		{"port not in the ring (4.22 on Arm)", false, "port_from=probe"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, guests := dom0lessHost(t, xen.Version{Major: 4, Minor: 22}, tt.ringPort)
			early := queueEarly(t, guests[3])
			withFakeXen(t, h)
			o := testOptions(t, "--stubdom")
			var logged strings.Builder
			log := slog.New(slog.NewTextHandler(&syncWriter{w: &logged}, nil))
			stop, startErr := runDaemon(t, o, log)
			if startErr != nil {
				t.Fatalf("Run returned %v\n%s", startErr, logged.String())
			}
			c, err := xsclient.Dial(o.Socket)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, id := range []string{"2", "3"} {
				if got, err := c.Call(wire.IsDomainIntroduced, 0, id); err != nil || string(got) != "T\x00" {
					t.Errorf("IS_DOMAIN_INTRODUCED %s = %q, %v", id, got, err)
				}
				if got, err := c.Call(wire.GetPerms, 0, "/local/domain/"+id); err != nil || string(got) != "n"+id+"\x00r1\x00" {
					t.Errorf("GET_PERMS home of %s = %q, %v; want owner %s, read for the store (priv defaulted to it)", id, got, err, id)
				}
				if got, err := c.Read(0, "/local/domain/"+id+"/domid"); err != nil || string(got) != id {
					t.Errorf("domid of %s = %q, %v", id, got, err)
				}
			}
			for id, g := range guests {
				if w := binary.LittleEndian.Uint32(g.Page()[ringConnection:]); w != 0 {
					t.Errorf("dom%d's ring connection word = %d, want XENSTORE_CONNECTED", id, w)
				}
			}
			if v := <-early; v != "3" {
				t.Fatalf("dom3's request queued before the store came: %q, want its domid", v)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			a, err := ringclient.New(guests[2].Page(), guests[2])
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := ringclient.New(guests[3].Page(), guests[3])
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if err := a.Write(ctx, "/local/domain/2/data/hello", []byte("from 2")); err != nil {
				t.Fatalf("dom2 writes in its home: %v", err)
			}
			if _, err := b.Read(ctx, "/local/domain/2/data/hello"); err == nil {
				t.Fatal("dom3 reads dom2's node before dom2 allowed it")
			}
			perms := []byte("/local/domain/2/data/hello\x00n2\x00r" + "32757" + "\x00") // DOMID_ANY
			if _, err := a.Call(ctx, wire.SetPerms, 0, perms); err != nil {
				t.Fatalf("dom2 SET_PERMS with DOMID_ANY: %v", err)
			}
			if got, err := b.Read(ctx, "/local/domain/2/data/hello"); err != nil || string(got) != "from 2" {
				t.Fatalf("dom3 reads dom2's node = %q, %v", got, err)
			}
			if err := b.Watch(ctx, "@releaseDomain/2", "peer"); err != nil {
				t.Fatalf("dom3 watches @releaseDomain/2: %v", err)
			}
			<-b.Events() // the watch's first event
			if err := h.Destroy(2); err != nil {
				t.Fatal(err)
			}
			select {
			case ev := <-b.Events():
				if ev.Path != "@releaseDomain/2" || ev.Token != "peer" {
					t.Fatalf("event %+v", ev)
				}
			case <-ctx.Done():
				t.Fatal("no @releaseDomain/2 event after dom2's death")
			}
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			s := logged.String()
			for _, want := range []string{"dom0less: no control domain's ring given", "store=1 priv=1", tt.from,
				`msg="dom0less: serving" introduced=2 memory="system (kB):`} {
				if !strings.Contains(s, want) {
					t.Errorf("log lacks %q:\n%s", want, s)
				}
			}
		})
	}
}

// TestRunDom0lessRefuses: with no control domain's ring the daemon
// refuses, and says why, where it cannot find the domains to serve.
func TestRunDom0lessRefuses(t *testing.T) {
	for _, tt := range []struct {
		name  string
		v     xen.Version
		setup func(h *fake.Hypervisor)
		want  string
	}{
		{"4.20 lists no domains to a xenstore domain", xen.Version{Major: 4, Minor: 20}, nil, "no way to find the domains to serve"},
		{"no domain flagged xenstore", xen.Version{Major: 4, Minor: 22}, func(h *fake.Hypervisor) { h.SetXenstoreDomain(1, false) }, "no domain is flagged as xenstore domain"},
		{"nobody else", xen.Version{Major: 4, Minor: 22}, func(h *fake.Hypervisor) { h.Destroy(2); h.Destroy(3) }, "no domain but ours"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := dom0lessHost(t, tt.v, true)
			if tt.setup != nil {
				tt.setup(h)
			}
			withFakeXen(t, h)
			o := testOptions(t, "--stubdom")
			stop, err := runDaemon(t, o, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if stop != nil {
				stop()
				t.Fatal("the daemon served")
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "refusing to serve") {
				t.Fatalf("Run = %v, want a refusal saying %q", err, tt.want)
			}
		})
	}
}

// TestDom0lessHome: each domain's home holds what Xen's init-dom0less
// writes for a dom0less domain, with libxl's permissions: the nodes its
// drivers read (name, domid, memory/target and static-max from the
// domain's memory, control/platform-feature-*) owned by the control
// domain and readable by the domain, which cannot rewrite them; the
// directories it writes in (data, control/shutdown, ...) its own. Without
// its memory (domain 3 here) the memory values are left out, not guessed.
func TestDom0lessHome(t *testing.T) {
	h, guests := dom0lessHost(t, xen.Version{Major: 4, Minor: 22}, true)
	if err := h.SetMemory(2, 65536, 65537); err != nil {
		t.Fatal(err)
	}
	withFakeXen(t, h)
	o := testOptions(t, "--stubdom")
	stop, err := runDaemon(t, o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	c, err := xsclient.Dial(o.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, n := range []struct {
		path, value, perms string // perms "": the node must not exist
	}{
		{"/local/domain/2", "", "n2\x00r1\x00"},
		{"/local/domain/2/name", "dom0less-2", "n1\x00r2\x00"},
		{"/local/domain/2/domid", "2", "n1\x00r2\x00"},
		{"/local/domain/2/memory/target", "262144", "n1\x00r2\x00"},
		{"/local/domain/2/memory/static-max", "262148", "n1\x00r2\x00"},
		{"/local/domain/2/memory/videoram", "-1", "n1\x00r2\x00"},
		{"/local/domain/2/control/shutdown", "", "n2\x00"},
		{"/local/domain/2/control/feature-poweroff", "", "n2\x00"},
		{"/local/domain/2/control/platform-feature-xs_reset_watches", "1", "n1\x00r2\x00"},
		{"/local/domain/2/data", "", "n2\x00"},
		{"/local/domain/2/device", "", "n1\x00r2\x00"},
		{"/local/domain/3/name", "dom0less-3", "n1\x00r3\x00"},
		{"/local/domain/3/memory", "", "n1\x00r3\x00"},
		{"/local/domain/3/memory/target", "", ""},
		{"/vm", "", ""},
	} {
		got, err := c.Call(wire.GetPerms, 0, n.path)
		if n.perms == "" {
			if err == nil {
				t.Errorf("%s exists (perms %q)", n.path, got)
			}
			continue
		}
		if err != nil || string(got) != n.perms {
			t.Errorf("GET_PERMS %s = %q, %v; want %q", n.path, got, err, n.perms)
		}
		if v, err := c.Read(0, n.path); err != nil || string(v) != n.value {
			t.Errorf("READ %s = %q, %v; want %q", n.path, v, err, n.value)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g, err := ringclient.New(guests[2].Page(), guests[2])
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, w := range []struct {
		path string
		ok   bool
	}{
		{"control/feature-poweroff", true}, // Linux's manage driver writes it
		{"data/x", true},
		{"name", false},
		{"memory/target", false},
		{"control/platform-feature-xs_reset_watches", false},
	} {
		err := g.Write(ctx, w.path, []byte("1"))
		if (err == nil) != w.ok {
			t.Errorf("domain 2 writes its %s: %v, want allowed %v", w.path, err, w.ok)
		}
	}
	if v, err := g.Read(ctx, "memory/target"); err != nil || string(v) != "262144" {
		t.Errorf("domain 2 reads its memory/target: %q, %v", v, err)
	}
}
