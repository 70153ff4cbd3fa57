package launcher

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestNodes(t *testing.T) {
	ns := Nodes(StubInfo{DomID: 3, Name: "Xenstore", MemoryMiB: 32, ConsolePort: 7, ConsoleGFN: 0xfeffc})
	got := map[string]string{}
	for _, n := range ns {
		if _, dup := got[n.Path]; dup {
			t.Errorf("%s twice", n.Path)
		}
		got[n.Path] = n.Value
	}
	for p, v := range map[string]string{
		"/tool/xenstored/domid":                        "3",
		"/local/domain/3/domid":                        "3",
		"/local/domain/3/name":                         "Xenstore",
		"/local/domain/3/memory/target":                "32768",
		"/local/domain/3/memory/static-max":            "32768",
		"/local/domain/3/console/port":                 "7",
		"/local/domain/3/console/ring-ref":             strconv.Itoa(0xfeffc),
		"/local/domain/3/console/type":                 "xenconsoled",
		"/local/domain/3/console/backend":              "/local/domain/0/backend/console/3/0",
		"/local/domain/0/backend/console/3/0/frontend": "/local/domain/3/console",
		"/local/domain/0/backend/console/3/0/state":    "1",
	} {
		if got[p] != v {
			t.Errorf("%s = %q, want %q", p, got[p], v)
		}
	}
	ns = Nodes(StubInfo{DomID: 3, MemoryMiB: 32, MaxMiB: 64})
	for _, n := range ns {
		if strings.HasSuffix(n.Path, "static-max") && n.Value != "65536" {
			t.Errorf("static-max %s", n.Value)
		}
	}
}

func TestPIDFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "run", "xen", "xenstored.pid")
	if d, id, err := RunningXenstored(p); d != "" || id != -1 || err != nil {
		t.Fatal(d, id, err)
	}
	if err := WritePIDFile(p, 5); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "domid:5\n" {
		t.Fatalf("%q", b)
	}
	if d, id, err := RunningXenstored(p); d != "" || id != 5 || err != nil {
		t.Fatal(d, id, err)
	}
	// A live process.
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	os.WriteFile(p, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	if d, _, _ := RunningXenstored(p); !strings.Contains(d, "sleep") {
		t.Errorf("live process: %q", d)
	}
	// A stale one.
	os.WriteFile(p, []byte("999999999\n"), 0o644)
	if d, id, err := RunningXenstored(p); d != "" || id != -1 || err != nil {
		t.Error(d, id, err)
	}
}
