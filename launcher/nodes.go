package launcher

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Node is one xenstore write.
type Node struct{ Path, Value string }

// StubInfo is what the launcher knows about the started stub.
type StubInfo struct {
	DomID       uint32
	Name        string
	MemoryMiB   int
	MaxMiB      int // 0: same as MemoryMiB
	ConsolePort uint32
	ConsoleGFN  uint64 // the console page: GFN for PVH, MFN for PV
}

// xenbusStateInitialising is XenbusStateInitialising.
const xenbusStateInitialising = 1

// Nodes returns what init-xenstore-domain writes once the store answers:
// the stub's domid for tools, its name and memory, and the console
// backend/frontend pair that lets xenconsoled take over the stub's console.
func Nodes(s StubInfo) []Node {
	id := strconv.FormatUint(uint64(s.DomID), 10)
	dom := "/local/domain/" + id
	be := fmt.Sprintf("/local/domain/0/backend/console/%d/0", s.DomID)
	fe := dom + "/console"
	maxKiB := s.MaxMiB
	if maxKiB == 0 {
		maxKiB = s.MemoryMiB
	}
	return []Node{
		{"/tool/xenstored/domid", id},
		{dom + "/domid", id},
		{dom + "/name", s.Name},
		{dom + "/memory/target", strconv.Itoa(s.MemoryMiB * 1024)},
		{dom + "/memory/static-max", strconv.Itoa(maxKiB * 1024)},
		{be + "/frontend-id", id},
		{be + "/frontend", fe},
		{be + "/online", "1"},
		{be + "/state", strconv.Itoa(xenbusStateInitialising)},
		{be + "/protocol", "vt100"},
		{fe + "/backend", be},
		{fe + "/backend-id", "0"},
		{fe + "/limit", "1048576"},
		{fe + "/type", "xenconsoled"},
		{fe + "/output", "pty"},
		{fe + "/tty", ""},
		{fe + "/port", strconv.FormatUint(uint64(s.ConsolePort), 10)},
		{fe + "/ring-ref", strconv.FormatUint(s.ConsoleGFN, 10)},
	}
}

// PIDFileContent is what launch-xenstore's wait finds in the pid file for
// a xenstore domain.
func PIDFileContent(domid uint32) string { return fmt.Sprintf("domid:%d\n", domid) }

// WritePIDFile writes the pid file atomically (its directory is created).
func WritePIDFile(path string, domid uint32) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(PIDFileContent(domid)), 0o644); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}

// RunningXenstored reports a xenstored that the pid file says is running:
// "domid:N" for a xenstore domain (checked by the caller against Xen's
// domain list) or a live process id. A missing file or a stale pid is not
// an error.
func RunningXenstored(path string) (desc string, domid int, err error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return "", -1, nil
	}
	if err != nil {
		return "", -1, fmt.Errorf("pid file %s: %w", path, err)
	}
	s := strings.TrimSpace(string(b))
	if v, ok := strings.CutPrefix(s, "domid:"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return "", -1, nil
		}
		return "", n, nil
	}
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 {
		return "", -1, nil
	}
	if err := syscall.Kill(pid, 0); err == nil || err == syscall.EPERM {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		return fmt.Sprintf("process %d (%s) from %s", pid, strings.TrimSpace(string(comm)), path), -1, nil
	}
	return "", -1, nil
}
