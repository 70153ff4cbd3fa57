package store

import (
	"sort"
	"strconv"
	"syscall"
)

// Server features (docs/misc/xenstore-ring.txt) this store offers.
const (
	FeatureReconnection = 1
	FeatureError        = 2
	FeatureWatchDepth   = 4
	FeatureDomidAny     = 8
	// Features the store supports for every domain.
	SupportedFeatures = FeatureReconnection | FeatureError | FeatureWatchDepth | FeatureDomidAny
)

// Domain is the engine's record of one domain: whether it is introduced,
// its ring parameters, features, quotas and resource use.
type Domain struct {
	ID         uint32
	Introduced bool
	Port       uint32
	GFN        uint64
	Features   uint32
	shutdown   bool    // @releaseDomain already fired for a shutdown
	target     *uint32 // SET_TARGET: this domain acts for *target
	quotas     Quotas
	conn       *Conn // the ring connection, when a Platform serves one

	credit writeCredit // XSA-206 write rate limit

	// Usage, as the quotas count it.
	nodes   int // nodes owned
	watches int
	txns    int
	memory  int
}

// domainLocked returns the record for domid, creating it with the global
// quotas.
func (e *Engine) domainLocked(domid uint32) *Domain {
	d := e.domains[domid]
	if d == nil {
		d = &Domain{ID: domid, quotas: e.quotas, Features: SupportedFeatures}
		e.domains[domid] = d
		if e.jr.active {
			e.jr.domains = append(e.jr.domains, domid)
		}
	}
	return d
}

// existingDomainLocked returns the record for a domain that exists (per the
// Platform), or nil. It mirrors C xenstored's find_or_alloc_existing_domain.
func (e *Engine) existingDomainLocked(domid uint32) *Domain {
	if d := e.domains[domid]; d != nil {
		return d
	}
	if !e.domainExists(domid) {
		return nil
	}
	return e.domainLocked(domid)
}

func (e *Engine) domainExists(domid uint32) bool {
	if domid == e.cfg.PrivDomid || domid == e.cfg.StoreDomid {
		return true
	}
	if domid >= 0x7ff0 { // DOMID_FIRST_RESERVED and above never exist
		return false
	}
	if d := e.domains[domid]; d != nil && d.Introduced {
		return true // introduced domains exist until released
	}
	if e.cfg.Platform == nil {
		return true
	}
	return e.cfg.Platform.DomainExists(domid)
}

// unprivileged reports whether quota and permission checks apply to c.
func (c *Conn) unprivileged() bool { return !c.priv }

// quota is the hard limit of q for c's domain; 0 means unlimited. The
// control domain and socket clients are exempt, as in C xenstored, except
// for the queue bounds, which every connection obeys.
func (e *Engine) quota(c *Conn, q Quota) int {
	if c == nil || !c.unprivileged() {
		return 0
	}
	if d := e.domains[c.domid]; d != nil {
		return d.quotas.Hard[q]
	}
	return e.quotas.Hard[q]
}

// quotaExceeded logs a breach loudly (silent quota failures are the most
// common complaint about xenstored) and returns the error for the client.
func (e *Engine) quotaExceeded(c *Conn, q Quota, have, limit int, err syscall.Errno) error {
	e.log.Warn("quota exceeded", "domid", c.domid, "conn", c.id, "quota", q.String(), "value", have, "limit", limit)
	return err
}

// checkQuota fails when adding add to have would pass c's hard limit of q.
func (e *Engine) checkQuota(c *Conn, q Quota, have, add int) error {
	limit := e.quota(c, q)
	if limit > 0 && have+add > limit {
		return e.quotaExceeded(c, q, have+add, limit, syscall.ENOSPC)
	}
	return nil
}

// permFor computes c's access to a node with perms ps (C perm_for_conn).
func (e *Engine) permFor(c *Conn, ps Perms) uint8 {
	const all = PermRead | PermWrite | permOwner
	if c == nil || !c.unprivileged() || len(ps) == 0 {
		return all
	}
	var target uint32 = DomidInvalid
	if d := e.domains[c.domid]; d != nil && d.target != nil {
		target = *d.target
	}
	allows := func(id uint32) bool { return id == c.domid || id == target || id == DomidAny }
	if allows(ps[0].ID) {
		return all
	}
	for _, p := range ps[1:] {
		if !p.Ignore && allows(p.ID) {
			return p.Access
		}
	}
	return ps[0].Access
}

// introduce handles INTRODUCE: <domid>|<gfn>|<evtchn>|.
func (e *Engine) introduce(c *Conn, args []string) ([]byte, error) {
	if len(args) < 3 {
		return nil, syscall.EINVAL
	}
	domid, err := parseDomid(args[0])
	if err != nil {
		return nil, err
	}
	gfn, _ := strconv.ParseInt(args[1], 10, 64)
	port := looseDomid(args[2]) // C: atoi into an unsigned port
	if port == 0 || domid >= 0x7ff0 {
		return nil, syscall.EINVAL
	}
	e.commitPoint("domain introduction")
	d := e.domainLocked(domid)
	if d.conn != nil {
		// Re-introduction rebinds the event channel (used after resume).
		d.Port = port
		e.cfg.Platform.DetachRing(d.conn)
		wake, err := e.cfg.Platform.AttachRing(d.conn, d.Port, d.GFN)
		if err != nil {
			e.log.Error("re-introduce: attach ring failed", "domid", domid, "err", err)
			return nil, syscall.EINVAL
		}
		d.conn.wake = wake
		return ok()
	}
	d.Port, d.GFN = port, uint64(gfn)
	// The store's own domain has no ring to serve (unless it is also the
	// control domain, as for a daemon in dom0).
	own := domid == e.cfg.StoreDomid && domid != e.cfg.PrivDomid
	if e.cfg.Platform != nil && !own {
		dc := e.newConnLocked(domid, domid == e.cfg.PrivDomid, nil)
		dc.dom = d
		wake, err := e.cfg.Platform.AttachRing(dc, d.Port, d.GFN)
		if err != nil {
			e.closeConnLocked(dc)
			e.log.Error("introduce: cannot attach ring", "domid", domid, "port", port, "err", err)
			return nil, syscall.EINVAL
		}
		dc.wake = wake
		d.conn = dc
	}
	wasIntroduced := d.Introduced
	d.Introduced = true
	d.shutdown = false
	e.log.Info("domain introduced", "domid", domid, "port", port)
	if domid != e.cfg.PrivDomid && !wasIntroduced {
		e.fireSpecial("@introduceDomain", domid, true, true)
	}
	return ok()
}

// IntroduceDomain introduces a domain as XS_INTRODUCE does; the daemon uses
// it for the control domain's own ring in stub-domain mode.
func (e *Engine) IntroduceDomain(domid, port uint32, gfn uint64) error {
	if p, ok := e.cfg.Platform.(RingPreparer); ok && domid < 0x7ff0 {
		p.PrepareRing(domid) // outside the lock, as for INTRODUCE
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, err := e.introduce(nil, []string{strconv.FormatUint(uint64(domid), 10), strconv.FormatUint(gfn, 10), strconv.FormatUint(uint64(port), 10)})
	return err
}

// onearg domain operations (RELEASE, RESUME) refuse the store's and the
// control domain's own records and unknown domains.
func (e *Engine) introducedDomain(args []string, oneArg bool) (*Domain, error) {
	if len(args) != 1 || !oneArg {
		return nil, syscall.EINVAL
	}
	domid, err := parseDomid(args[0])
	if err != nil {
		return nil, err
	}
	if domid == 0 || domid == e.cfg.PrivDomid || domid == e.cfg.StoreDomid {
		return nil, syscall.EINVAL
	}
	d := e.domains[domid]
	if d == nil || !d.Introduced {
		return nil, syscall.ENOENT
	}
	return d, nil
}

// release handles RELEASE and domain death: the domain's connection goes,
// its nodes are removed (unless KeepOrphans), permission entries naming it
// are dropped, its accounting is reset, and @releaseDomain fires.
func (e *Engine) releaseDomainLocked(d *Domain) {
	e.commitPoint("domain release")
	if d.conn != nil {
		dc := d.conn
		// Avoid events for the domain's own nodes being queued to it.
		e.resetWatchesLocked(dc)
		if e.cfg.Platform != nil {
			e.cfg.Platform.DetachRing(dc)
		}
		e.closeConnLocked(dc)
	}
	e.removeDomainNodes(d.ID)
	wasIntroduced := d.Introduced
	// Drop targets naming this domain (XSA-233: a domain and its device
	// model may die together in any order).
	for _, o := range e.domains {
		if o.target != nil && *o.target == d.ID {
			o.target = nil
		}
	}
	delete(e.domains, d.ID) // XSA-483: a reused domid starts afresh
	e.log.Info("domain released", "domid", d.ID)
	if wasIntroduced {
		e.fireSpecial("@releaseDomain", d.ID, true, true)
	}
}

// removeDomainNodes deletes nodes owned by domid and drops permission
// entries naming it, walking the tree iteratively (XSA-418, XSA-322,
// XSA-419).
func (e *Engine) removeDomainNodes(domid uint32) {
	if domid == e.cfg.PrivDomid {
		return
	}
	// Only nodes whose permissions name the domain matter: those in its
	// home directory (walked) and those the index lists elsewhere, which
	// keeps this proportional to the domain, not to the store. Parents
	// sort before their children, so a removed subtree is skipped.
	paths := make([]string, 0, len(e.mentions[domid]))
	for p := range e.mentions[domid] {
		paths = append(paths, p)
	}
	for stack := []string{domainPath(domid)}; len(stack) > 0; {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n := e.nodes.get(p)
		if n == nil {
			continue
		}
		if n.perms.names(domid) {
			paths = append(paths, p)
		}
		eachChild(n.children, func(ch string) { stack = append(stack, childPath(p, ch)) })
	}
	sort.Slice(paths, func(i, j int) bool {
		return len(paths[i]) < len(paths[j]) || len(paths[i]) == len(paths[j]) && paths[i] < paths[j]
	})
	for _, p := range paths {
		n := e.nodes.get(p)
		if n == nil {
			continue
		}
		if n.perms.Owner() == domid && p != "/" && !isSpecial(p) && !e.cfg.KeepOrphans {
			if err := e.removeTree(nil, nil, p); err != nil {
				e.log.Error("cannot remove orphaned node", "path", p, "err", err)
			}
			continue
		}
		// As C xenstored 4.22 (domain_tree_remove_sub): every node loses
		// its entries for the domain, so a new domain with the same id
		// inherits none (before 4.22 C dropped them only from the special
		// nodes and kept the others listed but ignored: seen on Xen 4.22
		// in the e2e's domid reuse, where C lists none). A kept orphan
		// goes to the control domain. The generation changes, so a
		// transaction holding the old list cannot commit it back.
		changed, ok := dropDomainPerms(n, domid, e.cfg.PrivDomid)
		if ok {
			e.setLive(p, changed)
		}
	}
}

// dropDomainPerms returns a copy of n without entries naming domid (and
// with the control domain as owner if domid owned it), or ok=false if n does
// not mention domid.
func dropDomainPerms(n *node, domid, priv uint32) (*node, bool) {
	if !n.perms.names(domid) {
		return nil, false
	}
	c := n.clone()
	c.perms = c.perms.clone()
	if c.perms[0].ID == domid {
		c.perms[0].ID = priv
	}
	kept := c.perms[:1]
	for _, p := range c.perms[1:] {
		if p.ID != domid {
			kept = append(kept, p)
		}
	}
	c.perms = kept
	return c, true
}

// DomainGone is called by the platform when a domain died or shut down
// (it scans on VIRQ_DOM_EXC). dead: the domain is gone; otherwise it shut
// down, which fires @releaseDomain once until RESUME.
func (e *Engine) DomainGone(domid uint32, dead bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if domid == 0 || domid == e.cfg.StoreDomid {
		return // a scan missing us or dom0 is not death
	}
	d := e.domains[domid]
	if d == nil || !d.Introduced {
		// Never introduced, but it may have a record or be named in
		// permissions: those entries must not pass to a new domain with
		// the same id.
		if dead && (d != nil || len(e.mentions[domid]) > 0) {
			e.removeDomainNodes(domid)
			delete(e.domains, domid)
		}
		return
	}
	if !dead {
		if !d.shutdown {
			d.shutdown = true
			e.fireSpecial("@releaseDomain", domid, false, true)
			e.fireSpecial("@releaseDomain", domid, true, false)
		}
		return
	}
	e.releaseDomainLocked(d)
}

// MarkBroken is called by a ring transport whose guest corrupted its ring
// (XSA-325): the connection stops being served and loses its watches and
// transactions, but the domain stays introduced until it really dies.
func (e *Engine) MarkBroken(c *Conn, why string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log.Warn("ignoring misbehaving connection", "domid", c.domid, "conn", c.id, "reason", why)
	e.resetWatchesLocked(c) // and transactions
	c.dropOutput()
	c.closed = true
	delete(e.conns, c)
}

// ResetConn drops all of c's state — watches, transactions, queued output —
// for a ring reconnection (docs/misc/xenstore-ring.txt).
func (e *Engine) ResetConn(c *Conn) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.resetWatchesLocked(c)
	c.dropOutput()
}
