package kernel

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fragment(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("stubdom.config")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opts, err := ParseFragment(f)
	if err != nil {
		t.Fatalf("stubdom.config: %v", err)
	}
	return opts
}

// TestFragment checks the options the stub domain cannot do without, and
// those it must not have.
func TestFragment(t *testing.T) {
	opts := fragment(t)
	want := map[string]string{
		"CONFIG_64BIT": "y",
		// Xen entry points and devices.
		"CONFIG_XEN": "y", "CONFIG_XEN_PV": "y", "CONFIG_XEN_PVH": "y", "CONFIG_ACPI": "y",
		"CONFIG_XEN_DEV_EVTCHN": "y", "CONFIG_XEN_GNTDEV": "y", "CONFIG_XEN_PRIVCMD": "y",
		"CONFIG_HVC_XEN": "y",
		// Boot and userspace.
		"CONFIG_BLK_DEV_INITRD": "y", "CONFIG_RD_GZIP": "y", "CONFIG_DEVTMPFS": "y",
		"CONFIG_PROC_FS": "y", "CONFIG_SYSFS": "y", "CONFIG_BINFMT_ELF": "y", "CONFIG_PRINTK": "y",
		// The Go runtime.
		"CONFIG_FUTEX": "y", "CONFIG_EPOLL": "y", "CONFIG_EVENTFD": "y", "CONFIG_SIGNALFD": "y",
		"CONFIG_TIMERFD": "y", "CONFIG_HIGH_RES_TIMERS": "y", "CONFIG_POSIX_TIMERS": "y",
		// Everything built in.
		"CONFIG_MODULES": Unset,
		// No network, no disks.
		"CONFIG_NET": Unset, "CONFIG_BLOCK": Unset,
	}
	for name, v := range want {
		if got, ok := opts[name]; !ok || got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
	for name, v := range opts {
		if v == "m" {
			t.Errorf("%s=m: modules are off, build it in", name)
		}
	}
}

func TestParseFragment(t *testing.T) {
	good := "# comment\n\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\nCONFIG_D=8\n"
	opts, err := ParseFragment(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"CONFIG_A": "y", "CONFIG_B": Unset, "CONFIG_C": `"x y"`, "CONFIG_D": "8"}
	if len(opts) != len(want) {
		t.Errorf("got %v, want %v", opts, want)
	}
	for k, v := range want {
		if opts[k] != v {
			t.Errorf("%s = %q, want %q", k, opts[k], v)
		}
	}
	for _, bad := range []string{
		"CONFIG_A=y\nCONFIG_A=n\n",
		"CONFIG_A=y\n# CONFIG_A is not set\n",
		"XEN=y\n",
		"CONFIG_A y\n",
		" CONFIG_A=y\n",
	} {
		if _, err := ParseFragment(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseFragment(%q): no error", bad)
		}
	}
}

// TestBuiltKernel checks images/xenstore-stubdom.kernel when make kernel
// has built it: an x86-64 ELF with a PVH entry note.
func TestBuiltKernel(t *testing.T) {
	path := filepath.Join("..", "images", "xenstore-stubdom.kernel")
	f, err := elf.Open(path)
	if os.IsNotExist(err) {
		t.Skipf("%s not built (make kernel)", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		t.Errorf("%s: %v %v, want a 64-bit x86-64 ELF", path, f.Class, f.Machine)
	}
	entry, ok, err := PVHEntry(f)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("%s: no Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)", path)
	}
	// The PVH entry is a physical address inside the loaded image.
	inside := false
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && uint64(entry) >= p.Paddr && uint64(entry) < p.Paddr+p.Memsz {
			inside = true
		}
	}
	if !inside {
		t.Errorf("PVH entry %#x is outside every loaded segment", entry)
	}
	t.Logf("PVH entry %#x", entry)
}

// noteELF is an x86-64 ELF with one PT_NOTE segment holding Xen notes of
// the given types, each with a 4-byte value.
func noteELF(types ...uint32) []byte {
	le := binary.LittleEndian
	var notes []byte
	for _, typ := range types {
		n := make([]byte, 20)
		le.PutUint32(n[0:], 4)
		le.PutUint32(n[4:], 4)
		le.PutUint32(n[8:], typ)
		copy(n[12:], "Xen\x00")
		le.PutUint32(n[16:], 0x1000000+typ)
		notes = append(notes, n...)
	}
	h := make([]byte, 64+56)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = 2, 1, 1
	le.PutUint16(h[16:], 2)
	le.PutUint16(h[18:], 62)
	le.PutUint32(h[20:], 1)
	le.PutUint64(h[32:], 64)
	le.PutUint16(h[52:], 64)
	le.PutUint16(h[54:], 56)
	le.PutUint16(h[56:], 1)
	p := h[64:]
	le.PutUint32(p[0:], 4)
	le.PutUint64(p[8:], 120)
	le.PutUint64(p[32:], uint64(len(notes)))
	le.PutUint64(p[40:], uint64(len(notes)))
	le.PutUint64(p[48:], 4)
	return append(h, notes...)
}

func TestDisablePVH(t *testing.T) {
	in := noteELF(1, XenElfnotePhys32Entry, 2)
	out, n, err := DisablePVH(in)
	if err != nil || n != 1 {
		t.Fatalf("DisablePVH: %d, %v", n, err)
	}
	if len(out) != len(in) {
		t.Fatalf("size changed: %d -> %d", len(in), len(out))
	}
	if _, ok, _ := PVHEntry(mustELF(t, in)); !ok {
		t.Fatal("input lost its note (DisablePVH must copy)")
	}
	f := mustELF(t, out)
	if _, ok, _ := PVHEntry(f); ok {
		t.Error("output still has a PVH entry")
	}
	types, err := XenNotes(f)
	if err != nil || len(types) != 2 || types[0] != 1 || types[1] != 2 {
		t.Errorf("remaining Xen notes %v, %v; want [1 2]", types, err)
	}
	diff := 0
	for i := range in {
		if in[i] != out[i] {
			diff++
		}
	}
	if diff != 3 { // "Xen" -> "Off"
		t.Errorf("%d bytes changed, want 3", diff)
	}
	if _, _, err := DisablePVH(noteELF(1, 2)); err == nil {
		t.Error("a kernel without the PVH note: no error")
	}
	if _, _, err := DisablePVH([]byte("not an ELF")); err == nil {
		t.Error("not an ELF: no error")
	}
}

func mustELF(t *testing.T, b []byte) *elf.File {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestBuiltPVKernel checks images/xenstore-stubdom-pv.kernel when make
// kernel has built it: no PVH entry, the PV entry (XEN_ELFNOTE_ENTRY, 1)
// kept, otherwise the PVH kernel's bytes.
func TestBuiltPVKernel(t *testing.T) {
	dir := filepath.Join("..", "images")
	pv, err := os.ReadFile(filepath.Join(dir, "xenstore-stubdom-pv.kernel"))
	if os.IsNotExist(err) {
		t.Skip("images/xenstore-stubdom-pv.kernel not built (make kernel)")
	}
	if err != nil {
		t.Fatal(err)
	}
	f := mustELF(t, pv)
	if _, ok, _ := PVHEntry(f); ok {
		t.Fatal("the PV-only kernel has a PVH entry note")
	}
	types, err := XenNotes(f)
	if err != nil {
		t.Fatal(err)
	}
	have := map[uint32]bool{}
	for _, ty := range types {
		have[ty] = true
	}
	if !have[1] {
		t.Errorf("Xen notes %v: want the PV entry (XEN_ELFNOTE_ENTRY, 1)", types)
	}
	pvh, err := os.ReadFile(filepath.Join(dir, "xenstore-stubdom.kernel"))
	if err == nil {
		if want, _, err := DisablePVH(pvh); err != nil || !bytes.Equal(want, pv) {
			t.Error("the PV-only kernel is not the PVH kernel with its note disabled (stale? make kernel)")
		}
	}
}
