// Package ctest is test support: it compiles and runs a tiny C program to
// read constants, struct sizes and field offsets from system headers, so
// tests can cross-check Go layouts against the C compiler. It is used only
// from _test.go files; when gcc or a header is missing it skips the calling
// test, so hand-derived layout tests must exist alongside and never skip.
//
// Cross mode: a test binary built for another architecture than the host's
// gcc (GOARCH=arm64 run under qemu-aarch64, `make test-arm64`) compiles the
// probe with that architecture's cross compiler (aarch64-linux-gnu-gcc) and
// reads the values from the generated assembly instead of running it; the
// system headers are then that architecture's Debian packages, unpacked by
// build/e2e/fetch-arm64.sh into $XSSTUB_CACHE/arm64/root/usr/include.
package ctest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
	include := "/usr/include"
	if c := crossTarget(t); c != nil {
		include = c.include
	}
	return ValuesIn(t, include, headers, prelude, exprs)
}

// cross is the toolchain for a test binary whose GOARCH is not the host
// gcc's target.
type cross struct {
	cc      string // the cross compiler
	include string // that architecture's system headers (Debian packages)
	triple  string // Debian's multiarch name
}

// gnuTriples maps GOARCH to Debian's multiarch triple (the cross
// compiler's prefix).
var gnuTriples = map[string]string{"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}

// crossTarget returns nil when the host gcc targets runtime.GOARCH, else
// the cross toolchain; it skips t when that is unusable.
func crossTarget(t *testing.T) *cross {
	t.Helper()
	want, ok := gnuTriples[runtime.GOARCH]
	if !ok {
		t.Skipf("no C cross-check for GOARCH=%s", runtime.GOARCH)
	}
	out, err := exec.Command("gcc", "-dumpmachine").Output()
	if err != nil {
		t.Skip("gcc not found; C cross-check skipped")
	}
	if strings.TrimSpace(string(out)) == want {
		return nil
	}
	cc, err := exec.LookPath(want + "-gcc")
	if err != nil {
		t.Skipf("GOARCH=%s on a %s host and no %s-gcc (package gcc-%s); C cross-check skipped",
			runtime.GOARCH, strings.TrimSpace(string(out)), want, strings.ReplaceAll(want, "_", "-"))
	}
	cache := os.Getenv("XSSTUB_CACHE")
	if cache == "" {
		cache = "/var/cache/xsstub"
	}
	inc := filepath.Join(cache, runtime.GOARCH, "root/usr/include")
	if _, err := os.Stat(inc); err != nil {
		t.Skipf("no %s headers in %s (build/e2e/fetch-arm64.sh unpacks them); C cross-check skipped", runtime.GOARCH, inc)
	}
	return &cross{cc: cc, include: inc, triple: want}
}

// ValuesIn is Values with the headers looked for, first, in include (for
// another release's headers unpacked beside the system's).
func ValuesIn(t *testing.T, include string, headers []string, prelude string, exprs map[string]string) map[string]uint64 {
	t.Helper()
	xc := crossTarget(t)
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
	if xc != nil {
		return valuesCross(t, xc, include, prelude, names, exprs)
	}
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

// valuesCross compiles the probe for the target only (-S): each value
// becomes an initialised 64-bit constant, read back from the assembly,
// since a target binary cannot run on the host.
func valuesCross(t *testing.T, xc *cross, include, prelude string, names []string, exprs map[string]string) map[string]uint64 {
	t.Helper()
	var src strings.Builder
	src.WriteString("#include <stddef.h>\n")
	src.WriteString(prelude)
	src.WriteString("\n")
	for i, n := range names {
		fmt.Fprintf(&src, "const unsigned long long xsprobe_%d = (unsigned long long)(%s); /* %s */\n", i, exprs[n], n)
	}
	dir := t.TempDir()
	cfile := filepath.Join(dir, "probe.c")
	asm := filepath.Join(dir, "probe.s")
	if err := os.WriteFile(cfile, []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-S", "-O0", "-I", include}
	if multi := filepath.Join(include, xc.triple); dirExists(multi) {
		args = append(args, "-I", multi)
	}
	out, err := exec.Command(xc.cc, append(args, "-o", asm, cfile)...).CombinedOutput()
	if err != nil {
		t.Fatalf("compiling C probe with %s: %v\n%s\n%s", xc.cc, err, out, src.String())
	}
	text, err := os.ReadFile(asm)
	if err != nil {
		t.Fatal(err)
	}
	byLabel, err := parseAsm(string(text))
	if err != nil {
		t.Fatalf("%s: %v", asm, err)
	}
	vals := make(map[string]uint64, len(names))
	for i, n := range names {
		v, ok := byLabel[fmt.Sprintf("xsprobe_%d", i)]
		if !ok {
			t.Fatalf("%s (%s): no value in the assembly", n, exprs[n])
		}
		vals[n] = v
	}
	return vals
}

// parseAsm reads "LABEL:" lines each followed by one 8-byte datum as GNU as
// spells it for the target: .xword/.quad/.8byte N (aarch64, x86), or
// .zero 8 for 0.
func parseAsm(text string) (map[string]uint64, error) {
	vals := map[string]uint64{}
	label := ""
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasSuffix(line, ":") && strings.HasPrefix(line, "xsprobe_") {
			label = strings.TrimSuffix(line, ":")
			continue
		}
		if label == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("%s: unexpected %q", label, line)
		}
		var v uint64
		switch f[0] {
		case ".xword", ".quad", ".8byte", ".dword":
			n, err := strconv.ParseInt(f[1], 0, 64)
			if err != nil {
				u, uerr := strconv.ParseUint(f[1], 0, 64)
				if uerr != nil {
					return nil, fmt.Errorf("%s: %q: %w", label, line, err)
				}
				n = int64(u)
			}
			v = uint64(n)
		case ".zero":
			if f[1] != "8" {
				return nil, fmt.Errorf("%s: %q", label, line)
			}
		default:
			return nil, fmt.Errorf("%s: unexpected %q", label, line)
		}
		vals[label] = v
		label = ""
	}
	return vals, nil
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
