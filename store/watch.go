package store

import (
	"bytes"
	"slices"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/xsstub/xenstored/wire"
)

// watch is one registered watch. Its queued events sit in the owning
// connection's output FIFO (queued counts them); events that found the
// queue full wait in overflow, each charged to the connection that caused
// it, until the owner reads.
type watch struct {
	c         *Conn
	path      string // canonical
	token     string
	depth     int // -1: unlimited
	relPrefix int // bytes stripped from event paths of a relative watch
	seq       uint64

	queued   int
	overflow []parked
	expiry   *time.Timer // pending expireEvents, for a full queue
	removed  bool
	// stuck: events timed out unread and the owner has taken none since.
	// Its events that find the queue full are then dropped (lost counts
	// them), not parked: one stuck watcher must not hold up the writers
	// again every maxwatchevents changes.
	stuck bool
	lost  int
}

type parked struct {
	msg    []byte
	source *Conn // nil for events nobody's request caused
}

type watchMatch int

const (
	matchExact   watchMatch = iota // the watch path itself
	matchSubtree                   // the path is at or below the watch path
	matchDepth                     // special events with a domid suffix
	matchNoDepth                   // special events without one
)

// isChild reports whether child is at or below parent, no more than depth
// levels down when depth >= 0 (C watch.c is_child).
func isChild(child, parent string, depth int) bool {
	l := len(parent)
	if len(child) < l || child[:l] != parent {
		return false
	}
	if l > 1 && len(child) > l && child[l] != '/' {
		return false
	}
	if depth < 0 || len(child) == l {
		return true
	}
	sub := 0
	if l == 1 {
		sub = 1
	}
	for ; sub <= depth; l++ {
		if l == len(child) {
			return true
		}
		if child[l] == '/' {
			sub++
		}
	}
	return false
}

func (w *watch) matches(path string, m watchMatch) bool {
	switch m {
	case matchExact:
		return path == w.path
	case matchSubtree:
		return isChild(path, w.path, w.depth)
	case matchDepth:
		return path == w.path || (w.depth > 0 && isChild(path, w.path, w.depth))
	default: // matchNoDepth
		return path == w.path && w.depth < 0
	}
}

// fire reports a change of path: queued in tx until commit, else sent now.
// perms are the node's permissions when the node is being deleted (nil
// otherwise); oldPerms those before a permission change.
func (e *Engine) fire(c *Conn, tx *txn, path string, perms, oldPerms Perms, m watchMatch) {
	if tx == nil {
		e.fireNow(c, path, perms, oldPerms, m)
		return
	}
	for i := range tx.fires {
		if tx.fires[i].path == path {
			if m == matchSubtree {
				tx.fires[i].match = matchSubtree
			}
			if perms != nil {
				tx.fires[i].perms = perms
			}
			return
		}
	}
	tx.fires = append(tx.fires, firing{path: path, perms: perms, oldPerms: oldPerms, match: m})
}

// fireNow queues an event for every matching watch whose owner may see it:
// it must be able to read the node or its parent, or have been able to
// before a permission change (C watch_permitted).
func (e *Engine) fireNow(source *Conn, path string, perms, oldPerms Perms, m watchMatch) {
	var hits []*watch
	for a := path; ; a = parentPath(a) {
		for _, w := range e.watchIdx[a] {
			if w.matches(path, m) {
				hits = append(hits, w)
			}
		}
		if a == "/" {
			break
		}
	}
	if len(hits) == 0 {
		return
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].seq < hits[j].seq })
	permitted := map[*Conn]bool{}
	for _, w := range hits {
		ok, seen := permitted[w.c]
		if !seen {
			ok = e.watchPermitted(w.c, path, perms, oldPerms)
			permitted[w.c] = ok
		}
		probe()
		if ok {
			e.queueEvent(w, path[w.relPrefix:], source)
		}
	}
}

func (e *Engine) watchPermitted(c *Conn, path string, perms, oldPerms Perms) bool {
	if oldPerms != nil && e.permFor(c, oldPerms)&PermRead != 0 {
		return true
	}
	if perms == nil {
		if perms = e.nodes.permsOf(path); perms == nil {
			return false
		}
	}
	if e.permFor(c, perms)&PermRead != 0 {
		return true
	}
	if isSpecial(path) {
		return false // special events need explicit permission (XSA-115)
	}
	parent := e.nodes.permsOf(parentPath(path))
	return parent != nil && e.permFor(c, parent)&PermRead != 0
}

// queueEvent puts one event for w on its connection, or parks it when the
// watch's queue is full (or already has parked events, to keep order).
// Events too large for the wire are dropped (XSA-324).
func (e *Engine) queueEvent(w *watch, path string, source *Conn) {
	if w.c != e.jr.conn {
		e.commitPoint("watch events for other connections")
	}
	if len(path)+len(w.token)+2 > wire.PayloadMax {
		w.c.dropped++
		e.log.Debug("dropping oversized watch event", "conn", w.c.id, "len", len(path)+len(w.token)+2)
		return
	}
	payload := wire.JoinStrings(path, w.token)
	if path[0] != '@' && w.c.queuedEvents[string(payload)] > 0 {
		return // identical to an event not yet sent (C does the same)
	}
	msg := (&wire.Msg{Type: wire.WatchEvent, Payload: payload}).Encode()
	max := e.quotas.Hard[QMaxWatchEvents]
	if len(w.overflow) > 0 || (max > 0 && w.queued >= max) {
		if w.stuck {
			w.lost++
			w.c.dropped++
			return
		}
		w.overflow = append(w.overflow, parked{msg: msg, source: source})
		if source != nil {
			source.parked++
		}
		e.scheduleExpiry(w)
		return
	}
	w.c.enqueueEvent(w, msg)
	w.c.signal()
}

// DefaultEventTimeout is C xenstored's watch-event timeout for guests; we
// apply it to every watcher (see scheduleExpiry).
const DefaultEventTimeout = 20 * time.Second

// scheduleExpiry arranges, for a watch whose queue is full, that events
// its owner leaves unread past the timeout are dropped, so that the
// connections parked behind them are released: a watcher that stops
// reading, a guest or a dom0 process alike, can hold others up only for a
// bounded time. C xenstored times out only guests' events, but queues
// dom0's without bound; with dom0's queue bounded too, exempting it would
// let one stopped dom0 watcher stall every write its watch covers.
func (e *Engine) scheduleExpiry(w *watch) {
	if e.cfg.EventTimeout < 0 || w.expiry != nil {
		return
	}
	w.expiry = time.AfterFunc(e.cfg.EventTimeout, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		w.expiry = nil
		e.expireEvents(w)
	})
}

// expireEvents drops w's queued events older than the timeout and moves
// parked ones in. If any were dropped the watcher is stuck: parked events
// that do not fit go too, and so do later ones until it reads (see
// watch.stuck); otherwise it re-arms itself while events stay parked.
func (e *Engine) expireEvents(w *watch) {
	if w.removed {
		return
	}
	c := w.c
	cutoff := e.now().Add(-e.cfg.EventTimeout)
	dropped := e.dropEvents(c, func(it outItem) bool { return it.watch == w && !it.at.After(cutoff) })
	if dropped == 0 {
		if len(w.overflow) > 0 {
			e.scheduleExpiry(w)
		}
		return
	}
	w.queued -= dropped
	c.dropped += uint64(dropped)
	w.stuck = true
	e.unpark(w)
	for _, p := range w.overflow {
		e.releaseParked(p.source)
		w.lost++
		c.dropped++
	}
	w.overflow = nil
	e.log.Warn("dropping unread watch events, and further ones until the watcher reads",
		"domid", c.domid, "conn", c.id, "priv", c.priv, "watch", w.path, "token", w.token,
		"events", dropped, "timeout", e.cfg.EventTimeout)
}

// watchRead notes that w's owner took one of its events: a stuck watcher
// reads again.
func (e *Engine) watchRead(w *watch) {
	if !w.stuck {
		return
	}
	w.stuck = false
	e.log.Info("watcher reading again", "domid", w.c.domid, "conn", w.c.id, "watch", w.path,
		"token", w.token, "events-dropped-meanwhile", w.lost)
	w.lost = 0
}

func (c *Conn) enqueueEvent(w *watch, msg []byte) {
	w.queued++
	it := outItem{msg: msg, watch: w, at: c.e.now()}
	c.out = append(c.out, it)
	c.e.outBytes += int64(len(msg))
	if c.queuedEvents == nil {
		c.queuedEvents = make(map[string]int)
	}
	c.queuedEvents[string(msg[wire.HeaderSize:])]++
}

// unpark moves parked events into w's queue as room appears, releasing the
// connections that caused them.
func (e *Engine) unpark(w *watch) {
	max := e.quotas.Hard[QMaxWatchEvents]
	moved := false
	for len(w.overflow) > 0 && (max <= 0 || w.queued < max) {
		p := w.overflow[0]
		w.overflow[0] = parked{}
		w.overflow = w.overflow[1:]
		w.c.enqueueEvent(w, p.msg)
		moved = true
		e.releaseParked(p.source)
	}
	if len(w.overflow) == 0 {
		w.overflow = nil
	}
	if moved {
		w.c.signal()
	}
}

func (e *Engine) releaseParked(src *Conn) {
	if src == nil {
		return
	}
	src.parked--
	if src.parked == 0 {
		src.signal()
	}
}

// removeWatch unregisters w and drops its queued and parked events.
func (e *Engine) removeWatch(w *watch) {
	e.removeWatches(w.c, []*watch{w})
}

// resetWatchesLocked drops every watch and transaction of c (RESET_WATCHES,
// XSA-330, XSA-484).
func (e *Engine) resetWatchesLocked(c *Conn) {
	e.removeWatches(c, c.watches)
	e.dropTxns(c)
}

// removeWatches unregisters ws, watches of c, and drops their queued and
// parked events. Each list involved (c's watches, each path's index entry,
// c's output) is filtered once, whatever the number removed: a connection
// closing with thousands of watches and queued events must not hold the
// engine's lock for a time quadratic in them.
func (e *Engine) removeWatches(c *Conn, ws []*watch) {
	if len(ws) == 0 {
		return
	}
	queued := false
	d := e.domains[c.domid]
	for _, w := range ws {
		w.removed = true
		e.watchCount--
		if w.expiry != nil {
			w.expiry.Stop()
			w.expiry = nil
		}
		queued = queued || w.queued > 0
		w.queued = 0
		for _, p := range w.overflow {
			e.releaseParked(p.source)
		}
		w.overflow = nil
		if d != nil && c.dom == d {
			d.watches--
		}
	}
	paths := make(map[string]bool, len(ws))
	for _, w := range ws {
		if !paths[w.path] {
			paths[w.path] = true
			e.unindex(w.path)
		}
	}
	e.removeSteps += len(c.watches)
	c.watches = slices.DeleteFunc(c.watches, isRemoved)
	if len(c.watches) == 0 {
		c.watches = nil
	}
	if queued {
		e.dropRemovedEvents(c)
	}
}

func isRemoved(w *watch) bool { return w.removed }

// unindex drops the removed watches from path's index entry.
func (e *Engine) unindex(path string) {
	list := e.watchIdx[path]
	e.removeSteps += len(list)
	list = slices.DeleteFunc(list, isRemoved)
	if len(list) == 0 {
		delete(e.watchIdx, path)
	} else {
		e.watchIdx[path] = list
	}
}

// dropRemovedEvents drops from c's output the events of removed watches.
func (e *Engine) dropRemovedEvents(c *Conn) {
	e.removeSteps += len(c.out)
	e.dropEvents(c, func(it outItem) bool { return it.watch != nil && it.watch.removed })
}

// dropEvents drops from c's output the items drop selects (events only:
// a reply has no watch) and says how many went.
func (e *Engine) dropEvents(c *Conn, drop func(outItem) bool) int {
	kept := c.out[:0]
	for _, it := range c.out {
		if it.watch != nil && drop(it) {
			c.forgetEvent(it.msg)
			e.outBytes -= int64(len(it.msg))
			continue
		}
		kept = append(kept, it)
	}
	dropped := len(c.out) - len(kept)
	clear(c.out[len(kept):])
	c.out = kept
	return dropped
}

func (e *Engine) doWatch(c *Conn, m *wire.Msg) ([]byte, error) {
	args := splitArgs(m.Payload)
	depth := -1
	switch {
	case len(args) == 3 && e.features(c)&FeatureWatchDepth != 0:
		depth = atoi(args[2])
		if depth < 0 {
			return nil, syscall.EINVAL
		}
	case len(args) != 2:
		return nil, syscall.EINVAL
	}
	p, rel, err := canonicalPath(args[0], c.homePath(), true, e.pathMax(c))
	if err != nil {
		return nil, err
	}
	for _, w := range c.watches {
		if w.path == p && w.token == args[1] {
			return nil, syscall.EEXIST
		}
	}
	if err := e.checkQuota(c, QWatches, len(c.watches), 1); err != nil {
		return nil, err
	}
	e.watchSeq++
	w := &watch{c: c, path: p, token: args[1], depth: depth, seq: e.watchSeq}
	if rel {
		w.relPrefix = len(c.homePath()) + 1
	}
	c.watches = append(c.watches, w)
	e.watchIdx[p] = append(e.watchIdx[p], w)
	e.watchCount++
	if c.dom != nil {
		c.dom.watches++
	}
	probe()
	// The reply goes first, then the initial event.
	c.queueReply(wire.Msg{Type: wire.Watch, ReqID: m.ReqID, TxID: m.TxID, Payload: okPayload})
	e.queueEvent(w, p[w.relPrefix:], nil)
	return nil, errReplied
}

func (e *Engine) doUnwatch(c *Conn, payload []byte) ([]byte, error) {
	args := splitArgs(payload)
	if len(args) != 2 {
		return nil, syscall.EINVAL
	}
	p, _, err := canonicalPath(args[0], c.homePath(), true, e.pathMax(c))
	if err != nil {
		return nil, err // EINVAL, as WATCH (C 4.22; 4.17 answered ENOENT)
	}
	for _, w := range c.watches {
		if w.path == p && w.token == args[1] {
			e.removeWatch(w)
			return ok()
		}
	}
	return nil, syscall.ENOENT
}

// fireSpecial fires @introduceDomain or @releaseDomain: without a domid
// for plain watches, with "/<domid>" for depth-1 and per-domain watches.
func (e *Engine) fireSpecial(name string, domid uint32, plain, withDomid bool) {
	n := e.nodes.get(name)
	if n == nil {
		return
	}
	if plain {
		e.fireNow(nil, name, n.perms, nil, matchNoDepth)
	}
	if withDomid {
		e.fireNow(nil, name+"/"+strconv.FormatUint(uint64(domid), 10), n.perms, nil, matchDepth)
	}
}

// watchSummary describes c's watches and queues for CONTROL.
func (e *Engine) watchSummary(c *Conn) string {
	var b bytes.Buffer
	for _, w := range c.watches {
		b.WriteString("  watch " + w.path + " token " + strconv.Quote(w.token) +
			" queued " + strconv.Itoa(w.queued) + " parked " + strconv.Itoa(len(w.overflow)) + "\n")
	}
	return b.String()
}
