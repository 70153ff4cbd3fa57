//go:build linux

package xc

import (
	"slices"
	"testing"

	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/fake"
)

// TestRequestedDomidEveryRelease: the domid CreateDomain hands
// xc_domain_create (RequestAnyDomid) must make every release the launcher
// knows choose a fresh id, on a host with dom0 and a few domains, twice
// in a row (a relaunch after a failed start). The fake hypervisor plays
// each release's createdomain; 4.22 refuses 0, the id asked before.
func TestRequestedDomidEveryRelease(t *testing.T) {
	if RequestAnyDomid > 0xffff {
		t.Fatalf("RequestAnyDomid %#x does not fit the domctl's 16-bit domain", RequestAnyDomid)
	}
	var releases []Version
	for v := range Layouts {
		releases = append(releases, v)
	}
	slices.SortFunc(releases, func(a, b Version) int { return a.Minor - b.Minor + 100*(a.Major-b.Major) })
	for _, v := range releases {
		t.Run(v.String(), func(t *testing.T) {
			h := fake.New()
			defer h.Close()
			h.SetRelease(xen.Version{Major: uint32(v.Major), Minor: uint32(v.Minor)})
			existing := []uint32{0, 1, 3}
			for _, id := range existing {
				if _, err := h.NewDomain(id); err != nil {
					t.Fatal(err)
				}
			}
			var got []uint32
			for range 2 {
				d, err := h.CreateDomain(RequestAnyDomid)
				if err != nil {
					t.Fatalf("Xen %v refuses createdomain for domid %#x: %v", v, RequestAnyDomid, err)
				}
				id := d.ID()
				if id == 0 || id >= xen.DomIDFirstReserved || slices.Contains(existing, id) || slices.Contains(got, id) {
					t.Fatalf("Xen %v gave dom%d for domid %#x (existing %v, created %v)", v, id, RequestAnyDomid, existing, got)
				}
				got = append(got, id)
			}
		})
	}
}
