package store

import (
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/xsstub/xenstored/wire"
)

// Containing a request's internal failure. In a stub domain the daemon is
// PID 1, so a panic while handling one guest's request would take every
// domain's xenstore down. Instead, where it is safe, the request fails
// with EIO (C xenstored's errno for an internal inconsistency, see its
// corrupt() callers and failed database writes), its connection is closed
// and the store is left exactly as it was before the request.
//
// How the store is known to be unchanged. During dispatch every change of
// state that outlives the connection is either
//   - a node-table change, which setLive journals (path and old node) so
//     that it is undone in reverse order; everything derived from the tree
//     (per-domain nodes and memory, the permission index, memTotal) is then
//     recounted from the restored tree, and the generation counter reset;
//   - a domain record created on first use (domainLocked), deleted again;
//   - state of the request's own connection (its watches, transactions,
//     output), which closing the connection drops, after which the
//     counters derived from connections (watchCount, txBytes, outBytes,
//     per-domain transactions and watches) are recounted as well;
//   - or anything else (watch events queued for other connections, the
//     domain table, quotas, tracing, live update, the platform): such code
//     first calls commitPoint, and a panic after it is not contained.
//
// A panic inside the node table itself (setLive's critical section) is not
// contained either: the table's own structure could be half-changed. Not
// contained means: logged with the reason and the stack, then re-raised,
// which ends the process as before. After a rollback the consistency
// check (CONTROL check) must pass, or the panic is re-raised too. Rate
// limit credit, counters for CONTROL and log throttling keep what the
// failed request spent.

// panicProbe, if set (tests only), is called at points where a handler's
// bug could surface: the tests make it panic at each one in turn.
var panicProbe func()

func probe() {
	if panicProbe != nil {
		panicProbe()
	}
}

// journal records, for the request being dispatched, how to undo its
// changes.
type journal struct {
	active   bool
	conn     *Conn
	gen      uint64
	undo     []liveUndo
	domains  []uint32 // domain records created
	critical bool     // inside a change that cannot be undone halfway
	// committed names the first change that cannot be undone; "" while
	// the request can still be rolled back.
	committed string
}

type liveUndo struct {
	path string
	old  node
	had  bool
}

func (j *journal) begin(c *Conn, gen uint64) {
	*j = journal{active: true, conn: c, gen: gen, undo: j.undo[:0], domains: j.domains[:0]}
}

func (j *journal) end() {
	clear(j.undo) // the old nodes pin their chunks
	j.active, j.conn = false, nil
}

// commitPoint marks the request as past the point where a failure could
// be contained; what says why, for the log.
func (e *Engine) commitPoint(what string) {
	if e.jr.active && e.jr.committed == "" {
		e.jr.committed = what
	}
}

// errContained tells Handle that the request failed, was undone and c
// closed: it answers EIO.
var errContained = errors.New("internal error contained")

// dispatchContained is dispatch with a panic contained when the request
// can be undone (see above).
func (e *Engine) dispatchContained(c *Conn, m *wire.Msg) (payload []byte, err error) {
	e.jr.begin(c, e.gen)
	defer func() {
		if r := recover(); r != nil {
			e.contain(c, m, r)
			payload, err = nil, errContained
		}
		e.jr.end()
	}()
	return e.dispatch(c, m)
}

// contain undoes the failed request and closes c, or re-raises the panic
// when that is not safe. Called with the engine locked.
func (e *Engine) contain(c *Conn, m *wire.Msg, r any) {
	j := &e.jr
	stack := string(debug.Stack())
	why := j.committed
	if j.critical {
		why = "inside a node-table change"
	}
	if why != "" {
		e.log.Error("internal error in a request that had changed shared state: cannot contain it",
			"conn", c.id, "domid", c.domid, "type", m.Type.String(), "changed", why, "panic", fmt.Sprint(r), "stack", stack)
		panic(r)
	}
	j.active = false // the rollback's own changes are not journaled
	e.rollback()
	e.abandonConnLocked(c)
	e.recount()
	if errs := e.checkLocked(); len(errs) > 0 {
		e.log.Error("internal error in a request: the store is inconsistent after undoing it",
			"conn", c.id, "panic", fmt.Sprint(r), "problems", errs, "stack", stack)
		panic(r)
	}
	e.contained++
	e.log.Error("internal error in a request: undone, connection closed",
		"conn", c.id, "domid", c.domid, "type", m.Type.String(), "panic", fmt.Sprint(r), "contained", e.contained, "stack", stack)
}

// rollback undoes the journaled node-table changes, newest first, and
// deletes the domain records the request created.
func (e *Engine) rollback() {
	j := &e.jr
	for i := len(j.undo) - 1; i >= 0; i-- {
		u := &j.undo[i]
		if u.had {
			e.nodes.put(u.path, &u.old)
		} else {
			e.nodes.delete(u.path)
		}
	}
	e.gen = j.gen
	for _, id := range j.domains {
		delete(e.domains, id)
	}
}

// abandonConnLocked closes c after a contained failure. A ring stays
// mapped but unserved until its domain dies, as after MarkBroken; the
// transport sends the error reply still queued, then closes a socket.
func (e *Engine) abandonConnLocked(c *Conn) {
	dom := c.dom
	e.closeConnLocked(c)
	if dom != nil && dom.conn == nil && e.domains[dom.ID] == dom {
		dom.conn = c
	}
}

// recount recomputes every counter derived from the tree and from the
// connections, which a rollback or a half-done bookkeeping step of the
// closed connection may have left wrong.
func (e *Engine) recount() {
	for _, d := range e.domains {
		d.nodes, d.memory, d.txns, d.watches = 0, 0, 0, 0
	}
	clear(e.mentions)
	e.memTotal = 0
	e.nodes.each(func(p string, n *node) bool {
		d := e.domainLocked(n.perms.Owner())
		d.nodes++
		d.memory += nodeBytes(p, n)
		e.memTotal += int64(nodeBytes(p, n))
		e.indexPerms(p, n.perms, true)
		return true
	})
	e.watchCount, e.txBytes, e.outBytes = 0, 0, 0
	for c := range e.conns {
		e.watchCount += len(c.watches)
		if c.dom != nil && e.domains[c.domid] == c.dom {
			c.dom.watches += len(c.watches)
		}
		for _, tx := range c.txns {
			if e.domains[tx.dom.ID] == tx.dom {
				tx.dom.txns++
			}
			e.txBytes += tx.bytes
		}
		for _, it := range c.out {
			e.outBytes += int64(len(it.msg))
		}
	}
}
