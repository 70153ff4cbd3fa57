package bench

// Scale measurements (`make scale`, bench/cmd/xsscale): how the engine's
// per-operation cost and memory behave as the tree and the number of
// domains grow. This file holds the pieces shared by the tree scale
// (scale_tree.go), the domain scale over fake rings
// (scale_domains_linux.go), the process memory comparison (scale_mem.go)
// and the ring benchmarks (ring_linux.go): an in-process connection to the
// engine, the node set of a typical guest, memory readings and timing.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/wire"
)

// EngineConn is a connection served in-process by an engine, used
// synchronously from one goroutine: Call hands a request to the engine and
// takes output until its reply, throwing watch events away. Events that
// arrive between calls wait in the connection's queue until the next call.
type EngineConn struct {
	C      *store.Conn
	req    uint32
	Events int // watch events seen (and discarded)
}

// NewEngineConn opens a connection for domid (priv: a socket client, i.e.
// the control domain's tools).
func NewEngineConn(e *store.Engine, domid uint32, priv bool) *EngineConn {
	return &EngineConn{C: e.NewConn(domid, priv, nil)}
}

// Call sends one request and returns its reply payload; an XS_ERROR reply
// is returned as an error naming the errno.
func (c *EngineConn) Call(typ wire.Type, tx uint32, payload []byte) ([]byte, error) {
	c.req++
	id := c.req
	c.C.Handle(wire.Msg{Type: typ, ReqID: id, TxID: tx, Payload: payload})
	for {
		b, ok := c.C.NextOutput()
		if !ok {
			return nil, fmt.Errorf("%v: no reply", typ)
		}
		h, err := wire.ParseHeader(b)
		if err != nil {
			return nil, err
		}
		if h.Type == wire.WatchEvent {
			c.Events++
			continue
		}
		if h.ReqID != id {
			continue
		}
		p := b[wire.HeaderSize:]
		if h.Type == wire.Error {
			return nil, fmt.Errorf("%v: %s", typ, strings.TrimRight(string(p), "\x00"))
		}
		return p, nil
	}
}

// Do runs one prepared request (no result wanted) and reports errors.
func (c *EngineConn) Do(r Req) error {
	_, err := c.Call(r.Type, 0, r.Payload)
	return err
}

// Req is a prepared request.
type Req struct {
	Type    wire.Type
	Payload []byte
}

// GuestNode is one node of a guest's set: created with Mkdir when Dir,
// else written with Value; Perms (if any) are set right after creation.
// Nodes created later under a node inherit its permissions, as in
// xenstore.
type GuestNode struct {
	Path  string
	Value string
	Dir   bool
	Perms []string // e.g. "n0", "r7"; nil keeps the inherited ones
}

// GuestUUID is the fake UUID of domain domid.
func GuestUUID(domid uint32) string {
	return fmt.Sprintf("00000000-0000-4000-8000-%012d", domid)
}

// GuestTree returns the nodes the toolstack (xl/libxl), the backends and a
// Linux guest's frontends leave in the store for one running PV guest with
// one network and one disk device: about 100 nodes under
// /local/domain/N, the dom0 backend directories, /vm/UUID and
// /libxl/N, with libxl's permissions (the domain's home readable by it,
// the writable parts owned by it, backend nodes owned by dom0 and readable
// by the guest, frontend nodes owned by the guest and readable by dom0).
func GuestTree(domid uint32) []GuestNode {
	n := strconv.FormatUint(uint64(domid), 10)
	ro := []string{"n0", "r" + n} // dom0's, guest may read
	rw := []string{"n" + n}       // the guest's own
	fe := []string{"n" + n, "r0"} // frontend: the guest's, dom0 reads
	home := "/local/domain/" + n
	uuid := GuestUUID(domid)
	var t []GuestNode
	dir := func(p string, perms []string) { t = append(t, GuestNode{Path: p, Dir: true, Perms: perms}) }
	val := func(p, v string) { t = append(t, GuestNode{Path: p, Value: v}) }
	vals := func(base string, kv ...string) {
		for i := 0; i+1 < len(kv); i += 2 {
			val(base+"/"+kv[i], kv[i+1])
		}
	}
	mac := fmt.Sprintf("00:16:3e:%02x:%02x:%02x", domid>>16&0xff, domid>>8&0xff, domid&0xff)
	vifBE := "/local/domain/0/backend/vif/" + n + "/0"
	vbdBE := "/local/domain/0/backend/vbd/" + n + "/51712"

	// The home directory (libxl__domain_make).
	dir(home, ro)
	vals(home, "name", "guest"+n, "domid", n, "vm", "/vm/"+uuid)
	dir(home+"/cpu", nil)
	vals(home+"/cpu", "0/availability", "online", "1/availability", "online")
	dir(home+"/memory", rw)
	vals(home+"/memory", "static-max", "524288", "target", "524288", "videoram", "-1")
	for _, d := range []string{"device", "data", "drivers", "attr", "error", "feature"} {
		dir(home+"/"+d, rw)
	}
	vals(home+"/data", "counter", "0", "updated", "0")
	vals(home+"/drivers", "0", "Linux 6.1.0-13-amd64")
	val(home+"/device/suspend/event-channel", "")
	dir(home+"/control", ro)
	for _, k := range []string{"shutdown", "feature-poweroff", "feature-reboot", "feature-suspend", "sysrq"} {
		t = append(t, GuestNode{Path: home + "/control/" + k, Value: "1", Perms: rw})
	}
	dir(home+"/store", nil)
	vals(home+"/store", "ring-ref", "1", "port", "1")
	dir(home+"/console", nil)
	vals(home+"/console", "backend", "/local/domain/0/backend/console/"+n+"/0", "backend-id", "0",
		"limit", "1048576", "type", "xenconsoled", "ring-ref", "2", "port", "2")

	// The network device: backend (dom0's) then frontend (the guest's).
	dir(vifBE, ro)
	vals(vifBE, "frontend", home+"/device/vif/0", "frontend-id", n, "online", "1", "state", "4",
		"script", "/etc/xen/scripts/vif-bridge", "mac", mac, "bridge", "xenbr0", "handle", "0", "type", "vif",
		"hotplug-status", "connected", "feature-sg", "1", "feature-gso-tcpv4", "1", "feature-rx-copy", "1",
		"vifname", "vif"+n+".0")
	dir(home+"/device/vif/0", fe)
	vals(home+"/device/vif/0", "backend", vifBE, "backend-id", "0", "handle", "0", "mac", mac, "mtu", "1500",
		"state", "4", "tx-ring-ref", "8", "rx-ring-ref", "9", "event-channel", "5", "request-rx-copy", "1",
		"feature-rx-notify", "1", "feature-sg", "1", "feature-gso-tcpv4", "1")

	// The disk.
	dir(vbdBE, ro)
	vals(vbdBE, "frontend", home+"/device/vbd/51712", "frontend-id", n, "params", "/dev/vg0/guest"+n,
		"type", "phy", "mode", "w", "online", "1", "state", "4", "dev", "xvda", "device-type", "disk",
		"physical-device", "fe:"+n, "hotplug-status", "connected", "sectors", "20971520")
	dir(home+"/device/vbd/51712", fe)
	vals(home+"/device/vbd/51712", "backend", vbdBE, "backend-id", "0", "virtual-device", "51712",
		"device-type", "disk", "state", "4", "ring-ref", "10", "event-channel", "6", "protocol", "x86_64-abi",
		"feature-persistent", "1")

	// The VM's toolstack records.
	dir("/vm/"+uuid, ro)
	vals("/vm/"+uuid, "name", "guest"+n, "uuid", uuid, "start_time", "1764000000.00")
	dir("/libxl/"+n, []string{"n0"})
	vals("/libxl/"+n, "type", "pv", "dm-version", "qemu_xen")
	return t
}

// GuestWatches are the watches a Linux PV guest registers on its own
// connection (paths relative to its home, or absolute): the xenbus
// frontend bus, the shutdown and sysrq handlers, the balloon target, vCPU
// hotplug, and each frontend's watch on its backend's state.
func GuestWatches(domid uint32) []string {
	n := strconv.FormatUint(uint64(domid), 10)
	return []string{"device", "control/shutdown", "control/sysrq", "memory/target", "cpu",
		"/local/domain/0/backend/vif/" + n + "/0/state", "/local/domain/0/backend/vbd/" + n + "/51712/state"}
}

// BackendWatches are dom0's per-guest watches: each backend watches its
// frontend's state.
func BackendWatches(domid uint32) []string {
	n := strconv.FormatUint(uint64(domid), 10)
	return []string{"/local/domain/" + n + "/device/vif/0/state", "/local/domain/" + n + "/device/vbd/51712/state"}
}

// Dom0Watches are dom0's global watches (backend buses, xl's domain
// watches); registered once.
var Dom0Watches = []string{"/local/domain/0/backend", "@releaseDomain", "@introduceDomain"}

// guestTreeNodes counts the nodes GuestTree creates in an otherwise empty
// store, directories made implicitly included (computed once).
var guestTreeNodes = func() int {
	seen := map[string]bool{}
	for _, g := range GuestTree(1) {
		for p := g.Path; p != "/" && !seen[p]; p = parentOf(p) {
			seen[p] = true
		}
	}
	// Ancestors shared by every guest are not the guest's own.
	for _, shared := range []string{"/local", "/local/domain", "/local/domain/0", "/local/domain/0/backend",
		"/local/domain/0/backend/vif", "/local/domain/0/backend/vbd", "/vm", "/libxl"} {
		delete(seen, shared)
	}
	return len(seen)
}()

// GuestTreeNodes is how many nodes one guest adds to the store.
func GuestTreeNodes() int { return guestTreeNodes }

func parentOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

// CreateGuest writes GuestTree(domid) through c (a privileged connection).
func CreateGuest(c *EngineConn, domid uint32) error {
	for _, g := range GuestTree(domid) {
		var err error
		if g.Dir {
			_, err = c.Call(wire.Mkdir, 0, wire.JoinStrings(g.Path))
		} else {
			_, err = c.Call(wire.Write, 0, append(wire.JoinStrings(g.Path), g.Value...))
		}
		if err == nil && g.Perms != nil {
			_, err = c.Call(wire.SetPerms, 0, wire.JoinStrings(append([]string{g.Path}, g.Perms...)...))
		}
		if err != nil {
			return fmt.Errorf("guest %d: %s: %w", domid, g.Path, err)
		}
	}
	return nil
}

// DestroyGuest removes what CreateGuest wrote, as xl destroy does, and
// releases the domain (RELEASE: the store then drops whatever else the
// domain owned).
func DestroyGuest(c *EngineConn, domid uint32) error {
	n := strconv.FormatUint(uint64(domid), 10)
	for _, p := range []string{"/local/domain/" + n, "/local/domain/0/backend/vif/" + n, "/local/domain/0/backend/vbd/" + n,
		"/vm/" + GuestUUID(domid), "/libxl/" + n} {
		if _, err := c.Call(wire.Rm, 0, wire.JoinStrings(p)); err != nil {
			return fmt.Errorf("destroy guest %d: %w", domid, err)
		}
	}
	if _, err := c.Call(wire.Release, 0, wire.JoinStrings(n)); err != nil {
		return fmt.Errorf("destroy guest %d: %w", domid, err)
	}
	return nil
}

// Mem is one memory reading of this process.
type Mem struct {
	HeapInuse uint64 // Go heap in use after a full collection
	RSS       uint64 // VmRSS
	RSSAnon   uint64 // RssAnon: private anonymous pages (the Go heap, stacks)
}

// ReadMem collects garbage twice (so that only live data counts), returns
// free memory to the system (so that RSS follows the live heap) and reads
// the Go heap and /proc/self/status.
func ReadMem() Mem {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st, _ := ProcStatus(os.Getpid())
	return Mem{HeapInuse: ms.HeapInuse, RSS: st["VmRSS"], RSSAnon: st["RssAnon"]}
}

// ProcStatus returns the kB-valued fields of /proc/PID/status in bytes.
func ProcStatus(pid int) (map[string]uint64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 2 && fs[1] == "kB" {
			if n, err := strconv.ParseUint(fs[0], 10, 64); err == nil {
				m[k] = n * 1024
			}
		}
	}
	return m, sc.Err()
}

// RaiseFDLimit raises RLIMIT_NOFILE to want descriptors: the soft limit up
// to the hard one, and the hard one too when the process may (root). It
// returns the soft limit in force afterwards.
func RaiseFDLimit(want uint64) (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	if r.Cur >= want {
		return r.Cur, nil
	}
	if r.Max < want {
		nr := syscall.Rlimit{Cur: want, Max: want}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &nr); err == nil {
			return want, nil
		}
	}
	nr := syscall.Rlimit{Cur: min(want, r.Max), Max: r.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &nr); err != nil {
		return r.Cur, err
	}
	return nr.Cur, nil
}

// OpenFDs counts this process's open descriptors.
func OpenFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}

// timeOps runs f(i) for i in [0, n) and returns the mean time per call; it
// repeats the whole batch (best of reps) to damp the machine's noise.
func timeOps(n, reps int, f func(i int) error) (time.Duration, error) {
	best := time.Duration(0)
	for r := 0; r < reps; r++ {
		start := time.Now()
		for i := 0; i < n; i++ {
			if err := f(i); err != nil {
				return 0, err
			}
		}
		if d := time.Since(start) / time.Duration(n); best == 0 || d < best {
			best = d
		}
	}
	return best, nil
}

// ErrSkipped marks a measurement that could not run here (a missing
// binary, too few descriptors).
var ErrSkipped = errors.New("skipped")

// fmtBytes prints a byte count in B, KiB or MiB.
func fmtBytes(b float64) string {
	switch {
	case b >= 10*1024*1024:
		return fmt.Sprintf("%.0f MiB", b/1024/1024)
	case b >= 10*1024:
		return fmt.Sprintf("%.0f KiB", b/1024)
	}
	return fmt.Sprintf("%.0f B", b)
}

// fmtNs prints a duration in ns or µs.
func fmtNs(d time.Duration) string {
	if d < 10*time.Microsecond {
		return fmt.Sprintf("%.2f µs", float64(d)/1e3)
	}
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.1f µs", float64(d)/1e3)
	}
	return fmt.Sprintf("%.1f ms", float64(d)/1e6)
}

// table renders rows as an aligned plain-text table, or Markdown when md.
func table(md bool, header []string, rows [][]string) string {
	var b strings.Builder
	if md {
		b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
		for i := range header {
			if i == 0 {
				b.WriteString("---|")
			} else {
				b.WriteString("---:|")
			}
		}
		b.WriteString("\n")
		for _, r := range rows {
			b.WriteString("| " + strings.Join(r, " | ") + " |\n")
		}
		return b.String()
	}
	w := make([]int, len(header))
	for i, h := range header {
		w[i] = len([]rune(h))
	}
	for _, r := range rows {
		for i, c := range r {
			w[i] = max(w[i], len([]rune(c)))
		}
	}
	line := func(r []string) {
		for i, c := range r {
			pad := strings.Repeat(" ", w[i]-len([]rune(c)))
			if i == 0 {
				b.WriteString(c + pad)
			} else {
				b.WriteString("  " + pad + c)
			}
		}
		b.WriteString("\n")
	}
	line(header)
	for _, r := range rows {
		line(r)
	}
	return b.String()
}

// discardLogger is the engines' logger here: the measurements log nothing.
func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
