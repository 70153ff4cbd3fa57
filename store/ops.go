package store

import (
	"bytes"
	"strconv"
	"syscall"

	"github.com/xsstub/xenstored/wire"
)

// setLive stores n at path (nil deletes) in the live tree, keeping each
// owner's node count and memory use and handing out a generation.
func (e *Engine) setLive(path string, n *node) {
	var old node
	var had bool
	// A failure in here is not contained (contain.go): the table and
	// the accounting could be half-changed.
	e.jr.critical = true
	if n == nil {
		old, had = e.nodes.delete(path)
	} else {
		e.gen++
		n.gen = e.gen
		old, had = e.nodes.put(path, n)
	}
	if e.jr.active {
		e.jr.undo = append(e.jr.undo, liveUndo{path: path, old: old, had: had})
	}
	e.setAccounting(path, n, old, had)
	e.jr.critical = false
	probe()
}

// setAccounting updates what setLive's change of path from old (if had)
// to n (nil: deleted) changes in the accounting.
func (e *Engine) setAccounting(path string, n *node, old node, had bool) {
	samePerms := had && n != nil && sameList(old.perms, n.perms)
	if had {
		d := e.domainLocked(old.perms.Owner())
		d.nodes--
		d.memory -= len(path) + old.size()
		e.memTotal -= int64(len(path) + old.size())
		if !samePerms {
			e.indexPerms(path, old.perms, false)
		}
	}
	if n == nil {
		return
	}
	if !samePerms {
		e.indexPerms(path, n.perms, true)
	}
	d := e.domainLocked(n.perms.Owner())
	d.nodes++
	d.memory += len(path) + n.size()
	e.memTotal += int64(len(path) + n.size())
	if soft := d.quotas.Soft[QMemory]; soft > 0 && d.memory > soft && n.perms.Owner() != e.cfg.PrivDomid {
		e.log.Warn("soft quota exceeded", "domid", d.ID, "quota", "memory", "value", d.memory, "limit", soft)
	}
}

// indexPerms adds (or removes) path to the index of nodes whose
// permissions name each domain other than the control domain, so that a
// domain's death touches only its own nodes. Nodes in the domain's own
// home directory are left out (most of a guest's nodes, and most of the
// index's memory): its death walks that subtree instead. Ignored entries
// need nothing at a death and are left out too.
func (e *Engine) indexPerms(path string, ps Perms, add bool) {
	home, inHome := homeOf(path)
	for i, p := range ps {
		if p.ID == e.cfg.PrivDomid || (i > 0 && (p.ID == ps[0].ID || p.Ignore)) || (inHome && p.ID == home) {
			continue
		}
		set := e.mentions[p.ID]
		if add {
			if set == nil {
				set = make(map[string]struct{})
				e.mentions[p.ID] = set
			}
			set[path] = struct{}{}
		} else if set != nil {
			delete(set, path)
			if len(set) == 0 {
				delete(e.mentions, p.ID)
			}
		}
	}
}

// memoryUse is domid's memory as a change made through tx would leave it:
// the live use plus the transaction's net change so far. Charging a
// transaction's writes as they happen keeps a guest from passing its quota
// by writing inside a transaction (C xenstored accounts there too).
func (e *Engine) memoryUse(domid uint32, tx *txn) int {
	use := e.domainLocked(domid).memory
	if tx != nil {
		use += tx.memDelta[domid]
	}
	return use
}

// checkMemory applies the memory quota to a node c's domain will own
// through tx (nil: live): the domain's nodes, counted as path plus record,
// may not pass the hard limit (ENOMEM, as C xenstored).
func (e *Engine) checkMemory(c *Conn, tx *txn, path string, n *node) error {
	limit := e.quota(c, QMemory)
	if limit <= 0 || n.perms.Owner() != c.domid {
		return nil
	}
	use := e.memoryUse(c.domid, tx) + len(path) + n.size()
	// The node replaced is the one c sees: the transaction's view if any.
	var old *node
	if ent := tx.entry(path); ent != nil {
		old = ent.node
	} else {
		old = e.nodes.get(path)
	}
	if old != nil && old.perms.Owner() == c.domid {
		use -= len(path) + old.size()
	}
	if use > limit {
		return e.quotaExceeded(c, QMemory, use, limit, syscall.ENOMEM)
	}
	return nil
}

// lookup reads path as c sees it: through tx when there is one (recording
// the access for the commit-time conflict check), else the live tree.
func (e *Engine) lookup(c *Conn, tx *txn, path string) (*node, error) {
	probe()
	if tx == nil {
		return e.nodes.get(path), nil
	}
	ent, err := tx.access(e, c, path)
	if err != nil {
		return nil, err
	}
	return ent.node, nil
}

// store writes n (a node the caller built; nil deletes path) through tx or
// to the live tree.
func (e *Engine) store(c *Conn, tx *txn, path string, n *node) error {
	if n != nil && c != nil && c.unprivileged() {
		// C xenstored refuses a record of node-size bytes or more.
		if limit := e.quota(c, QNodeSize); limit > 0 && n.size() >= limit {
			return e.quotaExceeded(c, QNodeSize, n.size(), limit, syscall.ENOSPC)
		}
		if err := e.checkMemory(c, tx, path, n); err != nil {
			return err
		}
	}
	if tx == nil {
		e.setLive(path, n)
		return nil
	}
	probe()
	ent, err := tx.access(e, c, path)
	if err != nil {
		return err
	}
	e.txHold(tx, nodeBytes(path, n)-nodeBytes(path, ent.node))
	if ent.node != nil {
		tx.nodeDelta[ent.node.perms.Owner()]--
		tx.memDelta[ent.node.perms.Owner()] -= len(path) + ent.node.size()
	}
	if n != nil {
		tx.nodeDelta[n.perms.Owner()]++
		tx.memDelta[n.perms.Owner()] += len(path) + n.size()
		// A fresh generation, so DIRECTORY_PART inside the transaction
		// sees the change; the commit hands out the final one.
		e.gen++
		n.gen = e.gen
	}
	ent.node = n.detached()
	ent.modified = true
	probe()
	return nil
}

// getNode returns the node at path if c has access perm. A failure says
// EACCES rather than ENOENT when the caller could not read the nearest
// existing ancestor either, so errors leak nothing (C get_node_chk_perm).
func (e *Engine) getNode(c *Conn, tx *txn, path string, perm uint8) (*node, error) {
	n, err := e.lookup(c, tx, path)
	if err != nil {
		return nil, err
	}
	if n != nil && e.permFor(c, n.perms)&perm == perm {
		return n, nil
	}
	fail := syscall.ENOENT
	if n != nil {
		fail = syscall.EACCES
	}
	pp, err := e.parentPerm(c, tx, path)
	if err != nil {
		return nil, err
	}
	if pp&perm != 0 {
		return nil, fail
	}
	return nil, syscall.EACCES
}

// parentPerm is c's access to the nearest existing ancestor of path.
func (e *Engine) parentPerm(c *Conn, tx *txn, path string) (uint8, error) {
	for p := path; p != "/"; {
		p = parentPath(p)
		n, err := e.lookup(c, tx, p)
		if err != nil {
			return 0, err
		}
		if n != nil {
			return e.permFor(c, n.perms), nil
		}
	}
	return PermNone, nil
}

// createNode makes path and any missing ancestors (C construct_node and
// create_node): new nodes inherit their parent's permissions and belong to
// the creating domain when it is unprivileged. Every check runs before the
// first change, so a failure leaves nothing behind (XSA-414/415).
func (e *Engine) createNode(c *Conn, tx *txn, path string, value []byte) (*node, error) {
	var missing []string // path first, then its missing ancestors
	p := path
	var parent *node
	for {
		missing = append(missing, p)
		p = parentPath(p)
		n, err := e.lookup(c, tx, p)
		if err != nil {
			return nil, err
		}
		if n != nil {
			parent = n
			break
		}
		if p == "/" {
			return nil, syscall.ENOENT
		}
	}
	if c.unprivileged() {
		owned := e.domainLocked(c.domid).nodes
		if tx != nil {
			owned += tx.nodeDelta[c.domid]
		}
		if err := e.checkQuota(c, QNodes, owned, len(missing)); err != nil {
			return nil, err
		}
	}
	// Build bottom-up in memory, then store top-down.
	built := make([]*node, len(missing))
	perms := parent.perms
	for i := len(missing) - 1; i >= 0; i-- {
		np := perms // permission lists are never changed in place: share
		if c.unprivileged() && (np[0].ID != c.domid || np[0].Ignore) {
			np = perms.clone()
			np[0].ID = c.domid
			np[0].Ignore = false
		}
		n := &node{perms: np}
		if i > 0 {
			n.children = withChild(nil, baseName(missing[i-1]))
		}
		built[i] = n
		perms = np
	}
	built[0].value = value
	newParent := parent.clone()
	newParent.children = withChild(parent.children, baseName(missing[len(missing)-1]))
	for _, n := range append(built, newParent) {
		if limit := e.quota(c, QNodeSize); limit > 0 && n.size() >= limit {
			return nil, e.quotaExceeded(c, QNodeSize, n.size(), limit, syscall.ENOSPC)
		}
	}
	if limit := e.quota(c, QMemory); limit > 0 {
		use := e.memoryUse(c.domid, tx)
		for i, n := range built {
			use += len(missing[i]) + n.size()
		}
		if use > limit {
			return nil, e.quotaExceeded(c, QMemory, use, limit, syscall.ENOMEM)
		}
	}
	if err := e.store(c, tx, p, newParent); err != nil {
		return nil, err
	}
	for i := len(built) - 1; i >= 0; i-- {
		if err := e.store(c, tx, missing[i], built[i]); err != nil {
			// Undo, so no half-made path remains (XSA-414/415).
			for _, done := range missing[i+1:] {
				e.store(nil, tx, done, nil)
			}
			e.store(nil, tx, p, parent.clone())
			if tx != nil {
				tx.failed = true
			}
			return nil, err
		}
	}
	return built[0], nil
}

// removeTree deletes path and everything below it, firing watches as C
// xenstored does (children first, each an exact match; the root as a
// subtree match). The walk is iterative (XSA-418).
func (e *Engine) removeTree(c *Conn, tx *txn, path string) error {
	type frame struct {
		path string
		n    *node
		next int
	}
	root, err := e.lookup(c, tx, path)
	if err != nil || root == nil {
		return err
	}
	// The parent before the subtree, as C's _rm reads it: in a
	// transaction the access order is the order of the commit's events.
	parent, err := e.lookup(c, tx, parentPath(path))
	if err != nil {
		return err
	}
	stack := []frame{{path: path, n: root}}
	var order []frame
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if top.next < len(top.n.children) {
			end := top.next + bytes.IndexByte(top.n.children[top.next:], 0)
			cp := childPath(top.path, string(top.n.children[top.next:end]))
			top.next = end + 1
			ch, err := e.lookup(c, tx, cp)
			if err != nil {
				return err
			}
			if ch != nil {
				stack = append(stack, frame{path: cp, n: ch})
			}
			continue
		}
		order = append(order, *top)
		stack = stack[:len(stack)-1]
	}
	for _, f := range order {
		if err := e.store(c, tx, f.path, nil); err != nil {
			if tx != nil {
				tx.failed = true
			}
			return err
		}
		match := matchExact
		if f.path == path {
			match = matchSubtree
		}
		e.fire(c, tx, f.path, f.n.perms, nil, match)
		probe()
	}
	if parent != nil {
		np := parent.clone()
		np.children = withoutChild(parent.children, baseName(path))
		return e.store(c, tx, parentPath(path), np)
	}
	return nil
}

// argPath is the canonical path of a request whose payload is exactly one
// NUL-terminated path (READ, MKDIR, RM, DIRECTORY).
func (e *Engine) argPath(c *Conn, payload []byte) (string, error) {
	arg, good := oneArg(payload)
	if !good {
		return "", syscall.EINVAL
	}
	return e.path(c, arg, false)
}

// oneArg returns the single NUL-terminated string a payload must consist of.
func oneArg(p []byte) (string, bool) {
	if len(p) == 0 || bytes.IndexByte(p, 0) != len(p)-1 {
		return "", false
	}
	return string(p[:len(p)-1]), true
}

func (e *Engine) path(c *Conn, p string, allowSpecial bool) (string, error) {
	abs, _, err := canonicalPath(p, c.homePath(), allowSpecial, e.pathMax(c))
	return abs, err
}

// specialOrPath accepts a path or a well-formed @ name: the special nodes
// (@introduceDomain, @releaseDomain) and, as in C 4.22, any other, which
// names a node that does not exist, looked up like one (ENOENT, or EACCES
// when its nearest ancestor, "/" or a special node, is not readable; in a
// transaction, that ancestor is read). A malformed @ name is EINVAL.
func (e *Engine) specialOrPath(c *Conn, p string) (string, error) {
	return e.path(c, p, isSpecial(p))
}

// pathMax is the path-max limit for c. As in C xenstored 4.17 it applies to
// every connection (the global value for privileged ones).
func (e *Engine) pathMax(c *Conn) int {
	if c == nil || !c.unprivileged() {
		return e.quotas.Hard[QPathMax]
	}
	return e.quota(c, QPathMax)
}

func (e *Engine) doRead(c *Conn, tx *txn, payload []byte) ([]byte, error) {
	p, err := e.argPath(c, payload)
	if err != nil {
		return nil, err
	}
	n, err := e.getNode(c, tx, p, PermRead)
	if err != nil {
		return nil, err
	}
	return n.value, nil
}

func (e *Engine) doWrite(c *Conn, tx *txn, payload []byte) ([]byte, error) {
	i := bytes.IndexByte(payload, 0)
	if i < 0 {
		return nil, syscall.EINVAL
	}
	p, err := e.path(c, string(payload[:i]), false)
	if err != nil {
		return nil, err
	}
	value := append([]byte(nil), payload[i+1:]...)
	n, err := e.getNode(c, tx, p, PermWrite)
	switch {
	case err == syscall.ENOENT:
		if _, err := e.createNode(c, tx, p, value); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		nn := n.clone()
		nn.value = value
		if err := e.store(c, tx, p, nn); err != nil {
			return nil, err
		}
	}
	e.fire(c, tx, p, nil, nil, matchSubtree)
	return ok()
}

func (e *Engine) doMkdir(c *Conn, tx *txn, payload []byte) ([]byte, error) {
	p, err := e.argPath(c, payload)
	if err != nil {
		return nil, err
	}
	_, err = e.getNode(c, tx, p, PermWrite)
	if err == syscall.ENOENT {
		if _, err := e.createNode(c, tx, p, nil); err != nil {
			return nil, err
		}
		e.fire(c, tx, p, nil, nil, matchSubtree)
		return ok()
	}
	if err != nil {
		return nil, err
	}
	return ok()
}

func (e *Engine) doRm(c *Conn, tx *txn, payload []byte) ([]byte, error) {
	p, err := e.argPath(c, payload)
	if err != nil {
		return nil, err
	}
	_, err = e.getNode(c, tx, p, PermWrite)
	if err == syscall.ENOENT {
		parent, perr := e.lookup(c, tx, parentPath(p))
		if perr != nil {
			return nil, perr
		}
		if parent != nil {
			return ok()
		}
		return nil, syscall.ENOENT
	}
	if err != nil {
		return nil, err
	}
	if p == "/" {
		return nil, syscall.EINVAL
	}
	if err := e.removeTree(c, tx, p); err != nil {
		return nil, err
	}
	return ok()
}

func (e *Engine) doDirectory(c *Conn, tx *txn, payload []byte) ([]byte, error) {
	p, err := e.argPath(c, payload)
	if err != nil {
		return nil, err
	}
	n, err := e.getNode(c, tx, p, PermRead)
	if err != nil {
		return nil, err
	}
	return childList(n), nil
}

// childList is a node's children as the wire carries them (shared: the
// caller must not modify it).
func childList(n *node) []byte { return n.children }

// doDirectoryPart pages a long child list: <gencnt>|<children from byte
// offset>, ending with an extra NUL once the list is complete.
func (e *Engine) doDirectoryPart(c *Conn, tx *txn, payload []byte) ([]byte, error) {
	if bytes.Count(payload, []byte{0}) != 2 || payload[len(payload)-1] != 0 {
		return nil, syscall.EINVAL
	}
	i := bytes.IndexByte(payload, 0)
	p, err := e.path(c, string(payload[:i]), false)
	if err != nil {
		return nil, err
	}
	n, err := e.getNode(c, tx, p, PermRead)
	if err != nil {
		return nil, err
	}
	off := atoi(string(payload[i+1 : len(payload)-1]))
	list := childList(n)
	gen := strconv.FormatUint(n.gen, 10)
	out := append([]byte(gen), 0)
	if off < 0 || off >= len(list) {
		return append(out, 0), nil
	}
	maxlen := wire.PayloadMax - len(out) - 1
	end := off
	for end < len(list) {
		z := bytes.IndexByte(list[end:], 0)
		if end-off+z >= maxlen {
			break
		}
		end += z + 1
	}
	out = append(out, list[off:end]...)
	if end == len(list) {
		out = append(out, 0)
	}
	return out, nil
}

// atoi parses a leading decimal number as C's atoi does: leading white
// space, an optional sign, digits; 0 on garbage.
func atoi(s string) int {
	v, _, _ := strtol(s, 10)
	if v > 1<<31-1 {
		return 1<<31 - 1
	}
	if v < -1<<31 {
		return -1 << 31
	}
	return int(v)
}

// strtol mimics C's strtol: white space, sign, and for base 0 a 0x or 0
// prefix choosing hex or octal. It returns the value, the number of bytes
// used, and whether any digit was seen. Values saturate.
func strtol(s string, base int) (int64, int, bool) {
	i := 0
	for i < len(s) && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r')) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	if base == 0 {
		base = 10
		if i < len(s) && s[i] == '0' {
			base = 8
			if i+2 < len(s) && (s[i+1] == 'x' || s[i+1] == 'X') && isDigit(s[i+2], 16) {
				base = 16
				i += 2
			}
		}
	}
	var v int64
	start := i
	for ; i < len(s) && isDigit(s[i], base); i++ {
		d := int64(digitVal(s[i]))
		if v < (1<<62)/int64(base) {
			v = v*int64(base) + d
		}
	}
	if i == start {
		return 0, 0, false
	}
	if neg {
		v = -v
	}
	return v, i, true
}

func digitVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	}
	return 99
}

func isDigit(c byte, base int) bool { return digitVal(c) < base }

func (e *Engine) doGetPerms(c *Conn, tx *txn, payload []byte) ([]byte, error) {
	arg, good := oneArg(payload)
	if !good {
		return nil, syscall.EINVAL
	}
	p, err := e.specialOrPath(c, arg)
	if err != nil {
		return nil, err
	}
	n, err := e.getNode(c, tx, p, PermRead)
	if err != nil {
		return nil, err
	}
	return wire.JoinStrings(n.perms.Strings()...), nil
}

func (e *Engine) doSetPerms(c *Conn, tx *txn, payload []byte) ([]byte, error) {
	strs := splitArgs(payload)
	if len(strs) < 2 {
		return nil, syscall.EINVAL
	}
	if err := e.checkQuota(c, QNodePerms, 0, len(strs)-1); err != nil {
		return nil, err
	}
	perms, err := ParsePerms(strs[1:])
	if err != nil {
		return nil, err
	}
	for i := range perms {
		if !e.domainExists(perms[i].ID) && perms[i].ID != DomidAny {
			perms[i].Ignore = true // XSA-417
		}
	}
	if perms[0].Ignore {
		return nil, syscall.ENOENT
	}
	p, err := e.specialOrPath(c, strs[0])
	if err != nil {
		return nil, err
	}
	n, err := e.getNode(c, tx, p, PermWrite|permOwner)
	if err != nil {
		return nil, err
	}
	if c.unprivileged() && perms[0].ID != n.perms.Owner() {
		return nil, syscall.EPERM // XSA-352
	}
	nn := n.clone()
	nn.perms = perms
	if err := e.store(c, tx, p, nn); err != nil {
		return nil, err
	}
	e.fire(c, tx, p, nil, n.perms, matchSubtree)
	return ok()
}

// splitArgs splits a payload into its NUL-terminated strings, ignoring an
// unterminated tail (as C xenstored's get_strings does).
func splitArgs(p []byte) []string {
	parts, terminated := wire.SplitStrings(p)
	if !terminated {
		parts = parts[:len(parts)-1]
	}
	return parts
}
