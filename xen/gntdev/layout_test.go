package gntdev

import (
	"fmt"
	"testing"
	"unsafe"

	"github.com/xsstub/xenstored/xen/internal/ctest"
)

// Hand-derived from xen/gntdev.h: _IOC(_IOC_NONE, 'G'=0x47, nr, size).
var layout = []struct {
	name string
	got  uintptr
	want uintptr
	c    string
}{
	{"MAP_GRANT_REF", ioctlMapGrantRef, 0x00184700, "IOCTL_GNTDEV_MAP_GRANT_REF"},
	{"UNMAP_GRANT_REF", ioctlUnmapGrantRef, 0x00104701, "IOCTL_GNTDEV_UNMAP_GRANT_REF"},
	{"sizeof grant_ref", unsafe.Sizeof(grantRef{}), 8, "sizeof(struct ioctl_gntdev_grant_ref)"},
	{"grant_ref.domid", unsafe.Offsetof(grantRef{}.DomID), 0, "offsetof(struct ioctl_gntdev_grant_ref, domid)"},
	{"grant_ref.ref", unsafe.Offsetof(grantRef{}.Ref), 4, "offsetof(struct ioctl_gntdev_grant_ref, ref)"},
	{"sizeof map_grant_ref", unsafe.Sizeof(mapGrantRef{}), sizeMapGrantRef, "sizeof(struct ioctl_gntdev_map_grant_ref)"},
	{"sizeof map_grant_ref (hand)", sizeMapGrantRef, 24, "sizeof(struct ioctl_gntdev_map_grant_ref)"},
	{"map.count", unsafe.Offsetof(mapGrantRef{}.Count), 0, "offsetof(struct ioctl_gntdev_map_grant_ref, count)"},
	{"map.pad", unsafe.Offsetof(mapGrantRef{}.Pad), 4, "offsetof(struct ioctl_gntdev_map_grant_ref, pad)"},
	{"map.index", unsafe.Offsetof(mapGrantRef{}.Index), 8, "offsetof(struct ioctl_gntdev_map_grant_ref, index)"},
	{"map.refs", unsafe.Offsetof(mapGrantRef{}.Refs), 16, "offsetof(struct ioctl_gntdev_map_grant_ref, refs)"},
	{"sizeof unmap_grant_ref", unsafe.Sizeof(unmapGrantRef{}), sizeUnmapGrantRef, "sizeof(struct ioctl_gntdev_unmap_grant_ref)"},
	{"sizeof unmap_grant_ref (hand)", sizeUnmapGrantRef, 16, "sizeof(struct ioctl_gntdev_unmap_grant_ref)"},
	{"unmap.index", unsafe.Offsetof(unmapGrantRef{}.Index), 0, "offsetof(struct ioctl_gntdev_unmap_grant_ref, index)"},
	{"unmap.count", unsafe.Offsetof(unmapGrantRef{}.Count), 8, "offsetof(struct ioctl_gntdev_unmap_grant_ref, count)"},
	{"unmap.pad", unsafe.Offsetof(unmapGrantRef{}.Pad), 12, "offsetof(struct ioctl_gntdev_unmap_grant_ref, pad)"},
}

func TestLayout(t *testing.T) {
	for _, tt := range layout {
		if tt.got != tt.want {
			t.Errorf("%s = %#x, want %#x", tt.name, tt.got, tt.want)
		}
	}
}

func TestAgainstC(t *testing.T) {
	exprs := map[string]string{}
	for i, tt := range layout {
		exprs[fmt.Sprintf("v%d", i)] = tt.c
	}
	v := ctest.Values(t, []string{"xen/gntdev.h"},
		"#include <stdint.h>\n#include <linux/ioctl.h>\ntypedef uint16_t domid_t;\ntypedef uint32_t grant_ref_t;\n#include <xen/gntdev.h>\n", exprs)
	for i, tt := range layout {
		if c := v[fmt.Sprintf("v%d", i)]; uint64(tt.got) != c {
			t.Errorf("%s (%s): Go %#x, C %#x", tt.name, tt.c, tt.got, c)
		}
	}
}
