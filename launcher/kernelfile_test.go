package launcher

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// tinyELF is an x86-64 ELF with one PT_NOTE segment holding a Xen note of
// type typ and a 4-byte value.
func tinyELF(typ uint32, val uint32) []byte {
	le := binary.LittleEndian
	note := make([]byte, 12+4+4)
	le.PutUint32(note[0:], 4) // "Xen\0"
	le.PutUint32(note[4:], 4)
	le.PutUint32(note[8:], typ)
	copy(note[12:], "Xen\x00")
	le.PutUint32(note[16:], val)
	h := make([]byte, 64+56)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = 2, 1, 1 // 64-bit, little-endian, version 1
	le.PutUint16(h[16:], 2)    // ET_EXEC
	le.PutUint16(h[18:], 62)   // EM_X86_64
	le.PutUint32(h[20:], 1)
	le.PutUint64(h[32:], 64) // e_phoff
	le.PutUint16(h[52:], 64) // e_ehsize
	le.PutUint16(h[54:], 56) // e_phentsize
	le.PutUint16(h[56:], 1)  // e_phnum
	p := h[64:]
	le.PutUint32(p[0:], 4)                  // PT_NOTE
	le.PutUint64(p[8:], 120)                // p_offset
	le.PutUint64(p[32:], uint64(len(note))) // p_filesz
	le.PutUint64(p[40:], uint64(len(note))) // p_memsz
	le.PutUint64(p[48:], 4)                 // p_align
	return append(h, note...)
}

func TestInspectKernel(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(tinyELF(18, 0x1000000))
	zw.Close()
	bz := make([]byte, 0x300)
	copy(bz[0x202:], "HdrS")
	for _, c := range []struct {
		name string
		data []byte
		want KernelInfo
	}{
		{"pvh.elf", tinyELF(18, 0x1234560), KernelInfo{Format: "elf", HasPVH: true, PVHEntry: 0x1234560}},
		{"pv.elf", tinyELF(1, 0), KernelInfo{Format: "elf"}},
		{"pvh.gz", z.Bytes(), KernelInfo{Format: "elf", Gzipped: true, HasPVH: true, PVHEntry: 0x1000000}},
		{"bzImage", bz, KernelInfo{Format: "bzImage"}},
		{"junk", []byte("not a kernel"), KernelInfo{Format: "unknown"}},
	} {
		got, err := InspectKernel(write(c.name, c.data))
		if err != nil || got != c.want {
			t.Errorf("%s: %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
	if _, err := InspectKernel(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing kernel accepted")
	}
	// The stub's kernel, once built, must be bootable as PVH.
	if ki, err := InspectKernel("../images/xenstore-stubdom.kernel"); err == nil && !ki.HasPVH {
		t.Errorf("images/xenstore-stubdom.kernel: %+v", ki)
	}
}

func TestMainUsageAndPreflight(t *testing.T) {
	var out, errb bytes.Buffer
	if c := Main([]string{"--memory", "8"}, &out, &errb); c != ExitUsage || !bytes.Contains(errb.Bytes(), []byte("--kernel missing")) {
		t.Errorf("exit %d: %s", c, errb.String())
	}
	errb.Reset()
	if c := Main([]string{"--help"}, &out, &errb); c != 0 || !bytes.Contains(out.Bytes(), []byte("--maxmem")) {
		t.Errorf("help: exit %d", c)
	}
	dir := t.TempDir()
	k := filepath.Join(dir, "k")
	os.WriteFile(k, tinyELF(1, 0), 0o644)
	errb.Reset()
	if c := Main([]string{"--kernel", k, "--memory", "8", "--pvh"}, &out, &errb); c != ExitFail || !bytes.Contains(errb.Bytes(), []byte("no PVH entry note")) {
		t.Errorf("--pvh without note: exit %d: %s", c, errb.String())
	}
	errb.Reset()
	if c := Main([]string{"--kernel", k, "--memory", "8", "--ramdisk", filepath.Join(dir, "none")}, &out, &errb); c != ExitFail || !bytes.Contains(errb.Bytes(), []byte("ramdisk")) {
		t.Errorf("missing ramdisk: exit %d: %s", c, errb.String())
	}
}

func TestMainNoXen(t *testing.T) {
	if b, err := os.ReadFile("/sys/hypervisor/type"); err == nil && bytes.HasPrefix(b, []byte("xen")) {
		t.Skip("running on Xen")
	}
	dir := t.TempDir()
	k := filepath.Join(dir, "k")
	os.WriteFile(k, tinyELF(18, 0x1000000), 0o644)
	var out, errb bytes.Buffer
	if c := Main([]string{"--kernel", k, "--memory", "8"}, &out, &errb); c != ExitFail || !bytes.Contains(errb.Bytes(), []byte("not running on Xen")) {
		t.Errorf("exit %d: %s", c, errb.String())
	}
}
