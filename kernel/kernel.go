// Package kernel holds the stub domain's Linux configuration fragment
// (stubdom.config, built by build/kernel.sh) and checks on it and on the
// kernel built from it.
package kernel

import (
	"bufio"
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
