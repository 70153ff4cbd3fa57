package domains_test

import (
	"errors"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/domains"
	"github.com/xsstub/xenstored/xen/fake"
)

// every release, as the fake hypervisor plays it.
func eachRelease(t *testing.T, f func(t *testing.T, h *fake.Hypervisor, tr *domains.Tracker)) {
	for _, r := range domains.Releases {
		t.Run(r.Version.String(), func(t *testing.T) {
			h := fake.New()
			t.Cleanup(func() { h.Close() })
			h.SetRelease(r.Version)
			for _, id := range []uint32{0, 1, 5} {
				if _, err := h.NewDomain(id); err != nil {
					t.Fatal(err)
				}
			}
			h.SetXenstoreDomain(1, true)
			tr, err := domains.Open(h, xen.Version{})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if got := tr.Release(); got != r {
				t.Fatalf("release %+v, want %+v", got, r)
			}
			ec, err := h.OpenEventChannel()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ec.Close() })
			if _, err := ec.BindVIRQ(xen.VIRQDomExc); err != nil {
				t.Fatal(err)
			}
			if r.Method == domains.DomainState {
				// What the daemon does first: learn the domains there are.
				if _, err := tr.Existing(); err != nil {
					t.Fatal(err)
				}
			}
			f(t, h, tr)
		})
	}
}

func TestDomainExistence(t *testing.T) {
	eachRelease(t, func(t *testing.T, h *fake.Hypervisor, tr *domains.Tracker) {
		for _, tt := range []struct {
			id   uint32
			want bool
		}{{0, true}, {1, true}, {2, false}, {4, false}, {5, true}, {6, false}, {0x7fef, false}, {0x7ff0, false}, {xen.DomIDInvalid, false}} {
			_, ok, err := tr.Domain(tt.id)
			if err != nil || ok != tt.want {
				t.Errorf("Domain(%d) = %v, %v; want %v", tt.id, ok, err, tt.want)
			}
		}
		if self, err := tr.Self(); err != nil || self != 1 {
			t.Errorf("Self = %d, %v; want 1", self, err)
		}
	})
}

func ids(infos []xen.DomInfo, keep func(xen.DomInfo) bool) []uint32 {
	var out []uint32
	for _, d := range infos {
		if keep(d) {
			out = append(out, d.ID)
		}
	}
	slices.Sort(out)
	return out
}

func gone(d xen.DomInfo) bool { return d.Gone }

// TestDeathAndShutdown: after VIRQ_DOM_EXC, Changes reports a destroyed
// domain gone, a shut-down one shut down, a dying one dying.
func TestDeathAndShutdown(t *testing.T) {
	eachRelease(t, func(t *testing.T, h *fake.Hypervisor, tr *domains.Tracker) {
		for _, id := range []uint32{7, 8, 9} {
			h.NewDomain(id)
		}
		known := []uint32{5, 7, 8, 9}
		if _, err := tr.Changes(known); err != nil { // learn them
			t.Fatal(err)
		}
		h.Destroy(7)
		h.SetShutdown(8, xen.ShutdownPoweroff)
		h.SetDying(9)
		ch, err := tr.Changes(known)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(ch, gone); !slices.Equal(got, []uint32{7}) {
			t.Errorf("gone = %v, want [7] (%+v)", got, ch)
		}
		if got := ids(ch, func(d xen.DomInfo) bool { return d.Shutdown && !d.Gone }); !slices.Equal(got, []uint32{8}) {
			t.Errorf("shut down = %v, want [8]", got)
		}
		if got := ids(ch, func(d xen.DomInfo) bool { return d.Dying && !d.Gone }); !slices.Equal(got, []uint32{9}) {
			t.Errorf("dying = %v, want [9]", got)
		}
		if got := ids(ch, func(d xen.DomInfo) bool { return d.ID == 5 && (d.Gone || d.Dying || d.Shutdown) }); len(got) != 0 {
			t.Errorf("dom5 reported dead: %+v", ch)
		}
	})
}

// TestDomidReuse: a domain destroyed and replaced under the same domid
// between two scans. Asked about, the id exists (the new domain: a
// toolstack naming it in permissions must not be refused). From 4.21 the
// unique id still tells Changes that the known one died; before, the new
// domain is taken for the old one (documented limit), but never the other
// way round: a live domain is never reported gone.
func TestDomidReuse(t *testing.T) {
	eachRelease(t, func(t *testing.T, h *fake.Hypervisor, tr *domains.Tracker) {
		h.NewDomain(7)
		if _, ok, err := tr.Domain(7); !ok || err != nil {
			t.Fatalf("Domain(7) = %v, %v", ok, err)
		}
		h.Destroy(7)
		h.NewDomain(7)
		if _, ok, err := tr.Domain(7); !ok || err != nil {
			t.Fatalf("new dom7 exists: Domain = %v, %v", ok, err)
		}
		ch, err := tr.Changes([]uint32{7})
		if err != nil {
			t.Fatal(err)
		}
		wantGone := tr.Release().Method == domains.DomainState
		if got := len(ids(ch, gone)) == 1; got != wantGone {
			t.Errorf("old dom7 reported gone = %v, want %v (%+v)", got, wantGone, ch)
		}
		// The new domain is the known one from now on.
		ch, err = tr.Changes([]uint32{7})
		if err != nil || len(ids(ch, gone)) != 0 {
			t.Errorf("new dom7 reported gone: %+v, %v", ch, err)
		}
		// Introduced: the store now serves whatever holds the id.
		h.Destroy(7)
		h.NewDomain(7)
		tr.Introduced(7)
		if ch, err := tr.Changes([]uint32{7}); err != nil || len(ids(ch, gone)) != 0 {
			t.Errorf("introduced dom7 reported gone: %+v, %v", ch, err)
		}
	})
}

// TestFailedQueryIsNotDeath: when the hypervisor stops answering, a
// domain is never reported gone, and existence is an error, not "no".
func TestFailedQueryIsNotDeath(t *testing.T) {
	eachRelease(t, func(t *testing.T, h *fake.Hypervisor, tr *domains.Tracker) {
		h.SetDomctlError(syscall.EFAULT)
		if _, ok, err := tr.Domain(5); err == nil || ok {
			t.Errorf("Domain(5) with failing hypervisor = %v, %v", ok, err)
		}
		h.Destroy(5)
		ch, err := tr.Changes([]uint32{5})
		if err == nil {
			t.Errorf("Changes with failing hypervisor: no error")
		}
		if len(ids(ch, gone)) != 0 {
			t.Errorf("failure reported as death: %+v", ch)
		}
	})
}

func TestOpenRefuses(t *testing.T) {
	tests := []struct {
		name    string
		running xen.Version
		assume  xen.Version
		err     error
		want    error // nil: Open succeeds
	}{
		{"4.16 unknown", xen.Version{Major: 4, Minor: 16}, xen.Version{}, nil, domains.ErrUnknownRelease},
		{"4.23 unknown", xen.Version{Major: 4, Minor: 23}, xen.Version{}, nil, domains.ErrUnknownRelease},
		{"4.23 assumed 4.22: the stable domctl still answers", xen.Version{Major: 4, Minor: 23}, xen.Version{Major: 4, Minor: 22}, nil, nil},
		{"4.20 assumed 4.19: same interface", xen.Version{Major: 4, Minor: 20}, xen.Version{Major: 4, Minor: 19}, nil, nil},
		{"4.17 assumed 4.18: refused", xen.Version{Major: 4, Minor: 17}, xen.Version{Major: 4, Minor: 18}, nil, syscall.EACCES},
		{"assumed unknown", xen.Version{Major: 4, Minor: 20}, xen.Version{Major: 3, Minor: 4}, nil, domains.ErrUnknownRelease},
		{"domctl refused", xen.Version{Major: 4, Minor: 20}, xen.Version{}, syscall.EACCES, syscall.EACCES},
		{"domctl fails", xen.Version{Major: 4, Minor: 21}, xen.Version{}, syscall.EFAULT, syscall.EFAULT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fake.New()
			defer h.Close()
			h.NewDomain(0)
			h.SetRelease(tt.running)
			h.SetDomctlError(tt.err)
			_, err := domains.Open(h, tt.assume)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.running.String()) {
				t.Errorf("error %q does not name the running release %v", err, tt.running)
			}
		})
	}
}

// TestExisting: the domains created before the store, where the release
// lets a xenstore domain list them.
func TestExisting(t *testing.T) {
	for _, r := range domains.Releases {
		t.Run(r.Version.String(), func(t *testing.T) {
			h := fake.New()
			defer h.Close()
			h.SetRelease(r.Version)
			for _, id := range []uint32{0, 1, 3, 12} {
				h.NewDomain(id)
			}
			ec, _ := h.OpenEventChannel()
			defer ec.Close()
			ec.BindVIRQ(xen.VIRQDomExc)
			tr, err := domains.Open(h, xen.Version{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := tr.Existing()
			if r.Method == domains.PerDomain {
				if !errors.Is(err, domains.ErrCannotEnumerate) {
					t.Fatalf("Existing = %v, %v; want ErrCannotEnumerate", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ids := ids(got, func(xen.DomInfo) bool { return true }); !slices.Equal(ids, []uint32{0, 1, 3, 12}) {
				t.Errorf("Existing = %v", ids)
			}
		})
	}
}

// TestRefusalIsNotDeath: EPERM means "no such domain" only from 4.22,
// which gives it a non-control caller for a missing domid; before, Xen
// answers a missing domid with ESRCH and EPERM is a refusal, which must
// not make a live domain look gone.
func TestRefusalIsNotDeath(t *testing.T) {
	eachRelease(t, func(t *testing.T, h *fake.Hypervisor, tr *domains.Tracker) {
		h.SetDomctlError(syscall.EPERM)
		defer h.SetDomctlError(nil)
		_, ok, err := tr.Domain(5)
		if tr.Running().Less(xen.Version{Major: 4, Minor: 22}) {
			if !errors.Is(err, syscall.EPERM) {
				t.Errorf("refused query: Domain(5) = %v, %v; want the EPERM error", ok, err)
			}
		} else if ok || err != nil {
			t.Errorf("4.22 EPERM: Domain(5) = %v, %v; want absent", ok, err)
		}
		ch, err := tr.Changes([]uint32{5})
		if slices.ContainsFunc(ch, gone) {
			t.Errorf("refused queries: Changes = %+v, %v; reported dom5 gone", ch, err)
		}
	})
}

// TestMemory: a domain's memory and limit in KiB from getdomaininfo on
// every release; a missing domain (4.17 answers the next one) is an error.
func TestMemory(t *testing.T) {
	eachRelease(t, func(t *testing.T, h *fake.Hypervisor, tr *domains.Tracker) {
		if err := h.SetMemory(5, 16384, 16385); err != nil {
			t.Fatal(err)
		}
		cur, max, err := tr.Memory(5)
		if err != nil || cur != 65536 || max != 65540 {
			t.Errorf("Memory(5) = %d, %d, %v; want 65536, 65540 KiB", cur, max, err)
		}
		for _, id := range []uint32{3, 9, xen.DomIDInvalid} {
			if cur, max, err := tr.Memory(id); err == nil {
				t.Errorf("Memory(%d) = %d, %d; want an error (no such domain)", id, cur, max)
			}
		}
	})
}
