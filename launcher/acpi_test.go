package launcher

import (
	"encoding/binary"
	"testing"
)

func sum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return s
}

// acpiTable finds the table at guest-physical address addr in t and checks
// its header; it returns the table's bytes.
func acpiTable(t *testing.T, tabs *ACPITables, addr uint64, sig string) []byte {
	t.Helper()
	if addr < tabs.Base || addr+headerLen > tabs.Base+uint64(len(tabs.Page)) {
		t.Fatalf("%s at %#x: outside the page at %#x", sig, addr, tabs.Base)
	}
	off := int(addr - tabs.Base)
	if off%16 != 0 {
		t.Errorf("%s at offset %d: not 16-byte aligned", sig, off)
	}
	b := tabs.Page[off:]
	if string(b[:4]) != sig {
		t.Fatalf("table at %#x is %q, want %q", addr, b[:4], sig)
	}
	n := int(binary.LittleEndian.Uint32(b[4:]))
	if n < headerLen || off+n > len(tabs.Page) {
		t.Fatalf("%s: length %d", sig, n)
	}
	b = b[:n]
	if s := sum(b); s != 0 {
		t.Errorf("%s: checksum sums to %#x", sig, s)
	}
	if string(b[10:16]) != acpiOEMID {
		t.Errorf("%s: OEM id %q", sig, b[10:16])
	}
	return b
}

func TestACPITables(t *testing.T) {
	for _, n := range []int{1, 2, 4} {
		tabs, err := BuildACPI(ACPIConfig{VCPUs: n})
		if err != nil {
			t.Fatal(err)
		}
		le := binary.LittleEndian
		if tabs.Base != ACPIBase || len(tabs.Page) != 4096 || tabs.RSDPAddr() != ACPIBase {
			t.Fatalf("base %#x len %d rsdp %#x", tabs.Base, len(tabs.Page), tabs.RSDPAddr())
		}
		// RSDP: ACPI 2.0, both checksums.
		r := tabs.Page[:rsdpLen]
		if string(r[:8]) != "RSD PTR " || r[15] != 2 || le.Uint32(r[20:]) != rsdpLen {
			t.Fatalf("RSDP header % x", r[:24])
		}
		if sum(r[:20]) != 0 || sum(r) != 0 {
			t.Errorf("RSDP checksums: %#x %#x", sum(r[:20]), sum(r))
		}
		// XSDT and RSDT list FADT and MADT.
		x := acpiTable(t, tabs, le.Uint64(r[24:]), "XSDT")
		rs := acpiTable(t, tabs, uint64(le.Uint32(r[16:])), "RSDT")
		if len(x) != headerLen+16 || len(rs) != headerLen+8 {
			t.Fatalf("XSDT %d bytes, RSDT %d", len(x), len(rs))
		}
		for i, sig := range []string{"FACP", "APIC"} {
			if le.Uint64(x[headerLen+8*i:]) != uint64(le.Uint32(rs[headerLen+4*i:])) {
				t.Errorf("XSDT and RSDT differ at entry %d", i)
			}
			acpiTable(t, tabs, le.Uint64(x[headerLen+8*i:]), sig)
		}
		// FADT: revision 5, hardware-reduced, DSDT in both fields, no
		// PM blocks, no FACS, no SCI.
		f := acpiTable(t, tabs, le.Uint64(x[headerLen:]), "FACP")
		if len(f) != fadtLen || f[8] != 5 {
			t.Errorf("FADT length %d revision %d", len(f), f[8])
		}
		flags := le.Uint32(f[112:])
		if flags&FADTFlagHWReduced == 0 || flags&FADTFlagPwrButton == 0 {
			t.Errorf("FADT flags %#x", flags)
		}
		if ba := le.Uint16(f[109:]); ba&fadtBootArchNoCMOS == 0 || ba&fadtBootArchNoVGA == 0 {
			t.Errorf("IAPC_BOOT_ARCH %#x", ba)
		}
		if le.Uint32(f[36:]) != 0 || le.Uint64(f[132:]) != 0 || le.Uint16(f[46:]) != 0 || le.Uint32(f[56:]) != 0 || le.Uint32(f[76:]) != 0 {
			t.Error("FADT has a FACS, SCI, PM1a event block or PM timer")
		}
		dsdt := le.Uint64(f[140:])
		if uint64(le.Uint32(f[40:])) != dsdt {
			t.Errorf("FADT DSDT %#x vs X_DSDT %#x", le.Uint32(f[40:]), dsdt)
		}
		if d := acpiTable(t, tabs, dsdt, "DSDT"); len(d) != headerLen {
			t.Errorf("DSDT length %d", len(d))
		}
		// MADT: local APIC base, no PC-AT flag, one enabled local APIC per
		// vCPU with APIC id 2*i.
		m := acpiTable(t, tabs, le.Uint64(x[headerLen+8:]), "APIC")
		if le.Uint32(m[36:]) != LAPICBase || le.Uint32(m[40:]) != 0 {
			t.Errorf("MADT lapic %#x flags %#x", le.Uint32(m[36:]), le.Uint32(m[40:]))
		}
		ents := m[44:]
		if len(ents) != 8*n {
			t.Fatalf("MADT has %d bytes of entries for %d vCPUs", len(ents), n)
		}
		for i := 0; i < n; i++ {
			e := ents[8*i:]
			if e[0] != madtTypeLocalAPIC || e[1] != 8 || e[2] != byte(i) || e[3] != byte(2*i) || le.Uint32(e[4:]) != 1 {
				t.Errorf("MADT entry %d: % x", i, e[:8])
			}
		}
	}
}

func TestACPIBadConfig(t *testing.T) {
	for _, c := range []ACPIConfig{{VCPUs: 0}, {VCPUs: 1, Base: 0x1001}, {VCPUs: 1, Base: 1 << 32}} {
		if _, err := BuildACPI(c); err == nil {
			t.Errorf("BuildACPI(%+v) accepted", c)
		}
	}
	tabs, err := BuildACPI(ACPIConfig{VCPUs: 1, Base: 0x80000000})
	if err != nil || tabs.RSDPAddr() != 0x80000000 {
		t.Fatal(tabs, err)
	}
	// Pointers follow the base.
	if x := binary.LittleEndian.Uint64(tabs.Page[24:]); x>>12 != 0x80000 {
		t.Errorf("XSDT at %#x", x)
	}
}

func TestMemoryMap(t *testing.T) {
	m, err := PVHLayout{MemoryMiB: 32, ACPIBase: ACPIBase, ACPIPages: 1}.MemoryMap()
	if err != nil {
		t.Fatal(err)
	}
	want := []E820Entry{
		{0, 32 << 20, E820RAM},
		{ACPIBase, 4096, E820ACPI},
		{0xfeff8000, 8 * 4096, E820Reserved},
	}
	if len(m) != len(want) {
		t.Fatalf("%+v", m)
	}
	for i := range want {
		if m[i] != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, m[i], want[i])
		}
	}
	// maxmem sizes RAM; above the local APIC it continues at 4 GiB.
	m, err = PVHLayout{MemoryMiB: 32, MaxMiB: 5000, ACPIBase: ACPIBase, ACPIPages: 1}.MemoryMap()
	if err == nil {
		t.Fatalf("ACPI tables inside RAM accepted: %+v", m)
	}
	m, err = PVHLayout{MemoryMiB: 32, MaxMiB: 5000}.MemoryMap()
	if err != nil || len(m) != 3 || m[0].Size != LAPICBase || m[2].Addr != 1<<32 || m[2].Size != 5000<<20-LAPICBase {
		t.Fatalf("%+v %v", m, err)
	}
	if k := MaxMemKiB(32, 0, true, 1); k != 32*1024+9*4 {
		t.Errorf("MaxMemKiB PVH = %d", k)
	}
	if k := MaxMemKiB(32, 64, false, 0); k != 64*1024 {
		t.Errorf("MaxMemKiB PV = %d", k)
	}
}
