//go:build linux && cgo

package launcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xsstub/xenstored/launcher/xc"
	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xen/gntdev"
	"github.com/xsstub/xenstored/xen/xenbus"
	"github.com/xsstub/xenstored/xsclient"
)

// Sizes of the stub's grant tables. It grants almost nothing itself (its
// console and store pages are the builder's reserved entries), so 4 frames
// as in init-xenstore-domain; it maps one ring page per guest through
// gntdev, and 128 maptrack frames of 256 entries allow 32768 mappings.
const (
	maxGrantFrames    = 4
	maxMaptrackFrames = 128
)

// Paths in dom0.
var (
	xenbusDevPaths    = []string{"/dev/xen/xenbus", "/proc/xen/xenbus"}
	xenstoredSockets  = []string{"/var/run/xenstored/socket", "/run/xenstored/socket"}
	hypervisorTypeSys = "/sys/hypervisor/type"
	capabilitiesProc  = "/proc/xen/capabilities"
)

type launch struct {
	o      Options
	out    io.Writer
	errw   io.Writer
	t0     time.Time
	h      *xc.Handle
	domid  uint32
	made   bool
	pvh    bool
	report StubInfo
}

func (l *launch) say(format string, args ...any) {
	fmt.Fprintf(l.errw, "xenstore-stubdom-launch [%5.1fs]: %s\n", time.Since(l.t0).Seconds(), fmt.Sprintf(format, args...))
}

func run(o Options, stdout, stderr io.Writer) int {
	l := &launch{o: o, out: stdout, errw: stderr, t0: time.Now()}
	code, err := l.start()
	if err != nil {
		fmt.Fprintf(stderr, "xenstore-stubdom-launch: %v\n", err)
		if l.made && code == ExitFail {
			if derr := l.h.Destroy(l.domid); derr != nil {
				fmt.Fprintf(stderr, "xenstore-stubdom-launch: destroying dom%d: %v\n", l.domid, derr)
			} else {
				fmt.Fprintf(stderr, "xenstore-stubdom-launch: destroyed dom%d\n", l.domid)
			}
		}
		l.consoleTail()
	}
	if l.h != nil {
		l.h.Close()
	}
	return code
}

// consoleTail prints the end of the console log after a failure.
func (l *launch) consoleTail() {
	if !l.made || l.o.ConsoleLog == "-" || l.o.ConsoleLog == "none" {
		return
	}
	time.Sleep(300 * time.Millisecond) // the drainer polls every 50 ms
	b, err := os.ReadFile(l.o.ConsoleLog)
	if err != nil || len(b) == 0 {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 25 {
		lines = lines[len(lines)-25:]
	}
	fmt.Fprintf(l.errw, "--- last lines of the stub's console (%s) ---\n", l.o.ConsoleLog)
	for _, s := range lines {
		fmt.Fprintf(l.errw, "  %s\n", s)
	}
}

// onXen explains why the hypervisor interface is missing.
func onXen() error {
	t, err := os.ReadFile(hypervisorTypeSys)
	if err != nil || strings.TrimSpace(string(t)) != "xen" {
		return errors.New("not running on Xen (no /sys/hypervisor/type = xen)")
	}
	c, err := os.ReadFile(capabilitiesProc)
	if err == nil && !strings.Contains(string(c), "control_d") {
		return errors.New("not dom0 (/proc/xen/capabilities lacks control_d)")
	}
	if os.IsNotExist(err) {
		return errors.New("xenfs not mounted on /proc/xen, or the xen privcmd/xenfs modules not loaded")
	}
	return nil
}

// start makes and boots the stub domain, step by step as
// init-xenstore-domain does, and waits until it serves dom0's ring. The
// code says which failures leave the domain to destroy (ExitFail) and
// which only the follow-up (ExitFollow).
func (l *launch) start() (int, error) {
	if err := l.open(); err != nil {
		return ExitFail, err
	}
	be, err := xenbus.OpenBackend()
	if err != nil {
		return ExitFail, fmt.Errorf("%w: dom0's kernel must provide %s (xenbus backend support; xenfs/xen modules loaded, and this must be dom0)", err, xenbus.BackendPath)
	}
	defer be.Close()
	p, err := l.plan()
	if err != nil {
		return ExitFail, err
	}
	dom, err := l.h.NewDom()
	if err != nil {
		return ExitFail, err
	}
	defer dom.Release()
	lay, err := l.loadImage(dom, p)
	if err != nil {
		return ExitFail, err
	}
	consPort, err := l.createDomain(p, lay)
	if err != nil {
		return ExitFail, err
	}
	if err := l.giveDom0Ring(be, dom, consPort); err != nil {
		return ExitFail, err
	}
	if err := l.build(dom, p, lay); err != nil {
		return ExitFail, err
	}
	l.report = StubInfo{DomID: l.domid, Name: l.o.Name, MemoryMiB: l.o.MemoryMiB, MaxMiB: p.maxMiB,
		ConsolePort: consPort, ConsoleGFN: dom.ConsoleGFN()}
	if err := l.unpause(consPort); err != nil {
		return ExitFail, err
	}
	c, err := l.waitStore()
	if err != nil {
		return ExitFail, err
	}
	defer c.Close()
	l.say("xenstore answers")
	return l.followUp(c)
}

// open checks that this is dom0 on Xen, opens the toolstack's handle and
// makes sure nothing else serves xenstore.
func (l *launch) open() error {
	if err := onXen(); err != nil {
		return err
	}
	h, err := xc.Open(l.o.Verbose)
	if err != nil {
		return err
	}
	l.h = h
	l.say("%s", h.Describe())
	return l.checkNoXenstored()
}

// stubPlan is what the host and the kernel decide before anything is
// built.
type stubPlan struct {
	pi     xc.Physinfo
	hap    bool   // the host pages guests with HAP
	maxMiB int    // the domain's memory ceiling
	ssid   uint32 // its security label
	kind   string // "PVH" or "PV"
}

// plan chooses the domain type, the memory ceiling and the label.
func (l *launch) plan() (stubPlan, error) {
	o := l.o
	pi, err := l.h.Physinfo()
	if err != nil {
		return stubPlan{}, err
	}
	ki, err := InspectKernel(o.Kernel)
	if err != nil {
		return stubPlan{}, err
	}
	if l.pvh, err = ChooseType(o.Mode, pi.Capabilities, ki, o.Kernel); err != nil {
		return stubPlan{}, err
	}
	p := stubPlan{pi: pi, hap: pi.Capabilities&xc.CapHAP != 0, ssid: xc.SIDDomU, kind: map[bool]string{true: "PVH", false: "PV"}[l.pvh]}
	if p.maxMiB, err = ResolveMaxmem(o.Maxmem, o.MemoryMiB, pi.TotalPages); err != nil {
		return stubPlan{}, err
	}
	if o.Flask != "" {
		if p.ssid, err = l.h.FlaskSID(o.Flask); err != nil {
			return stubPlan{}, err
		}
	}
	l.say("building %s xenstore domain %q: %d MiB (max %d), kernel %s, ramdisk %s", p.kind, o.Name, o.MemoryMiB, max(p.maxMiB, o.MemoryMiB), o.Kernel, orNone(o.Ramdisk))
	return p, nil
}

// pvhLayout is what a PVH stub gets besides its memory: ACPI tables (Xen's
// own tool builds none, and Linux needs them) and the memory map.
type pvhLayout struct {
	acpi   *ACPITables
	memmap []E820Entry
}

func (y pvhLayout) acpiPages() int {
	if y.acpi == nil {
		return 0
	}
	return len(y.acpi.Page) / pageSize
}

// loadImage gives the builder the kernel and ramdisk and parses them for
// the chosen type; for PVH it makes the ACPI tables and memory map.
func (l *launch) loadImage(dom *xc.Dom, p stubPlan) (pvhLayout, error) {
	o := l.o
	if err := dom.KernelFile(o.Kernel); err != nil {
		return pvhLayout{}, err
	}
	if o.Ramdisk != "" {
		if err := dom.ModuleFile(o.Ramdisk); err != nil {
			return pvhLayout{}, err
		}
	}
	if err := dom.BootXenInit(^uint32(0)); err != nil {
		return pvhLayout{}, err
	}
	if err := dom.ParseImage(l.pvh); err != nil {
		return pvhLayout{}, fmt.Errorf("%w: the kernel cannot boot as %s", err, p.kind)
	}
	if !l.pvh {
		return pvhLayout{}, nil
	}
	if !dom.Feature(xc.XenfeatRSDPUnrestricted) {
		l.say("warning: the kernel does not announce XENFEAT_linux_rsdp_unrestricted; it must take the RSDP from hvm_start_info")
	}
	acpi, err := BuildACPI(ACPIConfig{VCPUs: 1})
	if err != nil {
		return pvhLayout{}, err
	}
	lay := pvhLayout{acpi: acpi}
	lay.memmap, err = PVHLayout{MemoryMiB: o.MemoryMiB, MaxMiB: p.maxMiB, ACPIBase: acpi.Base, ACPIPages: lay.acpiPages()}.MemoryMap()
	if err != nil {
		return pvhLayout{}, err
	}
	dom.SetPVHLayout(o.MemoryMiB, LAPICBase)
	return lay, nil
}

// createDomain creates the (paused) domain with its vCPU, memory limit and
// console event channel, whose port it returns.
func (l *launch) createDomain(p stubPlan, lay pvhLayout) (consPort uint32, err error) {
	h := l.h
	domid, err := h.CreateDomain(xc.CreateConfig{PVH: l.pvh, HAP: p.hap, SSIDRef: p.ssid,
		MaxGrantFrames: maxGrantFrames, MaxMaptrackFrames: maxMaptrackFrames})
	if err != nil {
		return 0, err
	}
	l.domid, l.made = domid, true
	l.say("created dom%d", domid)
	if err := h.MaxVcpus(domid, 1); err != nil {
		return 0, err
	}
	limit := MaxMemKiB(l.o.MemoryMiB, p.maxMiB, l.pvh, lay.acpiPages())
	if err := h.SetMaxMem(domid, limit); err != nil {
		return 0, err
	}
	if consPort, err = h.EvtchnAllocUnbound(domid, 0); err != nil {
		return 0, err
	}
	if !l.pvh {
		if err := h.SetMemmapLimit(domid, limit); err != nil {
			return 0, err
		}
	}
	return consPort, nil
}

// giveDom0Ring hands dom0's xenstore ring to the new domain: dom0's kernel
// grants its ring page under grant ref 1 and allocates a port for it,
// which the stub learns from its command line.
func (l *launch) giveDom0Ring(be *xenbus.Backend, dom *xc.Dom, consPort uint32) error {
	port, err := be.Setup(l.domid)
	if err != nil {
		return err
	}
	cmdline, err := Cmdline(port, l.o.Params, !l.o.NoPrivcmdParam)
	if err != nil {
		return err
	}
	l.say("dom0's ring: event channel %d; command line: %s", port, cmdline)
	dom.SetGuest(l.domid, cmdline, consPort)
	return nil
}

// build fills the domain: memory, image, boot state, grant table, and
// makes it the VIRQ_DOM_EXC handler.
func (l *launch) build(dom *xc.Dom, p stubPlan, lay pvhLayout) error {
	h, o := l.h, l.o
	if err := dom.MemInit(o.MemoryMiB); err != nil {
		return fmt.Errorf("%w (is --memory %d enough for the kernel and ramdisk?)", err, o.MemoryMiB)
	}
	if err := dom.BootMemInit(); err != nil {
		return fmt.Errorf("%w (free host memory: %d MiB)", err, p.pi.FreePages/256)
	}
	if l.pvh {
		var m []xc.E820
		for _, e := range lay.memmap {
			m = append(m, xc.E820{Addr: e.Addr, Size: e.Size, Type: e.Type})
		}
		if err := h.SetMemoryMap(l.domid, m); err != nil {
			return err
		}
		dom.SetACPI(lay.acpi.Page, lay.acpi.Base)
	}
	if err := dom.BuildImage(); err != nil {
		return fmt.Errorf("%w (is --memory %d enough for the kernel and ramdisk?)", err, o.MemoryMiB)
	}
	if err := dom.BootImage(); err != nil {
		return err
	}
	if err := dom.GnttabInit(); err != nil {
		return err
	}
	if l.pvh {
		// The stub's own xenstore page would look connected (it is
		// zeroed) and Linux would wait in xenbus for a xenstored that only
		// its own userspace can start. ~0 makes it defer xenbus instead
		// (drivers/xen/xenbus/xenbus_probe.c, xenbus_init).
		if err := h.HVMParamSet(l.domid, xc.HVMParamStorePFN, ^uint64(0)); err != nil {
			return err
		}
	}
	return h.SetVirqHandler(l.domid, xc.VirqDomExc)
}

// unpause starts draining the console (a full console ring stalls the
// stub's kernel) and lets the domain run.
func (l *launch) unpause(consPort uint32) error {
	if l.o.ConsoleLog != "none" {
		if err := l.startDrain(consPort); err != nil {
			l.say("warning: no console drain: %v (the stub's console may stall)", err)
		}
	}
	if err := l.h.Unpause(l.domid); err != nil {
		return err
	}
	l.say("dom%d unpaused; waiting up to %v for its xenstored", l.domid, l.o.Timeout)
	return nil
}

// followUp does what init-xenstore-domain does once the store answers:
// xl's record of the domain, the stub's nodes, the pid file.
func (l *launch) followUp(c *xsclient.Client) (int, error) {
	if err := StoreStubJSONFor(l.domid, l.pvh); err != nil {
		l.say("warning: %v (xl may not manage the stub domain)", err)
	}
	var failed []string
	for _, n := range Nodes(l.report) {
		if err := c.Write(0, n.Path, []byte(n.Value)); err != nil {
			failed = append(failed, err.Error())
		}
	}
	if len(failed) > 0 {
		return ExitFollow, fmt.Errorf("writing xenstore nodes: %s", strings.Join(failed, "; "))
	}
	if err := WritePIDFile(l.o.PIDFile, l.domid); err != nil {
		return ExitFollow, err
	}
	l.say("dom%d is the xenstore domain; wrote %s", l.domid, l.o.PIDFile)
	fmt.Fprintf(l.out, "%d\n", l.domid)
	return 0, nil
}

// StoreStubJSONFor is xc.StoreStubJSON (a variable for tests).
var StoreStubJSONFor = xc.StoreStubJSON

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func (l *launch) checkNoXenstored() error {
	desc, pidDom, err := RunningXenstored(l.o.PIDFile)
	if err != nil {
		return err
	}
	if desc != "" {
		return fmt.Errorf("a xenstored is already running: %s", desc)
	}
	doms, err := l.h.Domains()
	if err != nil {
		return err
	}
	for _, d := range doms {
		if d.Xenstore && !d.Dying {
			return fmt.Errorf("a xenstore domain is already running: dom%d", d.DomID)
		}
	}
	if pidDom >= 0 {
		l.say("note: stale %s names dom%d, which is not a xenstore domain; replacing it", l.o.PIDFile, pidDom)
	}
	for _, s := range xenstoredSockets {
		if c, err := net.DialTimeout("unix", s, time.Second); err == nil {
			c.Close()
			return fmt.Errorf("a xenstored is already running: it answers on %s", s)
		}
	}
	return nil
}

// waitStore opens dom0's xenbus device and waits until a request through
// it is answered, watching that the stub stays alive meanwhile.
func (l *launch) waitStore() (*xsclient.Client, error) {
	var f *os.File
	var err error
	for _, p := range xenbusDevPaths {
		if f, err = os.OpenFile(p, os.O_RDWR, 0); err == nil {
			break
		}
	}
	if f == nil {
		return nil, fmt.Errorf("xenbus device: %w", err)
	}
	c := xsclient.New(f)
	ctx, cancel := context.WithTimeout(context.Background(), l.o.Timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Do(ctx, wire.Msg{Type: wire.Directory, Payload: wire.JoinStrings("/")})
		done <- err
	}()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	watch := newPanicWatch(l.o.ConsoleLog)
	for {
		select {
		case err := <-done:
			if err != nil {
				c.Close()
				if errors.Is(err, context.DeadlineExceeded) {
					return nil, fmt.Errorf("the stub's xenstored did not answer within %v", l.o.Timeout)
				}
				return nil, fmt.Errorf("first xenstore request: %w", err)
			}
			return c, nil
		case <-tick.C:
			d, ok, err := l.h.Domain(l.domid)
			if err != nil {
				continue // never take a failed query for a dead domain
			}
			if !ok || d.Dying || d.Shutdown {
				c.Close()
				return nil, fmt.Errorf("dom%d stopped before serving xenstore (%s)", l.domid, domState(d, ok))
			}
			if line := watch.check(); line != "" {
				c.Close()
				hint := ""
				if b, err := os.ReadFile(l.o.ConsoleLog); err == nil && bytes.Contains(b, []byte("Initramfs unpacking failed")) {
					hint = fmt.Sprintf(" (it could not unpack the ramdisk: --memory %d is too small)", l.o.MemoryMiB)
				}
				return nil, fmt.Errorf("dom%d's kernel panicked before serving xenstore: %q%s", l.domid, line, hint)
			}
		}
	}
}

func domState(d xc.DomInfo, ok bool) string {
	switch {
	case !ok:
		return "gone"
	case d.Dying:
		return "dying"
	case d.Shutdown:
		reasons := map[int]string{0: "poweroff", 1: "reboot", 2: "suspend", 3: "crash", 4: "watchdog", 5: "soft reset"}
		if r, ok := reasons[d.ShutdownReason]; ok {
			return "shut down: " + r
		}
		return "shut down: reason " + strconv.Itoa(d.ShutdownReason)
	}
	return "running"
}

// startDrain starts this program again as a detached console drainer.
func (l *launch) startDrain(port uint32) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	dst := l.o.ConsoleLog
	cmd := exec.Command(exe, DrainArg, strconv.FormatUint(uint64(l.domid), 10), strconv.FormatUint(uint64(port), 10), dst)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if dst == "-" {
		cmd.Stdout = os.Stdout
		cmd.Stderr = os.Stderr
	} else {
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		cmd.Stdout = f
		cmd.Stderr = f
		defer f.Close()
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	l.say("console of dom%d drained to %s by pid %d until xenconsoled binds port %d", l.domid, dst, cmd.Process.Pid, port)
	return cmd.Process.Release()
}

// drainMain is the console drainer: DOMID PORT DEST. It copies the stub's
// console to stdout (which the launcher pointed at DEST) until someone
// else (xenconsoled) binds the console's event channel or the domain goes.
func drainMain(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("want DOMID PORT DEST, got %q", args)
	}
	domid, err1 := strconv.ParseUint(args[0], 10, 32)
	port, err2 := strconv.ParseUint(args[1], 10, 32)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("bad DOMID or PORT in %q", args)
	}
	h, err := xc.Open(0)
	if err != nil {
		return err
	}
	defer h.Close()
	g, err := gntdev.Open()
	if err != nil {
		return err
	}
	defer g.Close()
	var m *gntdev.Mapping
	for i := 0; ; i++ {
		if m, err = g.Map(uint32(domid), GrantRefConsole); err == nil {
			break
		}
		if i == 100 {
			return fmt.Errorf("mapping dom%d's console page: %w", domid, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer m.Unmap()
	ring := NewConsoleRing(m.Page())
	w := os.Stdout
	var line bytes.Buffer
	for i := 0; ; i++ {
		if _, err := ring.Drain(&line); err != nil {
			return err
		}
		if line.Len() > 0 {
			_, _ = w.Write(line.Bytes())
			line.Reset()
		}
		if i%10 == 0 {
			d, ok, err := h.Domain(uint32(domid))
			if err == nil && (!ok || d.Dying) {
				fmt.Fprintf(w, "\n[xenstore-stubdom-launch: dom%d is gone; console drain ends]\n", domid)
				return nil
			}
			st, rdom, err := h.EvtchnStatus(uint32(domid), uint32(port))
			if err == nil && st == xc.EvtchnStatInterdomain {
				_, _ = ring.Drain(w)
				fmt.Fprintf(w, "\n[xenstore-stubdom-launch: dom%d bound the console (xenconsoled); drain ends]\n", rdom)
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// panicWatch follows the console log for a kernel panic: a panicked PVH
// Linux halts without shutting the domain down.
type panicWatch struct {
	path string
	off  int64
	tail []byte
}

func newPanicWatch(path string) *panicWatch {
	if path == "-" || path == "none" {
		return &panicWatch{}
	}
	return &panicWatch{path: path}
}

func (w *panicWatch) check() string {
	if w.path == "" {
		return ""
	}
	f, err := os.Open(w.path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, w.off, 1<<20))
	if err != nil && len(b) == 0 {
		return ""
	}
	w.off += int64(len(b))
	line, tail := FindPanic(append(w.tail, b...))
	w.tail = tail
	return line
}
