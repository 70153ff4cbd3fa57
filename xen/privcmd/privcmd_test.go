package privcmd

import (
	"errors"
	"reflect"
	"syscall"
	"testing"

	"github.com/xsstub/xenstored/xen"
)

func TestDecodeFlags(t *testing.T) {
	tests := []struct {
		name  string
		flags uint32
		want  xen.DomInfo
	}{
		{"running", 1 << 5, xen.DomInfo{ID: 3}},
		{"dying", 1, xen.DomInfo{ID: 3, Dying: true}},
		{"hvm paused", 2 | 8, xen.DomInfo{ID: 3, HVM: true, Paused: true}},
		{"crashed", 4 | 3<<16, xen.DomInfo{ID: 3, Shutdown: true, ShutdownReason: xen.ShutdownCrash}},
		{"poweroff", 4, xen.DomInfo{ID: 3, Shutdown: true, ShutdownReason: xen.ShutdownPoweroff}},
		{"xenstore domain", 0x80, xen.DomInfo{ID: 3, XenstoreDomain: true}},
		{"reason bits above mask ignored", 4 | 0xff05<<16, xen.DomInfo{ID: 3, Shutdown: true, ShutdownReason: 5}},
	}
	for _, tt := range tests {
		if got := decodeFlags(3, tt.flags); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
	g := getDomainInfo{Domain: 9, Flags: 1}
	if got := g.decode(); got.ID != 9 || !got.Dying {
		t.Errorf("decode = %+v", got)
	}
}

// hv simulates Xen 4.17's getdomaininfo over a set of domain ids.
func hv(ids []uint32, failAt uint32, err error) func(uint32) (xen.DomInfo, error) {
	return func(n uint32) (xen.DomInfo, error) {
		if err != nil && n == failAt {
			return xen.DomInfo{}, err
		}
		for _, id := range ids {
			if id >= n {
				return xen.DomInfo{ID: id}, nil
			}
		}
		return xen.DomInfo{}, syscall.ESRCH
	}
}

func TestListDomains(t *testing.T) {
	tests := []struct {
		name    string
		get     func(uint32) (xen.DomInfo, error)
		want    []uint32
		wantErr error
	}{
		{"none", hv(nil, 0, nil), nil, nil},
		{"dom0 only", hv([]uint32{0}, 0, nil), []uint32{0}, nil},
		{"gaps", hv([]uint32{0, 1, 7, 300, 0x7fef}, 0, nil), []uint32{0, 1, 7, 300, 0x7fef}, nil},
		{"no dom0", hv([]uint32{5}, 0, nil), []uint32{5}, nil},
		{"version refused", hv([]uint32{0}, 0, syscall.EACCES), nil, syscall.EACCES},
		{"error mid-way", hv([]uint32{0, 4, 9}, 5, syscall.EFAULT), nil, syscall.EFAULT},
		{"answer below request", func(n uint32) (xen.DomInfo, error) { return xen.DomInfo{ID: 0}, nil }, nil, errAny},
		{"answer reserved id", func(n uint32) (xen.DomInfo, error) { return xen.DomInfo{ID: 0x7ff0}, nil }, nil, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := listDomains(tt.get)
			if tt.wantErr != nil {
				if err == nil || (tt.wantErr != errAny && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []uint32
			for _, d := range got {
				ids = append(ids, d.ID)
			}
			if !reflect.DeepEqual(ids, tt.want) {
				t.Errorf("ids = %v, want %v", ids, tt.want)
			}
		})
	}
}

var errAny = errors.New("any error")
