package launcher

import (
	"encoding/binary"
	"fmt"
)

// Minimal ACPI tables for a PVH xenstore domain. Xen gives a PVH guest no
// firmware, and Linux finds its CPUs' local APICs only in ACPI's MADT
// (without them it runs no timer: see facts.md). libxl builds full tables
// with Xen's libacpi for PVH guests; the stub needs far less, so these are
// written from the ACPI specification (6.x, sections 5.2.5-5.2.12):
//
//	RSDP (rev 2) -> XSDT -> FADT (rev 5, HW_REDUCED_ACPI) -> DSDT (empty)
//	             -> RSDT (32-bit copy of the XSDT)      MADT (one local APIC per vCPU)
//
// The FADT declares hardware-reduced ACPI: there is no PM timer, no PM1
// event or control block, no SCI, no FACS, no legacy PIC, PIT or CMOS RTC
// in a PVH domain, and Linux then skips all of them. Everything fits in one
// page, which the domain builder loads outside the domain's RAM (see
// MemoryMap) and whose address reaches the kernel as hvm_start_info's
// rsdp_paddr.

// ACPI constants.
const (
	// ACPIBase is where the tables page goes in guest-physical space:
	// libxl's ACPI_INFO_PHYSICAL_ADDRESS, below the local APIC and far
	// above a xenstore domain's RAM.
	ACPIBase = 0xfc000000
	// LAPICBase is the local APIC's MMIO address.
	LAPICBase = 0xfee00000

	acpiOEMID       = "XSSTUB"
	acpiOEMTableID  = "XENSTORE"
	acpiOEMRevision = 1
	acpiCreatorID   = "XSGO"
	acpiCreatorRev  = 1

	headerLen = 36
	rsdpLen   = 36
	fadtLen   = 268 // ACPI 5.0 FADT, revision 5
	fadtRev   = 5

	// FADT flags (ACPI 6.5 table 5.10).
	FADTFlagWBINVD     = 1 << 0
	FADTFlagPwrButton  = 1 << 4 // no fixed-feature power button
	FADTFlagSlpButton  = 1 << 5 // no fixed-feature sleep button
	FADTFlagHWReduced  = 1 << 20
	fadtBootArchNoVGA  = 1 << 2
	fadtBootArchNoMSI  = 1 << 3
	fadtBootArchNoCMOS = 1 << 5

	madtTypeLocalAPIC = 0
	madtLAPICEnabled  = 1
)

// ACPIConfig describes the domain the tables are for.
type ACPIConfig struct {
	// VCPUs is the number of vCPUs; vCPU i has local APIC id 2*i, as Xen
	// gives HVM vCPUs (libxl's acpi_lapic_id).
	VCPUs int
	// Base is the guest-physical address of the tables page (ACPIBase
	// when zero).
	Base uint64
}

// ACPITables is the built page and where its tables are.
type ACPITables struct {
	Base uint64 // guest-physical address of Page
	Page []byte // RSDP at offset 0; length a multiple of 4096
	// Offsets of each table within Page, by signature ("RSD PTR " for the
	// RSDP).
	Offsets map[string]int
}

// RSDPAddr is the guest-physical address of the RSDP.
func (t *ACPITables) RSDPAddr() uint64 { return t.Base + uint64(t.Offsets["RSD PTR "]) }

// BuildACPI builds the tables for c.
func BuildACPI(c ACPIConfig) (*ACPITables, error) {
	if c.VCPUs < 1 || c.VCPUs > 128 {
		return nil, fmt.Errorf("acpi: %d vCPUs: want 1..128", c.VCPUs)
	}
	base := c.Base
	if base == 0 {
		base = ACPIBase
	}
	if base%4096 != 0 || base+4096 > 1<<32 {
		return nil, fmt.Errorf("acpi: base %#x: want a page-aligned address below 4 GiB", base)
	}
	t := &ACPITables{Base: base, Offsets: map[string]int{}}
	var page []byte
	place := func(sig string, b []byte) uint64 {
		for len(page)%16 != 0 {
			page = append(page, 0)
		}
		t.Offsets[sig] = len(page)
		page = append(page, b...)
		return base + uint64(t.Offsets[sig])
	}
	// Reserve the RSDP's place first so that it sits at offset 0 (it must
	// be 16-byte aligned), then fill it in once the XSDT's address is known.
	place("RSD PTR ", make([]byte, rsdpLen))

	dsdt := place("DSDT", table("DSDT", 2, nil))

	fadt := make([]byte, fadtLen-headerLen)
	le := binary.LittleEndian
	// Offsets below are from the table start minus the header.
	le.PutUint32(fadt[40-headerLen:], uint32(dsdt))                                            // DSDT
	le.PutUint16(fadt[109-headerLen:], fadtBootArchNoVGA|fadtBootArchNoMSI|fadtBootArchNoCMOS) // IAPC_BOOT_ARCH
	le.PutUint32(fadt[112-headerLen:], FADTFlagWBINVD|FADTFlagPwrButton|FADTFlagSlpButton|FADTFlagHWReduced)
	fadt[131-headerLen] = 1                  // FADT minor version (5.1)
	le.PutUint64(fadt[140-headerLen:], dsdt) // X_DSDT
	fadtAddr := place("FACP", table("FACP", fadtRev, fadt))

	madt := make([]byte, 8, 8+8*c.VCPUs)
	le.PutUint32(madt[0:], LAPICBase)
	le.PutUint32(madt[4:], 0) // no dual 8259: a PVH domain has no PIC
	for i := 0; i < c.VCPUs; i++ {
		e := make([]byte, 8)
		e[0] = madtTypeLocalAPIC
		e[1] = 8
		e[2] = byte(i)     // ACPI processor UID
		e[3] = byte(2 * i) // APIC id
		le.PutUint32(e[4:], madtLAPICEnabled)
		madt = append(madt, e...)
	}
	madtAddr := place("APIC", table("APIC", 4, madt))

	entries := []uint64{fadtAddr, madtAddr}
	x := make([]byte, 8*len(entries))
	r := make([]byte, 4*len(entries))
	for i, a := range entries {
		le.PutUint64(x[8*i:], a)
		le.PutUint32(r[4*i:], uint32(a))
	}
	xsdt := place("XSDT", table("XSDT", 1, x))
	rsdt := place("RSDT", table("RSDT", 1, r))

	rsdp := page[:rsdpLen]
	copy(rsdp[0:8], "RSD PTR ")
	copy(rsdp[9:15], acpiOEMID)
	rsdp[15] = 2 // ACPI 2.0+ RSDP
	le.PutUint32(rsdp[16:], uint32(rsdt))
	le.PutUint32(rsdp[20:], rsdpLen)
	le.PutUint64(rsdp[24:], xsdt)
	rsdp[8] = checksum(rsdp[:20])
	rsdp[32] = checksum(rsdp)

	if len(page) > 4096 {
		return nil, fmt.Errorf("acpi: tables need %d bytes, more than a page", len(page))
	}
	t.Page = append(page, make([]byte, 4096-len(page))...)
	return t, nil
}

// table returns a system description table: header plus body, checksummed.
func table(sig string, rev byte, body []byte) []byte {
	b := make([]byte, headerLen+len(body))
	copy(b[0:4], sig)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)))
	b[8] = rev
	copy(b[10:16], acpiOEMID)
	copy(b[16:24], acpiOEMTableID)
	binary.LittleEndian.PutUint32(b[24:], acpiOEMRevision)
	copy(b[28:32], acpiCreatorID)
	binary.LittleEndian.PutUint32(b[32:], acpiCreatorRev)
	copy(b[headerLen:], body)
	b[9] = checksum(b)
	return b
}

// checksum returns the byte that makes b (with that byte zero) sum to 0.
func checksum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return -s
}
