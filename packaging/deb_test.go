package packaging

import (
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// debArch is what differs between the two packages TestDeb builds.
type debArch struct {
	arch   string
	images []string // build outputs the package ships from DEB_IMAGES
	// bin finds (or builds) the programs; pie reports make deb's PIE builds.
	bin func(t *testing.T, root string) (dir string, pie bool)
	// present and absent paths, beyond what both packages hold.
	present map[string]string
	absent  []string
	mode    string // XSSTUB_MODE in the shipped /etc/default/xsstub
}

var debArches = []debArch{
	{
		arch:   "amd64",
		images: []string{"xenstore-stubdom.kernel", "xenstore-stubdom-pv.kernel", "xenstore-stubdom.cpio.gz"},
		bin: func(t *testing.T, root string) (string, bool) {
			// make deb's PIE builds if there, else make build's.
			bin, pie := filepath.Join(root, "dist", "bin"), true
			if _, err := os.Stat(filepath.Join(bin, "xenstored")); err != nil {
				bin, pie = filepath.Join(root, "bin"), false
			}
			for _, b := range []string{"xenstored", "xenstore-stubdom-launch"} {
				if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
					t.Skipf("bin/%s not built (make build)", b)
				}
			}
			return bin, pie
		},
		present: map[string]string{
			"/usr/sbin/xenstore-stubdom-launch":                "-rwxr-xr-x",
			"/usr/share/man/man8/xenstore-stubdom-launch.8.gz": "-rw-r--r--",
			"/usr/lib/xsstub/xenstore-stubdom-pv.kernel":       "-rw-r--r--",
			"/usr/share/lintian/overrides/xsstub":              "-rw-r--r--",
			"/usr/share/doc/xsstub/kernel-stubdom.config.gz":   "-rw-r--r--",
			"/usr/share/doc/xsstub/examples/xencommons":        "-rw-r--r--",
			"/usr/share/doc/xsstub/launcher-README.md.gz":      "-rw-r--r--",
		},
		mode: "stub",
	},
	{
		arch:   "arm64",
		images: []string{"xenstore-stubdom.kernel", "xenstore-stubdom.cpio.gz"},
		bin: func(t *testing.T, root string) (string, bool) {
			// make deb-arm64's build, else the same into the test's directory
			// (Debian's cross gcc links it against libc.so.6, as on amd64).
			bin := filepath.Join(root, "dist", "arm64", "bin")
			if _, err := os.Stat(filepath.Join(bin, "xenstored")); err == nil {
				return bin, true
			}
			if _, err := exec.LookPath("aarch64-linux-gnu-gcc"); err != nil {
				t.Skip("no aarch64-linux-gnu-gcc (build/test-deps.sh installs gcc-aarch64-linux-gnu)")
			}
			bin = t.TempDir()
			cmd := exec.Command("go", "build", "-trimpath", "-buildmode=pie", "-ldflags=-s -w -buildid= -bindnow",
				"-o", bin+"/", "./stubdom/xenstored")
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "GOARCH=arm64", "CGO_ENABLED=1", "CC=aarch64-linux-gnu-gcc")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("arm64 build: %v\n%s", err, out)
			}
			return bin, true
		},
		present: map[string]string{
			"/usr/share/doc/xsstub/kernel-stubdom-arm64.config.gz": "-rw-r--r--",
		},
		absent: []string{"/usr/sbin/xenstore-stubdom-launch", "/usr/share/man/man8/xenstore-stubdom-launch.8.gz",
			"/usr/lib/xsstub/xenstore-stubdom-pv.kernel", "/usr/share/lintian/overrides/xsstub",
			"/usr/share/doc/xsstub/examples/xencommons"},
		mode: "dom0",
	},
}

// TestDeb builds each package from the tree's binaries (make build, make
// deb-arm64's or its own arm64 build) and images (make kernel image, make
// kernel-arm64 image-arm64, else small stand-ins) with build/deb.sh,
// uncompressed (a few seconds: nothing else is compiled), and checks its
// control data, maintainer scripts and contents; lintian too where it is
// installed (XSSTUB_LINTIAN=0 skips it).
func TestDeb(t *testing.T) {
	for _, tool := range []string{"dpkg-deb", "dpkg-shlibdeps"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s missing (build/test-deps.sh installs dpkg-dev)", tool)
		}
	}
	for _, a := range debArches {
		t.Run(a.arch, func(t *testing.T) { testDeb(t, a) })
	}
}

func testDeb(t *testing.T, a debArch) {
	root, _ := filepath.Abs("..")
	bin, pie := a.bin(t, root)
	tmp := t.TempDir()
	images := filepath.Join(root, "images")
	if a.arch != "amd64" {
		images = filepath.Join(images, a.arch)
	}
	real := true
	for _, f := range a.images {
		if _, err := os.Stat(filepath.Join(images, f)); err != nil {
			real = false
		}
	}
	if !real {
		images = filepath.Join(tmp, "images")
		os.MkdirAll(images, 0o755)
		for _, f := range a.images {
			content := []byte("stand-in " + f + "\n")
			if strings.HasSuffix(f, ".gz") { // lintian checks it is gzip
				var b bytes.Buffer
				zw := gzip.NewWriter(&b)
				zw.Write(content)
				zw.Close()
				content = b.Bytes()
			}
			if err := os.WriteFile(filepath.Join(images, f), content, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	cmd := exec.Command("bash", filepath.Join(root, "build", "deb.sh"))
	cmd.Env = append(os.Environ(), "DEB_ARCH="+a.arch, "DEB_BIN="+bin, "DEB_IMAGES="+images, "DEB_OUT="+tmp,
		"DEB_VERSION=0.0.0+test", "DEB_COMPRESS=gzip", "DEB_COMPRESS_LEVEL=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("build/deb.sh: %v\n%s", err, out)
	}
	deb := filepath.Join(tmp, "xsstub_0.0.0+test_"+a.arch+".deb")
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(args[0], args[1:]...).Output()
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		return string(out)
	}

	field := func(name string) string {
		return strings.TrimSpace(run("dpkg-deb", "-f", deb, name))
	}
	for name, want := range map[string]string{"Package": "xsstub", "Version": "0.0.0+test",
		"Architecture": a.arch, "Section": "admin", "Priority": "optional"} {
		if got := field(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	dep := field("Depends")
	for _, want := range []string{"xen-utils-common", "xen-utils-4.17 | xen-utils-4.20 | xen-utils", "libc6"} {
		if !strings.Contains(dep, want) {
			t.Errorf("Depends %q lacks %q", dep, want)
		}
	}
	if regexp.MustCompile(`\$\{|@[A-Z_]+@`).MatchString(dep) {
		t.Errorf("Depends %q has an unsubstituted variable", dep)
	}

	ctl := filepath.Join(tmp, "ctl")
	run("dpkg-deb", "-e", deb, ctl)
	if b, _ := os.ReadFile(filepath.Join(ctl, "conffiles")); string(b) != "/etc/default/xsstub\n" {
		t.Errorf("conffiles %q", b)
	}
	diversions := []string{"/usr/lib/xen-4.17/bin/oxenstored", "/usr/lib/xen-4.17/bin/xenstored",
		"/usr/lib/xen-4.20/bin/oxenstored", "/usr/lib/xen-4.20/bin/xenstored"}
	for _, s := range []string{"preinst", "postinst", "prerm", "postrm"} {
		p := filepath.Join(ctl, s)
		if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
			t.Errorf("%s: %v %s", s, err, out)
		}
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), "@DIVERSIONS@") {
			t.Errorf("%s: @DIVERSIONS@ not substituted", s)
		}
		if s != "postinst" && s != "prerm" {
			for _, d := range diversions {
				if !strings.Contains(string(b), d) {
					t.Errorf("%s lacks %s", s, d)
				}
			}
		}
	}

	// Contents: mode, owner and path (symlinks with their target).
	list := run("dpkg-deb", "-c", deb)
	entries := map[string]string{}
	for _, l := range strings.Split(list, "\n") {
		f := strings.Fields(l)
		if len(f) < 6 {
			continue
		}
		path := strings.TrimPrefix(f[5], ".")
		if f[1] != "root/root" {
			t.Errorf("%s owned by %s", path, f[1])
		}
		if len(f) == 8 && f[6] == "->" {
			entries[path] = "-> " + f[7]
		} else {
			entries[path] = f[0]
		}
	}
	want := map[string]string{
		"/usr/sbin/xsstub-xenstored":                      "-rwxr-xr-x",
		"/usr/libexec/xsstub/xenstored":                   "-rwxr-xr-x",
		"/usr/sbin/xsstub-switch":                         "-rwxr-xr-x",
		"/usr/share/man/man8/xsstub-switch.8.gz":          "-rw-r--r--",
		"/usr/lib/xsstub/xenstore-stubdom.kernel":         "-rw-r--r--",
		"/usr/lib/xsstub/xenstore-stubdom.cpio.gz":        "-rw-r--r--",
		"/etc/default/xsstub":                             "-rw-r--r--",
		"/usr/share/doc/xsstub/copyright":                 "-rw-r--r--",
		"/usr/share/doc/xsstub/changelog.gz":              "-rw-r--r--",
		"/usr/share/doc/xsstub/README.Debian":             "-rw-r--r--",
		"/usr/share/man/man8/xsstub-xenstored.8.gz":       "-rw-r--r--",
		"/usr/share/man/man5/xsstub.conf.5.gz":            "-rw-r--r--",
		"/usr/lib/xen-4.17/bin/oxenstored":                "-> ../../../libexec/xsstub/xenstored",
		"/usr/lib/xen-4.17/bin/xenstored":                 "-> ../../../libexec/xsstub/xenstored",
		"/usr/lib/xen-4.20/bin/oxenstored":                "-> ../../../libexec/xsstub/xenstored",
		"/usr/lib/xen-4.20/bin/xenstored":                 "-> ../../../libexec/xsstub/xenstored",
		"/usr/share/doc/xsstub/stubdom-boot-README.md.gz": "-rw-r--r--",
	}
	for path, mode := range a.present {
		want[path] = mode
	}
	for path, want := range want {
		if got := entries[path]; got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
	for _, path := range a.absent {
		if _, in := entries[path]; in {
			t.Errorf("%s is in the %s package", path, a.arch)
		}
	}
	// The default mode, as the wrapper reads the shipped file.
	data := filepath.Join(tmp, "data")
	run("dpkg-deb", "-x", deb, data)
	mode, err := exec.Command("sh", "-c", `. "$1"; printf %s "$XSSTUB_MODE"`, "sh", filepath.Join(data, "etc/default/xsstub")).Output()
	if err != nil || string(mode) != a.mode {
		t.Errorf("/etc/default/xsstub: XSSTUB_MODE=%q (%v), want %q", mode, err, a.mode)
	}
	for path := range entries {
		if strings.HasPrefix(path, "/usr/lib/xen-4.") && strings.HasSuffix(path, "/bin/init-xenstore-domain") {
			t.Errorf("%s: Xen's init-xenstore-domain must stay Debian's", path)
		}
	}

	if os.Getenv("XSSTUB_LINTIAN") == "0" {
		return
	}
	if _, err := exec.LookPath("lintian"); err != nil {
		t.Log("lintian not installed: not run")
		return
	}
	lint := exec.Command("lintian", "--pedantic", deb)
	lout, _ := lint.CombinedOutput()
	for _, l := range strings.Split(string(lout), "\n") {
		if !pie && strings.Contains(l, " hardening-no-") {
			continue // make build's binaries are not PIE; make deb's are
		}
		if strings.HasPrefix(l, "E:") || strings.HasPrefix(l, "W:") {
			t.Errorf("lintian: %s", l)
		}
	}
	t.Logf("lintian:\n%s", lout)
}
