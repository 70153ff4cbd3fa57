package xc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// headerSet is one release's installed headers: include directories for gcc.
type headerSet struct {
	name     string
	version  Version
	includes []string
}

func cacheDir() string {
	if d := os.Getenv("XSSTUB_CACHE"); d != "" {
		return d
	}
	return "/var/cache/xsstub"
}

// packagedHeaders are Debian 12's libxen-dev in /usr/include (whatever
// release dpkg says it is) and Debian 13's, unpacked by build/test-deps.sh.
func packagedHeaders(t *testing.T) []headerSet {
	var sets []headerSet
	if _, err := os.Stat("/usr/include/xenctrl.h"); err == nil {
		out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "libxen-dev").Output()
		if v, perr := ParseVersion(string(out)); err == nil && perr == nil {
			sets = append(sets, headerSet{"libxen-dev " + strings.TrimSpace(string(out)) + " (/usr/include)", v, nil})
		} else {
			t.Logf("/usr/include/xenctrl.h present but libxen-dev's version unknown (%v %v): not checked", err, perr)
		}
	} else {
		t.Logf("no /usr/include/xenctrl.h (Debian 12's libxen-dev; `make test-deps` installs it): 4.17 not checked")
	}
	d420 := filepath.Join(cacheDir(), "xen-4.20/usr/include")
	if _, err := os.Stat(filepath.Join(d420, "xenctrl.h")); err == nil {
		sets = append(sets, headerSet{"Debian 13 libxen-dev (" + d420 + ")", Version{4, 20}, []string{d420}})
	} else {
		t.Logf("no %s (Debian 13's libxen-dev; build/test-deps.sh unpacks it): 4.20 not checked against packaged headers", d420)
	}
	return sets
}

// probe compiles testdata/layout.c against a header set and returns its
// "key value..." lines.
func probe(t *testing.T, hs headerSet) map[string]string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no gcc: layouts not checked")
	}
	bin := filepath.Join(t.TempDir(), "layout")
	args := []string{"-Wall", "-Werror", "-o", bin}
	for _, d := range hs.includes {
		args = append(args, "-I", d)
	}
	args = append(args, "testdata/layout.c")
	if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: gcc %s: %v\n%s", hs.name, strings.Join(args, " "), err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("%s: %v", hs.name, err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, " ")
		m[k] = v
	}
	return m
}

// entries lists a Layout as the probe prints it: "key off size" for a
// Field, "key size" for a struct size; constants as "const.NAME value".
func entries(l Layout) map[string]string {
	m := map[string]string{}
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		for i := 0; i < v.NumField(); i++ {
			f, tag := v.Field(i), v.Type().Field(i).Tag.Get("c")
			switch x := f.Interface().(type) {
			case Field:
				m[tag] = fmt.Sprintf("%d %d", x.Off, x.Size)
			case uintptr:
				m[tag] = fmt.Sprint(x)
			default:
				walk(f)
			}
		}
	}
	walk(reflect.ValueOf(l))
	for k, v := range cConsts {
		m["const."+k] = fmt.Sprint(v)
	}
	return m
}

func compare(t *testing.T, name string, want, got map[string]string) {
	t.Helper()
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if want[k] != got[k] {
			t.Errorf("%s: %s: table has %q, headers say %q", name, k, want[k], got[k])
		}
	}
}

func checkSet(t *testing.T, hs headerSet) {
	l, err := LayoutFor(hs.version)
	if err != nil {
		t.Fatalf("%s: %v", hs.name, err)
	}
	compare(t, hs.name, entries(*l), probe(t, hs))
}

// TestLayoutsMatchHeaders checks the tables against the packaged headers:
// every offset, width and size, every constant, and (static assertions in
// layout.c) every prototype the trampolines in dl.go assume.
func TestLayoutsMatchHeaders(t *testing.T) {
	sets := packagedHeaders(t)
	if len(sets) == 0 {
		t.Skip("no Xen headers (make test-deps): layouts not checked against a compiler")
	}
	for _, hs := range sets {
		t.Logf("checking %s as Xen %s", hs.name, hs.version)
		checkSet(t, hs)
	}
}

// TestLayoutsMatchXenTree checks every known release against its tagged
// source tree (RELEASE-4.NN.0): XSSTUB_XEN_SRC names a clone of
// xen-project/xen (git directory). libxl's generated _libxl_types.h is made
// with the tree's own gentypes.py.
func TestLayoutsMatchXenTree(t *testing.T) {
	src := os.Getenv("XSSTUB_XEN_SRC")
	if src == "" {
		t.Skip("XSSTUB_XEN_SRC (a xen-project/xen clone) not set: 4.18, 4.19, 4.21, 4.22 not checked against their trees here")
	}
	for _, v := range knownNewestFirst() {
		dir := t.TempDir()
		exportTree(t, src, "RELEASE-"+v.String()+".0", dir)
		checkSet(t, headerSet{"xen tree RELEASE-" + v.String() + ".0", v,
			[]string{filepath.Join(dir, "inc"), filepath.Join(dir, "tools/include")}})
	}
}

// exportTree unpacks a tag's headers into dir and lays them out as
// installed: dir/inc/xen = xen/include/public, dir/inc/_libxl_types*.h.
func exportTree(t *testing.T, src, tag, dir string) {
	t.Helper()
	sh := `set -e
git --git-dir="$1" archive "$2" tools/include xen/include/public tools/libs/light | tar -x -C "$3"
mkdir -p "$3/inc" && cp -r "$3/xen/include/public" "$3/inc/xen"
cd "$3/tools/libs/light" && python3 gentypes.py libxl_types.idl "$3/inc/_libxl_types.h" "$3/inc/_libxl_types_private.h" "$3/inc/_libxl_types_json.h" "$3/inc/_libxl_types.c" >/dev/null`
	if out, err := exec.Command("bash", "-c", sh, "-", src, tag, dir).CombinedOutput(); err != nil {
		t.Fatalf("exporting %s from %s: %v\n%s", tag, src, err, out)
	}
}

func TestLayoutForUnknown(t *testing.T) {
	_, err := LayoutFor(Version{4, 23})
	if err == nil || err.Error() != "Unknown Xen version 4.23: this launcher knows 4.17–4.22" {
		t.Fatalf("got %v", err)
	}
	for _, v := range knownNewestFirst() {
		if _, err := LayoutFor(v); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
	if len(knownNewestFirst()) != len(Layouts) {
		t.Errorf("Oldest..Newest has %d releases, Layouts %d", len(knownNewestFirst()), len(Layouts))
	}
}

func TestParseVersion(t *testing.T) {
	for s, want := range map[string]Version{"4.17": {4, 17}, "4.17.5+75-g1b6a6e8a4f-0+deb12u1": {4, 17}, "4.20.4+63": {4, 20}, "4.22.0-rc\n": {4, 22}} {
		if v, err := ParseVersion(s); err != nil || v != want {
			t.Errorf("%q: %v %v", s, v, err)
		}
	}
	if _, err := ParseVersion("garbage"); err == nil {
		t.Error("garbage parsed")
	}
}
