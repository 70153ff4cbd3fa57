package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/domains"
)

// dom0lessBoot is what a xenstore domain started with no control domain's
// ring to serve (--stubdom without --event: Xen's dom0less boot built
// every domain, none started us) found at its start.
type dom0lessBoot struct {
	store, priv uint32
	doms        []xen.DomInfo // every domain that existed, ours included
}

// findDom0less binds VIRQ_DOM_EXC (Xen 4.21+ then reports every domain as
// changed), lists the domains and picks the roles as C xenstored 4.22
// does: the store is the domain Xen flags as xenstore domain (ours), the
// control domain the first with DOMAIN_CAPS_CONTROL, else the store. -m
// and -p override. A release that gives a xenstore domain no list of
// domains (4.18-4.20) leaves it nothing to serve: refused.
func findDom0less(o *Options, xs *xenSide, log *slog.Logger) (*dom0lessBoot, error) {
	if err := xs.rings.WatchDomains(); err != nil {
		return nil, fmt.Errorf("domain deaths could not be noticed: %w", err)
	}
	doms, err := xs.tracker.Existing()
	if errors.Is(err, domains.ErrCannotEnumerate) {
		return nil, fmt.Errorf("no control domain's ring (--event) and no way to find the domains to serve: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("listing the domains to serve: %w", err)
	}
	b, err := dom0lessRoles(doms, o)
	if err != nil {
		return nil, err
	}
	log.Info("dom0less: no control domain's ring given; serving the domains that exist",
		"store", b.store, "priv", b.priv, "domains", len(doms))
	return b, nil
}

// dom0lessRoles picks the store's and the control domain's ids from the
// domains that exist (see findDom0less).
func dom0lessRoles(doms []xen.DomInfo, o *Options) (*dom0lessBoot, error) {
	b := &dom0lessBoot{doms: doms}
	foundStore, foundPriv := o.MasterSet, o.PrivSet
	b.store, b.priv = o.MasterDomid, o.PrivDomid
	for _, d := range doms {
		if d.Dying || d.Gone {
			continue
		}
		if !foundStore && d.XenstoreDomain {
			b.store, foundStore = d.ID, true
		}
		if !foundPriv && d.Control {
			b.priv, foundPriv = d.ID, true
		}
	}
	if !foundStore {
		return nil, errors.New("no domain is flagged as xenstore domain (capabilities 0x4 in the device tree)")
	}
	if !foundPriv {
		b.priv = b.store // as C xenstored 4.22: "priv_domid defaulted to" the store
	}
	return b, nil
}

// introduce connects every domain that existed at the start except ours,
// the control domain first (as C xenstored sets up its structure with
// it), and gives each a home /local/domain/N of its own: with no control
// domain there is no init-dom0less to write it, and a domain that owns no
// node can write nowhere. A domain whose ring cannot be reached is left
// out and logged, as C does; none reached is a refusal, as in C.
func (b *dom0lessBoot) introduce(xs *xenSide, e *store.Engine, log *slog.Logger) error {
	doms := append([]xen.DomInfo(nil), b.doms...)
	sort.SliceStable(doms, func(i, j int) bool { return doms[i].ID == b.priv && doms[j].ID != b.priv })
	n := 0
	for _, d := range doms {
		if d.ID == b.store || d.Dying || d.Shutdown || d.Gone {
			continue
		}
		if err := b.introduceOne(xs, e, d.ID, log); err != nil {
			log.Warn("dom0less: a domain was not introduced", "domid", d.ID, "err", err)
			continue
		}
		n++
	}
	if n == 0 {
		return errors.New("refusing to serve: dom0less, and no domain but ours has a store ring to serve")
	}
	// The domain's memory once it serves: no control domain can ask for
	// CONTROL memreport here.
	log.Info("dom0less: serving", "introduced", n, "memory", strings.TrimSpace(systemReport()))
	return nil
}

func (b *dom0lessBoot) introduceOne(xs *xenSide, e *store.Engine, domid uint32, log *slog.Logger) error {
	port, err := xs.rings.StorePort(domid)
	if err != nil {
		return err
	}
	from := "ring"
	if port == 0 { // Xen 4.22 on Arm leaves the ring's evtchn_port 0
		if port, err = xs.rings.FindStorePort(domid); err != nil {
			return err
		}
		from = "probe"
	}
	// The home first: the domain's xenbus may look in it as soon as
	// its ring is connected. Its memory is asked before, outside the
	// engine's lock; without it the memory nodes are left out (a wrong
	// target would make the guest's balloon driver act on it).
	cur, max, err := xs.tracker.Memory(domid)
	if err != nil {
		log.Warn("dom0less: the domain's memory is unknown; its home has no memory/target", "domid", domid, "err", err)
		cur, max = 0, 0
	}
	if err := makeHome(e, b.priv, domid, cur, max); err != nil {
		return fmt.Errorf("its home: %w", err)
	}
	// Xen built the ring and no server has used it: what the guest
	// queued meanwhile is served (Debian's Linux 6.1 queues a request
	// there when a process writes to /dev/xen/xenbus early; dropping it
	// hung that guest's xenbus for good on Xen 4.22 arm64).
	xs.rings.KeepQueued(domid)
	if err := e.IntroduceDomain(domid, port, 0); err != nil {
		return err
	}
	log.Info("dom0less: introduced", "domid", domid, "port", port, "port_from", from,
		"home", "/local/domain/"+strconv.FormatUint(uint64(domid), 10))
	return nil
}

// homeNode is one node of a dom0less domain's home, relative to it.
// Owned by the domain (guest), else by the control domain with read
// access for the domain, as libxl creates a domain's nodes.
type homeNode struct {
	path, value string
	guest       bool
}

// homeNodes are what a toolstack gives a domain at creation, as Xen's
// init-dom0less writes them for a dom0less domain (libxl's list and
// permissions): what its drivers read (name, domid, memory/target and
// static-max for the balloon driver, control/platform-feature-* for
// xenbus) and the directories it writes in. Left out, since a xenstore
// domain cannot know them: vm and /vm/<uuid> (the toolstack makes up the
// uuid and sets it as the domain's handle, a control-domain hypercall),
// store/ring-ref (a frame number it may not read), cpu/N/availability
// (read by x86 guests only), /libxl/N (the toolstack's own). maxKiB 0: the
// memory is unknown, the memory nodes are left out.
func homeNodes(domid uint32, curKiB, maxKiB uint64) []homeNode {
	id := strconv.FormatUint(uint64(domid), 10)
	nodes := []homeNode{
		{path: "name", value: "dom0less-" + id},
		{path: "domid", value: id},
		{path: "memory"},
	}
	if maxKiB > 0 {
		nodes = append(nodes,
			homeNode{path: "memory/static-max", value: strconv.FormatUint(maxKiB, 10)},
			homeNode{path: "memory/target", value: strconv.FormatUint(curKiB, 10)},
			homeNode{path: "memory/videoram", value: "-1"})
	}
	nodes = append(nodes,
		homeNode{path: "control"},
		homeNode{path: "control/shutdown", guest: true},
		homeNode{path: "control/feature-poweroff", guest: true},
		homeNode{path: "control/feature-reboot", guest: true},
		homeNode{path: "control/feature-suspend", guest: true},
		homeNode{path: "control/sysrq", guest: true},
		homeNode{path: "control/platform-feature-multiprocessor-suspend", value: "1"},
		homeNode{path: "control/platform-feature-xs_reset_watches", value: "1"},
		homeNode{path: "device"})
	for _, d := range []string{"data", "drivers", "feature", "attr", "error"} {
		nodes = append(nodes, homeNode{path: d, guest: true})
	}
	return nodes
}

// makeHome writes /local/domain/N and homeNodes through a connection with
// the control domain's rights, so that the usual checks, accounting and
// watches apply. The home itself is owned by the domain, readable by the
// control domain: there is no toolstack to remove it when the domain
// dies, and a domain's own nodes go with it (libxl owns it instead).
func makeHome(e *store.Engine, priv, domid uint32, curKiB, maxKiB uint64) error {
	c := e.NewConn(priv, true, nil)
	defer c.Close()
	id := strconv.FormatUint(uint64(domid), 10)
	home := "/local/domain/" + id
	ro := "n" + strconv.FormatUint(uint64(priv), 10) + "\x00r" + id + "\x00"
	msgs := []wire.Msg{
		{Type: wire.Mkdir, Payload: []byte(home + "\x00")},
		{Type: wire.SetPerms, Payload: []byte(home + "\x00n" + id + "\x00r" + strconv.FormatUint(uint64(priv), 10) + "\x00")},
	}
	for _, n := range homeNodes(domid, curKiB, maxKiB) {
		path := home + "/" + n.path
		perms := ro
		if n.guest {
			perms = "n" + id + "\x00"
		}
		msgs = append(msgs, wire.Msg{Type: wire.Write, Payload: []byte(path + "\x00" + n.value)},
			wire.Msg{Type: wire.SetPerms, Payload: []byte(path + "\x00" + perms)})
	}
	for _, m := range msgs {
		m.ReqID = 1
		var reply []byte
		c.HandleTake(m, func(msg []byte) bool { reply = append([]byte(nil), msg...); return true })
		path, _, _ := strings.Cut(string(m.Payload), "\x00")
		r, err := wire.Decode(reply)
		if err != nil {
			return fmt.Errorf("%v %s: reply: %w", m.Type, path, err)
		}
		if r.Type == wire.Error {
			return fmt.Errorf("%v %s: %s", m.Type, path, r.Payload)
		}
	}
	return nil
}
