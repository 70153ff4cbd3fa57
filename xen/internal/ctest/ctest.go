// Package ctest is test support: it compiles and runs a tiny C program to
// read constants, struct sizes and field offsets from system headers, so
// tests can cross-check Go layouts against the C compiler. It is used only
// from _test.go files; when gcc or a header is missing it skips the calling
// test, so hand-derived layout tests must exist alongside and never skip.
package ctest

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Values compiles a program with prelude (defines and #includes) that
// prints each expression of exprs as an unsigned 64-bit number, runs it and
// returns the values by name. It skips t if gcc is absent or any header in
// headers (paths relative to /usr/include) is missing.
func Values(t *testing.T, headers []string, prelude string, exprs map[string]string) map[string]uint64 {
	t.Helper()
	return ValuesIn(t, "/usr/include", headers, prelude, exprs)
}

// ValuesIn is Values with the headers looked for, first, in include (for
// another release's headers unpacked beside the system's).
func ValuesIn(t *testing.T, include string, headers []string, prelude string, exprs map[string]string) map[string]uint64 {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found; C cross-check skipped")
	}
	for _, h := range headers {
		if _, err := os.Stat(filepath.Join(include, h)); err != nil {
			t.Skipf("header %s not in %s; C cross-check skipped", h, include)
		}
	}
	names := make([]string, 0, len(exprs))
	for n := range exprs {
		names = append(names, n)
	}
	sort.Strings(names)
	var src strings.Builder
	src.WriteString("#include <stdio.h>\n#include <stddef.h>\n")
	src.WriteString(prelude)
	src.WriteString("\nint main(void) {\n")
	for _, n := range names {
		src.WriteString("\tprintf(\"%s %llu\\n\", \"" + n + "\", (unsigned long long)(" + exprs[n] + "));\n")
	}
	src.WriteString("\treturn 0;\n}\n")
	dir := t.TempDir()
	cfile := filepath.Join(dir, "probe.c")
	bin := filepath.Join(dir, "probe")
	if err := os.WriteFile(cfile, []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(cc, "-I", include, "-o", bin, cfile).CombinedOutput()
	if err != nil {
		t.Fatalf("compiling C probe: %v\n%s\n%s", err, out, src.String())
	}
	out, err = exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("running C probe: %v", err)
	}
	vals := make(map[string]uint64, len(names))
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			t.Fatalf("bad probe output line %q", sc.Text())
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		vals[f[0]] = v
	}
	if len(vals) != len(names) {
		t.Fatalf("probe printed %d values, want %d", len(vals), len(names))
	}
	return vals
}
