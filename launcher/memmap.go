package launcher

import (
	"fmt"
	"sort"
)

// E820 types.
const (
	E820RAM      = 1
	E820Reserved = 2
	E820ACPI     = 3
)

// E820Entry is one range of the guest's memory map.
type E820Entry struct {
	Addr, Size uint64
	Type       uint32
}

// Xen's HVM special pages (xenguest.h X86_HVM_NR_SPECIAL_PAGES,
// X86_HVM_END_SPECIAL_REGION): the builder puts the console, xenstore and
// other magic pages there for a PVH domain.
const (
	HVMSpecialPages     = 8
	HVMSpecialRegionEnd = 0xff000 // a page frame number
	pageSize            = 4096
)

// PVHLayout is the physical layout of a PVH xenstore domain.
type PVHLayout struct {
	MemoryMiB, MaxMiB int
	// ACPIBase and ACPIPages place the ACPI tables (none when ACPIPages is 0).
	ACPIBase  uint64
	ACPIPages int
}

// MemoryMap returns the E820 map Xen hands the domain
// (XENMEM_memory_map): RAM up to the smaller of the domain's maximum size
// and the local APIC, the ACPI tables, the special pages, and RAM above
// 4 GiB for whatever the maximum leaves over; sorted by address.
func (l PVHLayout) MemoryMap() ([]E820Entry, error) {
	maxB := uint64(max(l.MaxMiB, l.MemoryMiB)) << 20
	low := min(maxB, LAPICBase)
	special := uint64(HVMSpecialRegionEnd-HVMSpecialPages) * pageSize
	m := []E820Entry{{0, low, E820RAM}}
	if l.ACPIPages > 0 {
		if l.ACPIBase < low || l.ACPIBase+uint64(l.ACPIPages)*pageSize > special {
			return nil, fmt.Errorf("memory map: ACPI tables at %#x overlap RAM (up to %#x) or the special pages", l.ACPIBase, low)
		}
		m = append(m, E820Entry{l.ACPIBase, uint64(l.ACPIPages) * pageSize, E820ACPI})
	}
	m = append(m, E820Entry{special, HVMSpecialPages * pageSize, E820Reserved})
	if maxB > LAPICBase {
		m = append(m, E820Entry{1 << 32, maxB - LAPICBase, E820RAM})
	}
	sort.Slice(m, func(i, j int) bool { return m[i].Addr < m[j].Addr })
	return m, nil
}

// MaxMemKiB is the domain's page limit (XEN_DOMCTL_max_mem) in KiB: its
// maximum size plus the pages the builder adds outside RAM (special pages
// for PVH, and the ACPI tables).
func MaxMemKiB(memoryMiB, maxMiB int, pvh bool, acpiPages int) uint64 {
	kib := uint64(max(maxMiB, memoryMiB)) * 1024
	if pvh {
		kib += uint64(HVMSpecialPages+acpiPages) * 4
	}
	return kib
}
