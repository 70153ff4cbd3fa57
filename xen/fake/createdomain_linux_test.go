package fake

import (
	"errors"
	"slices"
	"syscall"
	"testing"

	"github.com/xsstub/xenstored/xen"
)

var (
	v417 = xen.Version{Major: 4, Minor: 17}
	v420 = xen.Version{Major: 4, Minor: 20}
	v421 = xen.Version{Major: 4, Minor: 21}
	v422 = xen.Version{Major: 4, Minor: 22}
)

// TestCreateDomainRequest: the id createdomain gives for each kind of
// request, per release, with dom0, dom1 and dom2 present.
func TestCreateDomainRequest(t *testing.T) {
	const taken, free = 2, 7
	for _, tt := range []struct {
		name      string
		requested uint32
		want      map[xen.Version]uint32 // 0: refused with wantErr
		wantErr   map[xen.Version]error
	}{
		{"0 (dom0's)", 0,
			map[xen.Version]uint32{v417: 3, v420: 3, v421: 3},
			map[xen.Version]error{v422: syscall.EEXIST}},
		{"DOMID_ANY", xen.DomIDAny,
			map[xen.Version]uint32{v417: 3, v420: 3, v421: 3, v422: 3}, nil},
		{"free id", free,
			map[xen.Version]uint32{v417: free, v420: free, v421: free, v422: free}, nil},
		{"taken id", taken, nil,
			map[xen.Version]error{v417: syscall.EEXIST, v420: syscall.EEXIST, v421: syscall.EEXIST, v422: syscall.EEXIST}},
		{"DOMID_FIRST_RESERVED", xen.DomIDFirstReserved,
			map[xen.Version]uint32{v417: 3, v420: 3, v421: 3},
			map[xen.Version]error{v422: syscall.EEXIST}},
		{"DOMID_INVALID", xen.DomIDInvalid,
			map[xen.Version]uint32{v417: 3, v420: 3, v421: 3},
			map[xen.Version]error{v422: syscall.EEXIST}},
	} {
		for _, rel := range []xen.Version{v417, v420, v421, v422} {
			t.Run(tt.name+"/"+rel.String(), func(t *testing.T) {
				h := New()
				defer h.Close()
				h.SetRelease(rel)
				for _, id := range []uint32{0, 1, taken} {
					if _, err := h.NewDomain(id); err != nil {
						t.Fatal(err)
					}
				}
				d, err := h.CreateDomain(tt.requested)
				if want, ok := tt.wantErr[rel]; ok {
					if !errors.Is(err, want) {
						t.Fatalf("CreateDomain(%#x) = %v, want %v", tt.requested, err, want)
					}
					return
				}
				if err != nil {
					t.Fatalf("CreateDomain(%#x): %v", tt.requested, err)
				}
				if d.ID() != tt.want[rel] {
					t.Fatalf("CreateDomain(%#x) gave dom%d, want dom%d", tt.requested, d.ID(), tt.want[rel])
				}
				if _, ok := h.Lookup(d.ID()); !ok {
					t.Fatalf("dom%d created but not listed", d.ID())
				}
			})
		}
	}
}

// TestCreateDomainRoundRobin: searched-for ids go on after the last one
// given, not back to the lowest free one, and wrap to 1; an exact request
// does not move the search.
func TestCreateDomainRoundRobin(t *testing.T) {
	for _, rel := range []xen.Version{v417, v420, v421, v422} {
		t.Run(rel.String(), func(t *testing.T) {
			h := New()
			defer h.Close()
			h.SetRelease(rel)
			h.NewDomain(0)
			var got []uint32
			create := func(req uint32) {
				d, err := h.CreateDomain(req)
				if err != nil {
					t.Fatalf("CreateDomain(%#x) after %v: %v", req, got, err)
				}
				got = append(got, d.ID())
			}
			create(xen.DomIDAny) // 1
			create(xen.DomIDAny) // 2
			create(9)            // exact
			if err := h.Destroy(1); err != nil {
				t.Fatal(err)
			}
			create(xen.DomIDAny) // 3, not the freed 1
			h.mu.Lock()
			h.lastDomid = xen.DomIDFirstReserved - 2
			h.mu.Unlock()
			create(xen.DomIDAny) // 0x7fef, the last ordinary id
			create(xen.DomIDAny) // wraps: 1
			create(xen.DomIDAny) // 4
			want := []uint32{1, 2, 9, 3, 0x7fef, 1, 4}
			if !slices.Equal(got, want) {
				t.Fatalf("ids %v, want %v", got, want)
			}
		})
	}
}

// TestCreateDomainFull: with every ordinary id in use but the one given
// last, 4.21+ give it again (the search ends with it), 4.17-4.20 never
// do (the rover is where the search stops). Nothing free: ENOMEM before
// 4.21, EEXIST from 4.21.
func TestCreateDomainFull(t *testing.T) {
	for _, tt := range []struct {
		rel      xen.Version
		lastFree uint32 // 0: refused
		fullErr  error
	}{
		{v417, 0, syscall.ENOMEM}, {v420, 0, syscall.ENOMEM},
		{v421, 500, syscall.EEXIST}, {v422, 500, syscall.EEXIST},
	} {
		t.Run(tt.rel.String(), func(t *testing.T) {
			h := New()
			h.SetRelease(tt.rel)
			h.mu.Lock()
			// Placeholders: the allocator only looks at which ids exist.
			for id := range xen.DomIDFirstReserved {
				if id != 500 {
					h.domains[id] = &Domain{id: id}
				}
			}
			h.lastDomid = 500
			id, err := h.allocDomidLocked(xen.DomIDAny)
			h.domains[500] = &Domain{id: 500}
			_, fullErr := h.allocDomidLocked(xen.DomIDAny)
			clear(h.domains)
			h.mu.Unlock()
			h.Close()
			if tt.lastFree == 0 && !errors.Is(err, syscall.ENOMEM) {
				t.Errorf("only the rover's id free: %d, %v; want ENOMEM", id, err)
			}
			if tt.lastFree != 0 && (err != nil || id != tt.lastFree) {
				t.Errorf("only the last id free: %d, %v; want %d", id, err, tt.lastFree)
			}
			if !errors.Is(fullErr, tt.fullErr) {
				t.Errorf("all ids used: %v, want %v", fullErr, tt.fullErr)
			}
		})
	}
}

// drainStates reads get_domain_state's changed-domain iteration to its end.
func drainStates(t *testing.T, h *Hypervisor) []xen.DomState {
	t.Helper()
	var out []xen.DomState
	for {
		st, err := h.GetDomainState(xen.DomIDInvalid)
		if errors.Is(err, syscall.ENOENT) {
			return out
		}
		if err != nil {
			t.Fatalf("get_domain_state(DOMID_INVALID): %v", err)
		}
		out = append(out, st)
	}
}

// TestDomExcRebind: unbinding VIRQ_DOM_EXC drops what changed; binding it
// again marks the domains existing then, so a domain destroyed in between
// is not reported (Xen 4.21+ frees and reallocates its bitmap).
func TestDomExcRebind(t *testing.T) {
	for _, rel := range []xen.Version{v421, v422} {
		t.Run(rel.String(), func(t *testing.T) {
			h, ec := setup(t)
			h.SetRelease(rel)
			for _, id := range []uint32{0, 1, 5} {
				h.NewDomain(id)
			}
			port, err := ec.BindVIRQ(xen.VIRQDomExc)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(drainStates(t, h)); n != 3 {
				t.Fatalf("first bind: %d domains reported, want 3", n)
			}
			if err := ec.Unbind(port); err != nil {
				t.Fatal(err)
			}
			if _, err := h.GetDomainState(xen.DomIDInvalid); !errors.Is(err, syscall.ENOENT) {
				t.Fatalf("iteration with VIRQ_DOM_EXC unbound: %v, want ENOENT", err)
			}
			h.Destroy(5)
			h.SetShutdown(1, xen.ShutdownPoweroff)
			if _, err := ec.BindVIRQ(xen.VIRQDomExc); err != nil {
				t.Fatal(err)
			}
			var got []uint32
			for _, st := range drainStates(t, h) {
				if !st.Exists {
					t.Errorf("dom%d reported gone after the rebind", st.ID)
				}
				got = append(got, st.ID)
			}
			if !slices.Equal(got, []uint32{0, 1}) {
				t.Errorf("after rebind: %v reported, want [0 1]", got)
			}
		})
	}
}

// TestNotDomExcHandler: a daemon whose domain is not VIRQ_DOM_EXC's
// handler cannot bind it from 4.21 (EBUSY); before, the binding succeeds
// and no death ever fires it.
func TestNotDomExcHandler(t *testing.T) {
	for _, rel := range []xen.Version{v417, v420, v421, v422} {
		t.Run(rel.String(), func(t *testing.T) {
			h, ec := setup(t)
			h.SetRelease(rel)
			h.NewDomain(0)
			h.NewDomain(3)
			h.SetDomExcHandler(false)
			port, err := ec.BindVIRQ(xen.VIRQDomExc)
			if !rel.Less(v421) {
				if !errors.Is(err, syscall.EBUSY) {
					t.Fatalf("bind: %d, %v; want EBUSY", port, err)
				}
				if _, err := h.GetDomainState(xen.DomIDInvalid); !errors.Is(err, syscall.EACCES) {
					t.Fatalf("changed-domain iteration: %v, want EACCES", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("bind: %v", err)
			}
			h.Destroy(3)
			if p := pendingNow(t, ec); len(p) != 0 {
				t.Fatalf("VIRQ_DOM_EXC fired on a domain that is not its handler: %v", p)
			}
		})
	}
}
