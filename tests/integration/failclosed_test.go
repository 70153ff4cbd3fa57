package integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStubModeWithoutXenSaysWhy: stub mode where it cannot work exits 1
// and says why on stderr (it used to write only to /dev/console).
func TestStubModeWithoutXenSaysWhy(t *testing.T) {
	if _, err := os.Stat("/dev/xen"); err == nil {
		t.Skip("this machine has /dev/xen")
	}
	bin := daemonBin(t)
	cmd := exec.Command(bin, "-N", "--socket", filepath.Join(shortTempDir(t), "socket"), "--stubdom", "--event", "3")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1", err)
	}
	if !strings.Contains(stderr.String(), "needs /dev/xen") {
		t.Fatalf("stderr %q does not say why", stderr.String())
	}
}

// TestBadXenInterface: --xen-interface names a release this build knows.
func TestBadXenInterface(t *testing.T) {
	bin := daemonBin(t)
	for _, v := range []string{"4.99", "four", "4"} {
		cmd := exec.Command(bin, "-N", "--socket", filepath.Join(shortTempDir(t), "socket"), "--xen-interface", v)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "--xen-interface") {
			t.Errorf("--xen-interface %s: %v, %q", v, err, out)
		}
	}
}
