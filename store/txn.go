package store

import (
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/xsstub/xenstored/wire"
)

// txn is one open transaction. Its first access to a node snapshots the
// node (a pointer: stored nodes are immutable) and its generation; commit
// fails with EAGAIN if any accessed node's live generation moved since, so
// a committed transaction is as if it ran alone (C xenstored's scheme).
type txn struct {
	id      uint32
	entries map[string]*txEntry
	order   []string // first-access order: commit applies and fires in it
	fires   []firing // watch events to fire on commit, in order
	// nodeDelta is the change in nodes owned per domain, applied to the
	// accounting on commit and used by quota checks before.
	nodeDelta map[uint32]int
	// memDelta is the same for memory (path plus record per node): the
	// memory quota counts it before commit and re-checks it at commit.
	memDelta map[uint32]int
	failed   bool      // a write failed half-way: commit must not happen
	started  time.Time // for live update's wait for old transactions
	bytes    int64     // memory held, as the ceiling's estimate counts it
	// dom is the domain record the transaction is counted in (Domain.txns):
	// the one current when it started, so a released and re-created
	// record is never decremented for it.
	dom *Domain
}

type txEntry struct {
	gen      uint64 // live generation at first access; 0: did not exist
	node     *node  // the transaction's view; nil: absent
	modified bool
}

type firing struct {
	path     string
	perms    Perms // the node's permissions when it was deleted, else nil
	oldPerms Perms // permissions before a SET_PERMS
	match    watchMatch
}

// entry is tx's entry for path, nil if tx is nil or never touched path.
func (tx *txn) entry(path string) *txEntry {
	if tx == nil {
		return nil
	}
	return tx.entries[path]
}

// access returns the transaction's entry for path, creating it on first
// access (subject to the transaction-nodes quota).
func (tx *txn) access(e *Engine, c *Conn, path string) (*txEntry, error) {
	if ent := tx.entries[path]; ent != nil {
		return ent, nil
	}
	if err := e.checkQuota(c, QTransactionNodes, len(tx.entries), 1); err != nil {
		return nil, err
	}
	ent := &txEntry{}
	if n := e.nodes.get(path); n != nil {
		ent.gen, ent.node = n.gen, n.detached()
	}
	e.txHold(tx, ceilEntryOverhead+nodeBytes(path, ent.node))
	tx.entries[path] = ent
	tx.order = append(tx.order, path)
	return ent, nil
}

func (e *Engine) txnStart(c *Conn, m *wire.Msg) ([]byte, error) {
	if m.TxID != 0 {
		return nil, syscall.EBUSY
	}
	if c.unprivileged() {
		if err := e.checkQuota(c, QTransactions, len(c.txns), 1); err != nil {
			return nil, err
		}
	}
	if c.txns == nil {
		c.txns = make(map[uint32]*txn)
	}
	// Ids are never reused while live; 0 means "no transaction".
	id := c.nextTx
	for id == 0 || c.txns[id] != nil {
		id++
	}
	c.nextTx = id + 1
	d := e.domainLocked(c.domid)
	d.txns++
	tx := &txn{id: id, entries: make(map[string]*txEntry), nodeDelta: make(map[uint32]int), memDelta: make(map[uint32]int), dom: d, started: e.now()}
	c.txns[id] = tx
	e.txHold(tx, ceilTxnOverhead)
	probe()
	return append([]byte(strconv.FormatUint(uint64(id), 10)), 0), nil
}

// endTxn forgets tx, keeping its domain's count of open transactions.
func (e *Engine) endTxn(c *Conn, tx *txn) {
	delete(c.txns, tx.id)
	tx.dom.txns--
	e.txBytes -= tx.bytes
}

// txHold adds n bytes (negative: releases) to what tx holds.
func (e *Engine) txHold(tx *txn, n int) {
	tx.bytes += int64(n)
	e.txBytes += int64(n)
}

// nodeBytes is what a copy of n at path costs (0 for none).
func nodeBytes(path string, n *node) int {
	if n == nil {
		return 0
	}
	return len(path) + n.size()
}

// dropTxns forgets every transaction of c (reset, close, broken ring).
func (e *Engine) dropTxns(c *Conn) {
	for _, tx := range c.txns {
		e.endTxn(c, tx)
	}
	c.txns = nil
}

func (e *Engine) txnEnd(c *Conn, tx *txn, payload []byte) ([]byte, error) {
	arg, good := oneArg(payload)
	if !good || (arg != "T" && arg != "F") {
		return nil, syscall.EINVAL
	}
	if tx == nil {
		return nil, syscall.ENOENT
	}
	e.endTxn(c, tx)
	if arg == "F" {
		return ok()
	}
	if tx.failed {
		return nil, syscall.EAGAIN
	}
	for _, p := range tx.order {
		ent := tx.entries[p]
		if e.nodes.generation(p) != ent.gen {
			return nil, syscall.EAGAIN
		}
	}
	// Node and memory quotas of the committing (unprivileged) domain, on
	// the outcome: its live use may have grown since the writes were
	// checked (other connections, or other transactions committed).
	if c.unprivileged() {
		if delta := tx.nodeDelta[c.domid]; delta > 0 {
			if err := e.checkQuota(c, QNodes, e.domainLocked(c.domid).nodes, delta); err != nil {
				return nil, err
			}
		}
		if delta := tx.memDelta[c.domid]; delta > 0 {
			limit, use := e.quota(c, QMemory), e.memoryUse(c.domid, tx)
			if limit > 0 && use > limit {
				return nil, e.quotaExceeded(c, QMemory, use, limit, syscall.ENOMEM)
			}
		}
	}
	probe()
	for _, p := range tx.order {
		if ent := tx.entries[p]; ent.modified {
			e.setLive(p, ent.node)
		}
	}
	// Events go out in the order the transaction first touched the nodes
	// (as C xenstored does), and not for nodes it created and deleted.
	pos := make(map[string]int, len(tx.order))
	for i, p := range tx.order {
		pos[p] = i
	}
	sort.SliceStable(tx.fires, func(i, j int) bool { return pos[tx.fires[i].path] < pos[tx.fires[j].path] })
	for _, f := range tx.fires {
		if ent := tx.entries[f.path]; ent != nil && ent.gen == 0 && ent.node == nil {
			continue
		}
		e.fireNow(c, f.path, f.perms, f.oldPerms, f.match)
	}
	return ok()
}
