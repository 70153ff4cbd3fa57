package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestSwitchRefusals runs xsstub-switch against pid files and processes
// that it must not switch, or whose switch fails before anything changes:
// each must exit with the reason and leave the process alone. The switch
// itself, against C xenstored, is difftest's TestSwitchScript.
func TestSwitchRefusals(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep(1)")
	}
	dir := t.TempDir()
	// Processes that look like daemons by their executable's path.
	copyExe := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(sleep)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	start := func(exe string) int {
		cmd := exec.Command(exe, "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd.Process.Pid
	}
	cBin := copyExe("xen-4.17/bin/xenstored")
	oxBin := copyExe("xen-4.17/bin/oxenstored")
	ours := filepath.Join(dir, "xsstub-xenstored")
	if err := os.WriteFile(ours, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	control := filepath.Join(dir, "control")
	if err := os.WriteFile(control, []byte("#!/bin/sh\necho \"$@\" >\"$0.args\"\necho 'Domains with long running transactions: Domain 0: 2 s'\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cPid, oxPid, otherPid := start(cBin), start(oxBin), start(sleep)

	tests := []struct {
		name    string
		pidFile string // content; "" for no file
		arg     string
		rc      int
		want    string
		ran     bool // xenstore-control was run
	}{
		{"usage", "1", "", 2, "usage:", false},
		{"no pid file", "", "to-ours", 1, "no xenstore pid file", false},
		{"stub domain", "domid:3\n", "to-ours", 1, "stub domain (dom3), not in dom0: switching it needs a reboot", false},
		{"stub domain, to-c", "domid:3\n", "to-c", 1, "needs a reboot", false},
		{"not a pid", "xyz\n", "status", 1, "holds 'xyz', not a pid", false},
		{"dead pid", "999999999\n", "to-ours", 1, "is not running", false},
		{"oxenstored", strconv.Itoa(oxPid), "to-ours", 1, "runs oxenstored", false},
		{"something else", strconv.Itoa(otherPid), "to-ours", 1, "neither Debian's C xenstored", false},
		{"something else, to-c", strconv.Itoa(otherPid), "to-c", 1, ", not " + ours, false},
		{"C already", strconv.Itoa(cPid), "to-c", 0, "already runs C xenstored", false},
		{"C, status", strconv.Itoa(cPid), "status", 0, "runs " + cBin + " (c)", false},
		{"C refuses", strconv.Itoa(cPid), "to-ours", 1, "serves on", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pf := filepath.Join(t.TempDir(), "xenstore.pid")
			if tc.pidFile != "" {
				if err := os.WriteFile(pf, []byte(tc.pidFile), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			os.Remove(control + ".args")
			cmd := exec.Command("sh", "xsstub-switch")
			if tc.arg != "" {
				cmd.Args = append(cmd.Args, tc.arg)
			}
			cmd.Env = append(os.Environ(), "XSSTUB_SWITCH_PIDFILE="+pf, "XSSTUB_SWITCH_OURS="+ours,
				"XSSTUB_SWITCH_C="+cBin, "XSSTUB_SWITCH_CONTROL="+control, "XSSTUB_CONF=/nonexistent")
			out, err := cmd.CombinedOutput()
			rc := 0
			if ee, ok := err.(*exec.ExitError); ok {
				rc = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if rc != tc.rc || !strings.Contains(string(out), tc.want) {
				t.Errorf("exit %d, output %q; want exit %d with %q", rc, out, tc.rc, tc.want)
			}
			args, _ := os.ReadFile(control + ".args")
			if ran := len(args) > 0; ran != tc.ran {
				t.Errorf("xenstore-control run: %v (%q), want %v", ran, args, tc.ran)
			}
			if tc.ran && string(args) != "live-update -f "+ours+"\n" {
				t.Errorf("xenstore-control got %q", args)
			}
		})
	}
	for _, pid := range []int{cPid, oxPid, otherPid} {
		if err := exec.Command("kill", "-0", strconv.Itoa(pid)).Run(); err != nil {
			t.Errorf("process %d gone after the refusals", pid)
		}
	}
}
