package kernel

import (
	"debug/elf"
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
