package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xsstub/xenstored/transport/xenring/xenringtest"
	"github.com/xsstub/xenstored/xen/fake"
)

// The test binary doubles as the fakeguest program when this is set, so
// the guest runs as a separate process without a build step.
const runAsGuest = "FAKEGUEST_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runAsGuest) == "1" {
		args := os.Args[1:]
		for len(args) > 0 && strings.HasPrefix(args[0], "-test.") {
			args = args[1:]
		}
		os.Exit(run(args, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// world is the real ring transport and store engine over a fake
// hypervisor (xenringtest), with a dom0 connection playing the toolstack.
type world struct {
	*xenringtest.Rig
	d0 *xenringtest.Dom0
}

func newWorld(t *testing.T) *world {
	t.Helper()
	r := xenringtest.New(t, xenringtest.Options{})
	return &world{Rig: r, d0: r.Dom0()}
}

// domain does what a toolstack does before a guest runs: it creates
// domain domid, introduces it and makes its home (/local/domain/<domid>,
// which the guest's relative paths name).
func (w *world) domain(t *testing.T, domid uint32) *fake.Domain {
	t.Helper()
	d, err := w.H.NewDomain(domid)
	if err != nil {
		t.Fatal(err)
	}
	w.Introduce(d)
	w.d0.MakeHome(t, domid)
	return d
}

// guest makes domain domid and runs bin as its guest (guestOf).
func (w *world) guest(t *testing.T, bin string, env []string, domid uint32, script ...string) (string, string, error) {
	t.Helper()
	return guestOf(t, w.domain(t, domid), bin, env, script...)
}

// guestOf runs bin as d's guest in a separate process with script lines
// on stdin and returns its output.
func guestOf(t *testing.T, d *fake.Domain, bin string, env []string, script ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(strings.Join(script, "\n") + "\n")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done, err := d.ConfigureCmd(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done()
	timer := time.AfterFunc(15*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err = cmd.Wait()
	return out.String(), errb.String(), err
}

func TestScriptInSeparateProcess(t *testing.T) {
	w := newWorld(t)
	self := []string{runAsGuest + "=1"}
	tests := []struct {
		name   string
		script []string
		want   string
	}{
		{"write read", []string{"write a b", "read a"}, "ok\nvalue b\n"},
		// rm of a missing node whose parent exists is OK (as in C
		// xenstored), hence nope/x; /a is outside the guest's home.
		{"errors are results", []string{"read nope", "rm nope/x", "write /a b"}, "error ENOENT\nerror ENOENT\nerror EACCES\n"},
		{"directory", []string{"# comment", "", "write d/x 1", "mkdir d/y", "dir d"}, "ok\nok\ndir x y\n"},
		{"watch", []string{"watch w t", "event", "write w/k v", "event"}, "ok\nevent w t\nok\nevent w/k t\n"},
		{"spaces in value", []string{"write s hello  world", "read s"}, "ok\nvalue hello  world\n"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, err := w.guest(t, os.Args[0], self, uint32(10+i), tt.script...)
			if err != nil {
				t.Fatalf("guest: %v; stderr: %s", err, errs)
			}
			if out != tt.want {
				t.Errorf("output %q, want %q", out, tt.want)
			}
		})
	}
}

// TestDataSharedAcrossGuests: two guest processes see one store: what
// one writes to a node dom0 shared between them, the other reads.
func TestDataSharedAcrossGuests(t *testing.T) {
	w := newWorld(t)
	self := []string{runAsGuest + "=1"}
	d1, d2 := w.domain(t, 1), w.domain(t, 2)
	w.d0.Share(t, "/shared", 1, 2)
	if out, errs, err := guestOf(t, d1, os.Args[0], self, "write /shared 42"); err != nil || out != "ok\n" {
		t.Fatalf("first guest: %q %v %s", out, err, errs)
	}
	if out, errs, err := guestOf(t, d2, os.Args[0], self, "read /shared"); err != nil || out != "value 42\n" {
		t.Fatalf("second guest: %q %v %s", out, err, errs)
	}
}

func TestBadScriptAndNoAttach(t *testing.T) {
	w := newWorld(t)
	self := []string{runAsGuest + "=1"}
	_, errs, err := w.guest(t, os.Args[0], self, 1, "frob")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(errs, "unknown command") {
		t.Fatalf("bad script: %v, %q", err, errs)
	}
	// Without ConfigureCmd there is nothing to attach to.
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), runAsGuest+"=1", fake.GuestEnv+"=")
	errOut, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("no attach: %v, %s", err, errOut)
	}
}

// TestBuiltBinary builds the real command once and runs a script with it,
// so the main package itself is covered.
func TestBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH")
	}
	bin := filepath.Join(t.TempDir(), "fakeguest")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	w := newWorld(t)
	out, errs, err := w.guest(t, bin, nil, 3, "write b 1", "read b")
	if err != nil || out != "ok\nvalue 1\n" {
		t.Fatalf("fakeguest: %q, %v, %s", out, err, errs)
	}
}
