package store

import (
	"errors"
	"fmt"
	"slices"

	"github.com/xsstub/xenstored/wire"
)

// State is the store as live update carries it from one process to the
// next: the tree with permissions, global and per-domain quotas and
// features, the domain table, and every connection with its watches and
// queued output. It is plain data (package migration writes it as the
// xenstore migration stream). Open transactions are not carried: a
// connection lists their ids, and each request in one is answered EAGAIN
// afterwards, so a client retries as after a conflict (C xenstored aborts
// them the same way).
type State struct {
	Quotas  Quotas        // the global quotas
	Nodes   []NodeState   // every node, each parent before its children, children in order
	Domains []DomainState // every domain record
	Conns   []ConnState
	// Reply is the request the new process answers "OK" to: the
	// live-update start that caused the update (nil: none).
	Reply *PendingReply
}

// NodeState is one node. Special nodes (@introduceDomain...) come with the
// tree's nodes.
type NodeState struct {
	Path  string
	Value []byte
	Perms Perms
}

// DomainState is one domain record.
type DomainState struct {
	ID         uint32
	Introduced bool
	Port       uint32
	GFN        uint64
	Features   uint32
	Shutdown   bool   // @releaseDomain fired for its shutdown
	Target     uint32 // SET_TARGET: the domain this one acts for
	HasTarget  bool
	Quotas     Quotas
}

// ConnState is one connection. A ring connection is its domain's (Ring);
// any other is a socket client the transport identifies by ID.
type ConnState struct {
	ID      uint64
	Domid   uint32
	Priv    bool
	Ring    bool
	Output  [][]byte // encoded messages queued to send, in order
	Watches []WatchState
	// AbortedTxns are transactions open at the update: requests in them
	// get EAGAIN.
	AbortedTxns []uint32
}

// WatchState is one watch of a connection.
type WatchState struct {
	Path      string // canonical
	Token     string
	Depth     int // -1: unlimited
	RelPrefix int // bytes stripped from event paths of a relative watch
}

// PendingReply names a request that waits for its reply across the update.
type PendingReply struct {
	Conn        uint64
	ReqID, TxID uint32
}

// Export returns the store's state. Node values and permission lists are
// shared with the store (neither is ever changed in place); the rest is
// copied.
func (e *Engine) Export() *State {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.exportLocked()
}

func (e *Engine) exportLocked() *State {
	st := &State{Quotas: e.quotas}
	st.Nodes = e.exportNodes()
	ids := make([]uint32, 0, len(e.domains))
	for id := range e.domains {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		d := e.domains[id]
		ds := DomainState{ID: id, Introduced: d.Introduced, Port: d.Port, GFN: d.GFN,
			Features: d.Features, Shutdown: d.shutdown, Quotas: d.quotas}
		if d.target != nil {
			ds.Target, ds.HasTarget = *d.target, true
		}
		st.Domains = append(st.Domains, ds)
	}
	for _, c := range e.sortedConns() {
		st.Conns = append(st.Conns, c.export())
	}
	return st
}

// exportNodes walks the tree depth first in child order, then adds the
// special nodes, which have no parent.
func (e *Engine) exportNodes() []NodeState {
	var out []NodeState
	for stack := []string{"/"}; len(stack) > 0; {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n := e.nodes.get(p)
		if n == nil {
			continue
		}
		// Values and permission lists are never changed in place, so the
		// state may share them with the tree (an update's copy of the
		// whole store would double its memory).
		out = append(out, NodeState{Path: p, Value: n.value, Perms: n.perms})
		var kids []string
		eachChild(n.children, func(ch string) { kids = append(kids, childPath(p, ch)) })
		for i := len(kids) - 1; i >= 0; i-- {
			stack = append(stack, kids[i])
		}
	}
	var special []string
	e.nodes.each(func(p string, _ *node) bool {
		if isSpecial(p) {
			special = append(special, p)
		}
		return true
	})
	slices.Sort(special)
	for _, p := range special {
		n := e.nodes.get(p)
		out = append(out, NodeState{Path: p, Value: n.value, Perms: n.perms})
	}
	return out
}

// export copies c's state: queued output first, then the events parked
// for its full watches, which follow them in order.
func (c *Conn) export() ConnState {
	cs := ConnState{ID: c.id, Domid: c.domid, Priv: c.priv, Ring: c.dom != nil}
	for _, it := range c.out {
		cs.Output = append(cs.Output, slices.Clone(it.msg))
	}
	for _, w := range c.watches {
		cs.Watches = append(cs.Watches, WatchState{Path: w.path, Token: w.token, Depth: w.depth, RelPrefix: w.relPrefix})
		for _, p := range w.overflow {
			cs.Output = append(cs.Output, slices.Clone(p.msg))
		}
	}
	for id := range c.txns {
		cs.AbortedTxns = append(cs.AbortedTxns, id)
	}
	for id := range c.abortedTxns {
		cs.AbortedTxns = append(cs.AbortedTxns, id)
	}
	slices.Sort(cs.AbortedTxns)
	return cs
}

// Restore builds an engine from st. Ring connections are attached to
// their domains' records but not to a transport: Restored lists every
// connection so that transports can take theirs over (AdoptRing, the
// socket transport's adoption). The platform's AttachRing is not called.
func Restore(cfg Config, st *State) (*Engine, error) {
	q := st.Quotas
	cfg.Quotas = &q
	e := New(cfg)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.restoreNodes(st.Nodes); err != nil {
		return nil, err
	}
	for _, ds := range st.Domains {
		d := e.domainLocked(ds.ID)
		d.Introduced, d.Port, d.GFN, d.Features, d.shutdown, d.quotas = ds.Introduced, ds.Port, ds.GFN, ds.Features, ds.Shutdown, ds.Quotas
		if ds.HasTarget {
			t := ds.Target
			d.target = &t
		}
	}
	for i := range st.Conns {
		if err := e.restoreConn(&st.Conns[i]); err != nil {
			return nil, err
		}
	}
	if r := st.Reply; r != nil {
		c := e.connByIDLocked(r.Conn)
		if c == nil {
			return nil, fmt.Errorf("live-update reply for unknown connection %d", r.Conn)
		}
		c.queueReply(wire.Msg{Type: wire.Control, ReqID: r.ReqID, TxID: r.TxID, Payload: okPayload})
	}
	if errs := e.checkLocked(); len(errs) > 0 {
		return nil, fmt.Errorf("restored store inconsistent: %s", errs[0])
	}
	return e, nil
}

// restoreNodes replaces the initial tree with the nodes of st, parents
// first; children lists are built in the order the nodes come, then each
// node is stored once (linear in the tree, however wide a directory).
func (e *Engine) restoreNodes(nodes []NodeState) error {
	for _, p := range []string{"/tool/xenstored", "/tool", "/", "@introduceDomain", "@releaseDomain"} {
		e.setLive(p, nil)
	}
	children := make(map[string][]byte, len(nodes)/4)
	seen := make(map[string]bool, len(nodes))
	for _, ns := range nodes {
		if len(ns.Perms) == 0 || seen[ns.Path] {
			return fmt.Errorf("restoring node %q: no permissions or twice", ns.Path)
		}
		seen[ns.Path] = true
		if ns.Path == "/" || isSpecial(ns.Path) {
			continue
		}
		parent := parentPath(ns.Path)
		if !seen[parent] {
			return fmt.Errorf("restoring node %q before its parent", ns.Path)
		}
		children[parent] = append(append(children[parent], baseName(ns.Path)...), 0)
	}
	if !seen["/"] {
		return errors.New("restored store has no root")
	}
	for _, ns := range nodes {
		e.setLive(ns.Path, &node{value: slices.Clone(ns.Value), perms: ns.Perms.clone(), children: children[ns.Path]})
	}
	return nil
}

func (e *Engine) restoreConn(cs *ConnState) error {
	if e.connByIDLocked(cs.ID) != nil || cs.ID == 0 {
		return fmt.Errorf("connection id %d repeated or zero", cs.ID)
	}
	c := &Conn{e: e, id: cs.ID, domid: cs.Domid, priv: cs.Priv, wake: func() {}, nextTx: 1}
	e.conns[c] = struct{}{}
	e.connSeq = max(e.connSeq, cs.ID)
	if cs.Ring {
		d := e.domains[cs.Domid]
		if d == nil || !d.Introduced || d.conn != nil {
			return fmt.Errorf("ring connection %d of domain %d: no introduced domain for it", cs.ID, cs.Domid)
		}
		d.conn, c.dom = c, d
	}
	for _, ws := range cs.Watches {
		e.watchSeq++
		w := &watch{c: c, path: ws.Path, token: ws.Token, depth: ws.Depth, relPrefix: ws.RelPrefix, seq: e.watchSeq}
		c.watches = append(c.watches, w)
		e.watchIdx[w.path] = append(e.watchIdx[w.path], w)
		e.watchCount++
		if c.dom != nil {
			c.dom.watches++
		}
	}
	for _, msg := range cs.Output {
		if err := c.restoreOutput(msg); err != nil {
			return err
		}
	}
	for _, id := range cs.AbortedTxns {
		if c.abortedTxns == nil {
			c.abortedTxns = map[uint32]bool{}
		}
		c.abortedTxns[id] = true
		c.nextTx = max(c.nextTx, id+1)
	}
	return nil
}

// restoreOutput queues one carried message: an event is counted against
// the watch it belongs to (its token and path), as if just queued.
func (c *Conn) restoreOutput(msg []byte) error {
	m, err := wire.Decode(msg)
	if err != nil {
		return fmt.Errorf("connection %d: queued message: %w", c.id, err)
	}
	it := outItem{msg: slices.Clone(msg), at: c.e.now()} // its timeout starts anew
	if m.Type == wire.WatchEvent {
		parts, _ := wire.SplitStrings(m.Payload)
		for _, w := range c.watches {
			if len(parts) >= 2 && parts[1] == w.token {
				it.watch = w
				break
			}
		}
	}
	if it.watch == nil {
		c.replies++
	} else {
		it.watch.queued++
		if c.queuedEvents == nil {
			c.queuedEvents = map[string]int{}
		}
		c.queuedEvents[string(msg[wire.HeaderSize:])]++
	}
	c.out = append(c.out, it)
	c.e.outBytes += int64(len(msg))
	return nil
}

// ConnByID returns the connection with id, or nil.
func (e *Engine) ConnByID(id uint64) *Conn {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.connByIDLocked(id)
}

func (e *Engine) connByIDLocked(id uint64) *Conn {
	for c := range e.conns {
		if c.id == id {
			return c
		}
	}
	return nil
}

// Adopt gives a restored connection its transport's wake callback, which
// it is then called with whenever it has output.
func (c *Conn) Adopt(wake func()) {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	c.wake = wake
	if len(c.out) > 0 {
		wake()
	}
}

// abortedTxn reports a request in a transaction that a live update
// aborted (answered EAGAIN); the transaction's end forgets it.
func (c *Conn) abortedTxn(m *wire.Msg) bool {
	if m.TxID == 0 || !c.abortedTxns[m.TxID] {
		return false
	}
	if m.Type == wire.TransactionEnd {
		delete(c.abortedTxns, m.TxID)
	}
	return true
}
