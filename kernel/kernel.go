// Package kernel holds the stub domain's Linux configuration fragment
// (stubdom.config, built by build/kernel.sh) and checks on it and on the
// kernel built from it.
package kernel

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Unset is the value ParseFragment gives options the fragment turns off.
const Unset = "n"

var (
	setLine   = regexp.MustCompile(`^(CONFIG_[A-Za-z0-9_]+)=(.+)$`)
	unsetLine = regexp.MustCompile(`^# (CONFIG_[A-Za-z0-9_]+) is not set$`)
)

// ParseFragment reads a Kconfig fragment: CONFIG_X=value lines, "# CONFIG_X
// is not set" lines (value Unset), comments and blank lines. An option given
// twice or any other line is an error.
func ParseFragment(r io.Reader) (map[string]string, error) {
	opts := map[string]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		var name, value string
		if m := setLine.FindStringSubmatch(line); m != nil {
			name, value = m[1], m[2]
		} else if m := unsetLine.FindStringSubmatch(line); m != nil {
			name, value = m[1], Unset
		} else if line == "" || strings.HasPrefix(line, "#") {
			continue
		} else {
			return nil, fmt.Errorf("line %d: not a Kconfig line: %q", n, line)
		}
		if old, dup := opts[name]; dup {
			return nil, fmt.Errorf("line %d: %s given twice (%s, %s)", n, name, old, value)
		}
		opts[name] = value
	}
	return opts, sc.Err()
}

// XenElfnotePhys32Entry is XEN_ELFNOTE_PHYS32_ENTRY, the note that carries a
// kernel's PVH entry point.
const XenElfnotePhys32Entry = 18

// PVHEntry returns the PVH entry point from the kernel's Xen ELF notes, and
// false when it has none.
func PVHEntry(f *elf.File) (uint32, bool, error) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		data, err := io.ReadAll(p.Open())
		if err != nil {
			return 0, false, err
		}
		for len(data) >= 12 {
			bo := f.ByteOrder
			namesz, descsz, typ := bo.Uint32(data), bo.Uint32(data[4:]), bo.Uint32(data[8:])
			nameEnd := 12 + align4(namesz)
			descEnd := nameEnd + align4(descsz)
			if uint64(descEnd) > uint64(len(data)) {
				break
			}
			name := strings.TrimRight(string(data[12:12+namesz]), "\x00")
			if name == "Xen" && typ == XenElfnotePhys32Entry && descsz >= 4 {
				return binary.LittleEndian.Uint32(data[nameEnd:]), true, nil
			}
			data = data[descEnd:]
		}
	}
	return 0, false, nil
}

func align4(n uint32) uint32 { return (n + 3) &^ 3 }

// DisabledNoteName is the owner name DisablePVH gives the PVH entry note in
// place of "Xen" (same length, so nothing moves). Xen's ELF loader reads
// only notes owned by "Xen", so the kernel then has no PVH entry for it.
const DisabledNoteName = "Off"

// DisablePVH returns a copy of an ELF kernel whose Xen PVH entry notes
// (XEN_ELFNOTE_PHYS32_ENTRY) are renamed from "Xen" to DisabledNoteName,
// and how many it renamed. Every other byte is kept: the PV entry and the
// other Xen notes stay, so Xen's domain builder can only boot it as PV
// (Xen's own init-xenstore-domain from 4.18 tries PVH first and falls back
// to PV when the kernel has no PVH entry). A kernel without the note is an
// error: there is nothing to disable.
func DisablePVH(data []byte) ([]byte, int, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, 0, err
	}
	out := append([]byte(nil), data...)
	bo := f.ByteOrder
	n := 0
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		if p.Off+p.Filesz > uint64(len(data)) || p.Off+p.Filesz < p.Off {
			return nil, 0, fmt.Errorf("note segment at %#x+%#x beyond the file's %d bytes", p.Off, p.Filesz, len(data))
		}
		seg := out[p.Off : p.Off+p.Filesz]
		for pos := uint64(0); pos+12 <= uint64(len(seg)); {
			namesz, descsz, typ := bo.Uint32(seg[pos:]), bo.Uint32(seg[pos+4:]), bo.Uint32(seg[pos+8:])
			nameEnd := pos + 12 + uint64(align4(namesz))
			descEnd := nameEnd + uint64(align4(descsz))
			if descEnd > uint64(len(seg)) {
				break
			}
			name := seg[pos+12 : pos+12+uint64(namesz)]
			if namesz == 4 && string(name) == "Xen\x00" && typ == XenElfnotePhys32Entry {
				copy(name, DisabledNoteName+"\x00")
				n++
			}
			pos = descEnd
		}
	}
	if n == 0 {
		return nil, 0, fmt.Errorf("no Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY) to disable")
	}
	return out, n, nil
}

// XenNotes lists the types of the Xen notes ("Xen" owner) in an ELF kernel's
// note segments.
func XenNotes(f *elf.File) ([]uint32, error) {
	var types []uint32
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		data, err := io.ReadAll(p.Open())
		if err != nil {
			return nil, err
		}
		for len(data) >= 12 {
			bo := f.ByteOrder
			namesz, descsz, typ := bo.Uint32(data), bo.Uint32(data[4:]), bo.Uint32(data[8:])
			nameEnd := 12 + align4(namesz)
			descEnd := nameEnd + align4(descsz)
			if uint64(descEnd) > uint64(len(data)) || uint64(12+namesz) > uint64(len(data)) {
				break
			}
			if strings.TrimRight(string(data[12:12+namesz]), "\x00") == "Xen" {
				types = append(types, typ)
			}
			data = data[descEnd:]
		}
	}
	return types, nil
}
