package imagecheck

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// repoRoot is the module root, two levels up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "build", "image.sh")); err != nil {
		t.Fatalf("no build/image.sh under %s: %v", root, err)
	}
	return root
}

// standIn builds a tiny static program to stand in for xenstored.
func standIn(t *testing.T, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "standin")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"go.mod":  "module standin\n\ngo 1.22\n",
		"main.go": "package main\n\nfunc main() { println(\"stand-in xenstored\") }\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "xenstored")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building stand-in: %v\n%s", err, out)
	}
	return bin
}

func buildImage(t *testing.T, root, out string, env ...string) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(root, "build", "image.sh"))
	cmd.Dir = root
	cmd.Env = append(append(os.Environ(), "IMAGE_OUT="+out), env...)
	output, err := cmd.CombinedOutput()
	t.Logf("image.sh:\n%s", output)
	if err != nil {
		t.Fatalf("image.sh: %v", err)
	}
}

// TestImage builds the initramfs into a temporary directory with
// build/image.sh and checks its contents. The real xenstored is used when
// ./stubdom/xenstored exists (and IMAGECHECK_STANDIN is unset), a stand-in
// otherwise.
func TestImage(t *testing.T) {
	root := repoRoot(t)
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	probe := exec.Command("go", "tool", "-n", "u-root")
	probe.Dir = root
	if out, err := probe.CombinedOutput(); err != nil {
		t.Skipf("go tool u-root not available: %v\n%s", err, out)
	}

	dir := t.TempDir()
	var env []string
	if _, err := os.Stat(filepath.Join(root, "stubdom", "xenstored")); err != nil || os.Getenv("IMAGECHECK_STANDIN") != "" {
		env = append(env, "XENSTORED_BIN="+standIn(t, dir))
	}
	img := filepath.Join(dir, "a.cpio.gz")
	buildImage(t, root, img, env...)

	entries, err := List(img)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Entry{}
	for _, e := range entries {
		byName[e.Name] = e
	}
	for _, want := range []struct {
		name string
		typ  uint64
	}{
		{"init", TypeReg},
		{"bin/xenstored", TypeLink}, // -> /init: one program
		{"dev/console", TypeChr},
		{"dev/null", TypeChr},
		{"proc", TypeDir},
		{"sys", TypeDir},
		{"dev", TypeDir},
	} {
		e, ok := byName[want.name]
		if !ok {
			t.Errorf("image lacks /%s", want.name)
			continue
		}
		if e.Mode&TypeMask != want.typ {
			t.Errorf("/%s: mode %o, want type %o", want.name, e.Mode, want.typ)
		}
		if want.typ == TypeReg && (e.Mode&0o111 == 0 || e.Size == 0) {
			t.Errorf("/%s: mode %o size %d: want a non-empty executable", want.name, e.Mode, e.Size)
		}
	}

	// Same inputs, same bytes.
	img2 := filepath.Join(dir, "b.cpio.gz")
	buildImage(t, root, img2, env...)
	a, _ := os.ReadFile(img)
	b, _ := os.ReadFile(img2)
	if !bytes.Equal(a, b) {
		t.Errorf("two builds differ: %d and %d bytes", len(a), len(b))
	}
}

// TestImageArm64: IMAGE_ARCH=arm64 (make image-arm64, the dom0less
// xenstore domain's image) builds /init for arm64, and a prebuilt program
// of another architecture is refused rather than packed.
func TestImageArm64(t *testing.T) {
	root := repoRoot(t)
	probe := exec.Command("go", "tool", "-n", "u-root")
	probe.Dir = root
	if out, err := probe.CombinedOutput(); err != nil {
		t.Skipf("go tool u-root not available: %v\n%s", err, out)
	}
	if _, err := exec.LookPath("readelf"); err != nil {
		t.Skip("no readelf (binutils): image.sh cannot check the architecture")
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "arm64.cpio.gz")
	buildImage(t, root, img, "IMAGE_ARCH=arm64")
	entries, err := List(img)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		if e.Name == "init" && e.Mode&TypeMask == TypeReg && e.Size > 0 {
			found = true
		}
	}
	if !found {
		t.Errorf("arm64 image lacks a regular /init: %+v", entries)
	}

	cmd := exec.Command("bash", filepath.Join(root, "build", "image.sh"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "IMAGE_OUT="+filepath.Join(dir, "wrong.cpio.gz"),
		"IMAGE_ARCH=arm64", "XENSTORED_BIN="+standIn(t, dir))
	out, err := cmd.CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("is not an arm64 program")) {
		t.Errorf("an amd64 program packed as arm64's /init: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "wrong.cpio.gz")); err == nil {
		t.Error("the refused image was written")
	}
}
