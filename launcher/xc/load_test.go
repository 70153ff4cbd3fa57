//go:build linux && cgo

package xc

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var noHypervisor = errors.New("no /sys/hypervisor/version (test)")

// TestLoadHostLibraries dlopens this machine's Xen libraries (Debian 12:
// 4.17) by SONAME, as the launcher does, and resolves every function.
func TestLoadHostLibraries(t *testing.T) {
	if _, ok := findInstalled(); !ok {
		t.Skip("no libxenctrl.so.4.NN installed (libxen-dev / xen-utils): loader not exercised")
	}
	l, err := load(Version{}, noHypervisor)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Xen %s: %s; %d functions resolved", l.Version, strings.Join(l.Files[:], " "), len(Symbols()))
	if !strings.Contains(l.Files[1], "libxenctrl.so."+l.Version.String()) {
		t.Errorf("libxenctrl from %s, version %s", l.Files[1], l.Version)
	}
}

func findInstalled() (Version, bool) {
	for _, v := range knownNewestFirst() {
		if m, _ := filepath.Glob("/usr/lib/x86_64-linux-gnu/libxenctrl.so." + v.String()); len(m) > 0 {
			return v, true
		}
	}
	return Version{}, false
}

// TestLoadDebian13Libraries loads Debian 13's Xen 4.20 libraries, unpacked
// by build/test-deps.sh: they need glibc 2.38, so the test binary re-runs
// itself under trixie's dynamic loader and libc from the same unpacked
// tree (the host's other libraries fill in yajl, zstd, ...).
func TestLoadDebian13Libraries(t *testing.T) {
	root := filepath.Join(cacheDir(), "xen-4.20")
	lib := filepath.Join(root, "usr/lib/x86_64-linux-gnu")
	ldso := filepath.Join(root, "usr/lib64/ld-linux-x86-64.so.2")
	for _, f := range []string{filepath.Join(lib, "libxenctrl.so.4.20"), ldso} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("%v: Debian 13's Xen libraries and libc not unpacked (build/test-deps.sh)", err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ldso, "--library-path", lib, self, "-test.run=^TestLoadHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "XSSTUB_LOAD_HELPER=4.20", "XSSTUB_LOAD_ROOT="+root)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil || !strings.Contains(string(out), "loaded Xen 4.20") {
		t.Fatalf("loading 4.20 under trixie's ld.so: %v", err)
	}
}

// TestLoadHelper runs in the child of TestLoadDebian13Libraries.
func TestLoadHelper(t *testing.T) {
	want := os.Getenv("XSSTUB_LOAD_HELPER")
	if want == "" {
		t.Skip("helper for TestLoadDebian13Libraries")
	}
	v, _ := ParseVersion(want)
	l, err := load(v, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range l.Files {
		if i > 0 && !strings.HasPrefix(f, os.Getenv("XSSTUB_LOAD_ROOT")) {
			t.Errorf("%s not from %s", f, os.Getenv("XSSTUB_LOAD_ROOT"))
		}
	}
	t.Logf("loaded Xen %s: %s; resolved %s", l.Version, strings.Join(l.Files[:], " "), strings.Join(Symbols(), " "))
}

// TestLoadUnknownHypervisor: a hypervisor release outside the tables is
// refused by name before any library is looked at.
func TestLoadUnknownHypervisor(t *testing.T) {
	_, err := load(Version{4, 23}, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "Unknown Xen version 4.23: this launcher knows 4.17–4.22") {
		t.Fatalf("got %v", err)
	}
}

func TestCandidates(t *testing.T) {
	got := candidates(Version{4, 19}, true)
	if got[0] != (Version{4, 19}) || got[1] != (Version{4, 22}) || len(got) != 6 {
		t.Errorf("hypervisor 4.19: %v", got)
	}
	if got := candidates(Version{}, false); got[0] != Newest || got[5] != Oldest {
		t.Errorf("unknown hypervisor: %v", got)
	}
}

func TestVersionFromPath(t *testing.T) {
	for p, want := range map[string]Version{"/usr/lib/x86_64-linux-gnu/libxenctrl.so.4.20.0": {4, 20}, "libxenctrl.so.4.17": {4, 17}} {
		if v, ok := versionFromPath(p); !ok || v != want {
			t.Errorf("%s: %v %v", p, v, ok)
		}
	}
	if _, ok := versionFromPath("/usr/lib/libxenctrl.so"); ok {
		t.Error("unversioned name parsed")
	}
}

// TestLoadNoKnownRelease: with no library of a known release, a
// libxenctrl.so.4.NN of another release is named; with none at all, the
// names tried are.
func TestLoadNoKnownRelease(t *testing.T) {
	saved, savedU, savedDirs := soNames, unversioned, libDirs
	defer func() { soNames, unversioned, libDirs = saved, savedU, savedDirs }()
	soNames = func(v Version) [4]string {
		n := libNames(v)
		for i := range n {
			n[i] = "xsstub-missing-" + n[i]
		}
		return n
	}
	for i := range unversioned {
		unversioned[i] = "xsstub-missing-" + unversioned[i]
	}
	dir := t.TempDir()
	libDirs = []string{dir}
	_, err := load(Version{}, noHypervisor)
	if err == nil || !strings.Contains(err.Error(), "no Xen libraries: none of xsstub-missing-libxenctrl.so.4.22, ") {
		t.Errorf("no libraries: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "libxenctrl.so.4.23.0"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = load(Version{}, noHypervisor)
	if err == nil || err.Error() != "Unknown Xen version 4.23: this launcher knows 4.17–4.22 (found libxenctrl.so.4.23)" {
		t.Errorf("4.23 library: %v", err)
	}
}
