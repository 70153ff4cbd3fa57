// Package store is the xenstore database and protocol engine: the node tree,
// permissions, transactions, watches, the domain table, quotas and the
// handling of every request type of docs/misc/xenstore.txt.
//
// It is pure Go with no OS or Xen calls. Transports (a Unix socket, a
// shared-memory ring) create a Conn per client and feed it whole requests
// with Conn.HandleTake, which hands back the output and the connection's
// state in the same acquisition of the engine lock (Conn.Handle and
// Conn.NextOutput do it in steps, for in-process drivers); whatever the Xen
// side must do (map a ring on INTRODUCE, tell whether a domain exists) goes
// through the Platform interface.
//
// Concurrency: one mutex guards all engine state, so requests are handled
// one at a time as in C xenstored. Transports may call Conn methods from any
// goroutine. The engine never blocks while holding the lock; it signals a
// transport only through the non-blocking wake callback given to NewConn.
//
// Bounded work (the XSA-326 design): a Conn holds at most maxoutstanding
// replies not yet taken by its transport, and each watch at most
// maxwatchevents queued events. While a connection's reply queue is full, or
// while events it caused are parked because a target watch's queue is full,
// WantsInput reports false and the transport must stop reading its
// requests. Parked events move to their watch as the target drains, in
// order. A watcher that leaves its events unread past Config.EventTimeout
// loses them, and its later ones until it reads again, so that nobody
// stays parked behind it (scheduleExpiry).
package store

import (
	"bytes"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/xsstub/xenstored/wire"
)

// DomidInvalid is Xen's DOMID_INVALID.
const DomidInvalid = 0x7ff4

// Platform is what the engine needs from the hypervisor side. A nil
// Platform (plain socket daemon) treats every domain as existing and keeps
// introduced domains in the table without a ring.
type Platform interface {
	// DomainExists reports whether domid currently exists. It is called
	// with the engine locked, so it must not make hypercalls: see
	// DomainResolver. When it cannot tell it answers false, so that a
	// permission entry for a domain of unknown existence grants nothing.
	DomainExists(domid uint32) bool
	// AttachRing maps the ring of c's domain (or takes the mapping
	// RingPreparer made) and binds its event channel, then serves c; it
	// returns c's wake callback (see NewConn). It is called with the
	// engine locked and must not call back into it.
	AttachRing(c *Conn, port uint32, gfn uint64) (wake func(), err error)
	// DetachRing stops serving c and releases its ring and event channel.
	DetachRing(c *Conn)
}

// Config configures an Engine. The zero value is usable: default quotas,
// slog's default logger, no Platform.
type Config struct {
	Quotas      *Quotas
	Logger      *slog.Logger
	Platform    Platform
	PrivDomid   uint32 // the control domain, 0 unless told otherwise
	StoreDomid  uint32 // the domain the store runs in (0 for a dom0 daemon)
	KeepOrphans bool   // keep a dead domain's nodes (C xenstored -K)

	// WriteRate and WriteBurst limit the changes an unprivileged domain
	// makes (XSA-206; see ratelimit.go). Both zero: the defaults; a
	// negative WriteRate disables the limit.
	WriteRate, WriteBurst int
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
	// LiveUpdate lets CONTROL live-update replace the daemon (nil: it
	// cannot be).
	LiveUpdate LiveUpdater
	// EventTimeout bounds how long a watcher (guest or dom0) may leave
	// watch events unread while they hold up the connections that caused
	// them: older ones are dropped, as C xenstored does for guests after
	// 20 s, and further ones until it reads. Zero: 20 s; negative: never.
	EventTimeout time.Duration
	// MemoryCeiling bounds, in bytes, the engine's estimate of the memory
	// it holds: past it unprivileged changes get ENOMEM (ceiling.go;
	// CeilingFor derives it from the process memory limit). 0: none.
	MemoryCeiling int64
	// SystemReport, if set, adds the memory of the system the daemon runs
	// in (in a stub domain: the whole domain's) to CONTROL memreport. It
	// is called under the engine's lock and must be quick (a /proc read).
	SystemReport func() string
	// FirstAnswer, if set, runs once, in its own goroutine, after the
	// engine answered its first request (the stub's boot timeline).
	FirstAnswer func()
}

// Engine is the store. Create it with New; it is safe for concurrent use.
type Engine struct {
	mu  sync.Mutex
	cfg Config
	log *slog.Logger

	quotas Quotas

	// nodes holds the live tree by canonical path. Stored records are
	// immutable: every change stores a new one, so a node read from it
	// (a transaction's snapshot) stays valid.
	nodes *nodeTable
	gen   uint64 // last generation handed out; node.gen 0 means "absent"

	conns    map[*Conn]struct{}
	connSeq  uint64
	watchIdx map[string][]*watch // by canonical watch path
	watchSeq uint64

	domains map[uint32]*Domain
	// mentions indexes, per domain other than the control domain, the
	// paths whose permissions name it (see indexPerms).
	mentions map[uint32]map[string]struct{}

	traceOn bool
	trace   func(string) // CONTROL print / log sink, may be nil

	lu *luSession // a live update in progress, or nil

	answered bool // some request was answered (Config.FirstAnswer ran)

	// For the memory ceiling's estimate (ceiling.go): node memory as the
	// memory quota counts it, summed over all owners; watches; bytes held
	// by open transactions' entries; encoded messages queued for output.
	memTotal   int64
	watchCount int
	txBytes    int64
	outBytes   int64
	// Changes refused at the ceiling, and when that was last logged.
	ceilRefused, ceilRefusedLogged uint64
	ceilLogged                     time.Time

	// removeSteps counts the elements visited while removing watches,
	// so that tests see the cost grow linearly (no wall-clock bounds).
	removeSteps int

	jr        journal // the request being dispatched (contain.go)
	contained uint64  // requests whose internal failure was contained
}

// node is one node as the engine works on it: read from Engine.nodes (a
// copy whose slices are shared and never modified) or built for a change.
type node struct {
	value []byte
	perms Perms
	// children holds the leaf names, each NUL-terminated, in insertion
	// order: exactly DIRECTORY's reply, and as C xenstored keeps them.
	children []byte
	gen      uint64
}

// clone returns a copy to build a changed node from. The value, the
// permission list and the child list are shared: none is ever changed in
// place, only replaced (withChild, withoutChild and Perms.clone make new
// ones).
func (n *node) clone() *node {
	c := *n
	return &c
}

// detached returns n with its own copies of the value and child list, for
// keeping across requests: a node read from Engine.nodes aliases a whole
// chunk of the table, and a transaction holding many such nodes would pin
// many chunks after compaction (a guest could hold 64 KiB per node read).
// A nil n stays nil.
func (n *node) detached() *node {
	if n == nil {
		return nil
	}
	c := *n
	c.value = bytes.Clone(n.value)
	c.children = bytes.Clone(n.children)
	return &c
}

// size is a node's size as the node-size quota counts it (C xenstored's
// record: header, permissions, value, children names).
func (n *node) size() int {
	return 24 + 8*len(n.perms) + len(n.value) + len(n.children)
}

// New creates an engine holding the nodes C xenstored creates at start-up:
// /, /tool, /tool/xenstored and the special nodes @introduceDomain and
// @releaseDomain, all owned by the control domain with no access for
// others, except that every domain may read @releaseDomain (DOMID_ANY, as
// C 4.22 sets it up), so a guest can watch @releaseDomain/<domid> for the
// domains it talks to.
func New(cfg Config) *Engine {
	e := &Engine{
		cfg:      cfg,
		log:      cfg.Logger,
		nodes:    newNodeTable(),
		conns:    make(map[*Conn]struct{}),
		watchIdx: make(map[string][]*watch),
		domains:  make(map[uint32]*Domain),
		mentions: make(map[uint32]map[string]struct{}),
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if cfg.WriteRate == 0 && cfg.WriteBurst == 0 {
		e.cfg.WriteRate, e.cfg.WriteBurst = DefaultWriteRate, DefaultWriteBurst
	}
	if e.cfg.WriteRate < 0 {
		e.cfg.WriteRate = 0
	}
	if e.cfg.EventTimeout == 0 {
		e.cfg.EventTimeout = DefaultEventTimeout
	}
	if cfg.Quotas != nil {
		e.quotas = *cfg.Quotas
	} else {
		e.quotas = DefaultQuotas()
	}
	owner := Perms{{ID: cfg.PrivDomid, Access: PermNone}}
	e.setLive("/", &node{perms: owner, children: []byte("tool\x00")})
	e.setLive("/tool", &node{perms: owner, children: []byte("xenstored\x00")})
	e.setLive("/tool/xenstored", &node{perms: owner})
	e.setLive("@introduceDomain", &node{perms: owner})
	e.setLive("@releaseDomain", &node{perms: Perms{owner[0], {ID: DomidAny, Access: PermRead}}})
	e.domainLocked(cfg.PrivDomid).Introduced = true
	return e
}

// withChild returns a new child list with name appended.
func withChild(list []byte, name string) []byte {
	out := make([]byte, 0, len(list)+len(name)+1)
	out = append(out, list...)
	out = append(out, name...)
	return append(out, 0)
}

// withoutChild returns a new child list without name (unchanged if absent).
func withoutChild(list []byte, name string) []byte {
	for off := 0; off < len(list); {
		end := off + bytes.IndexByte(list[off:], 0)
		if string(list[off:end]) == name {
			out := make([]byte, 0, len(list)-(end+1-off))
			out = append(out, list[:off]...)
			return append(out, list[end+1:]...)
		}
		off = end + 1
	}
	return list
}

// eachChild calls f with each child name in order.
func eachChild(list []byte, f func(name string)) {
	for off := 0; off < len(list); {
		end := off + bytes.IndexByte(list[off:], 0)
		f(string(list[off:end]))
		off = end + 1
	}
}

// SetTrace installs a sink for CONTROL print and request tracing; on turns
// tracing of requests and replies on (CONTROL log toggles it later).
func (e *Engine) SetTrace(f func(string), on bool) {
	e.mu.Lock()
	e.trace = f
	e.traceOn = on
	e.mu.Unlock()
}

// NodeCount is the number of nodes in the tree (special nodes included).
func (e *Engine) NodeCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.nodes.len()
}

// outItem is one queued outgoing message, already encoded.
type outItem struct {
	msg   []byte
	watch *watch    // nil for a reply
	at    time.Time // when an event was queued (see expireEvents)
}

// Conn is one client connection as the engine sees it. Transports create it
// with Engine.NewConn and own the I/O; all methods are safe for concurrent
// use.
type Conn struct {
	e     *Engine
	id    uint64
	domid uint32
	priv  bool
	dom   *Domain // the domain served over this connection's ring; nil for sockets
	wake  func()  // non-blocking: output is ready or input may resume

	out     []outItem // FIFO of replies and events
	replies int       // replies in out
	// queuedEvents counts identical queued events (by payload): like C
	// xenstored, an event identical to one not yet sent is dropped.
	queuedEvents map[string]int

	watches []*watch
	txns    map[uint32]*txn
	nextTx  uint32
	// abortedTxns were open when a live update happened (see State).
	abortedTxns map[uint32]bool

	parked int // events this connection caused that wait for a full watch
	closed bool

	handled uint64 // Handle calls, for transports (HandledLocked)
	home    string // domainPath(domid), made on first use (homePath)
	// inCall: the engine lock is held by HandleTake or Take for this
	// connection, whose caller learns of new output and of input resuming
	// from the Status it returns: its own wake-ups are not signalled.
	inCall bool

	// Statistics for CONTROL.
	requests uint64
	dropped  uint64
}

// NewConn registers a connection for domain domid. priv marks a
// connection with the control domain's rights (every Unix socket client,
// and the control domain's ring). wake is called, without blocking and with
// the engine lock held, whenever output becomes available or input may
// resume; it must only signal.
func (e *Engine) NewConn(domid uint32, priv bool, wake func()) *Conn {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.newConnLocked(domid, priv, wake)
}

func (e *Engine) newConnLocked(domid uint32, priv bool, wake func()) *Conn {
	if wake == nil {
		wake = func() {}
	}
	e.connSeq++
	c := &Conn{e: e, id: e.connSeq, domid: domid, priv: priv, wake: wake, nextTx: 1}
	e.conns[c] = struct{}{}
	return c
}

// RingFeatures is the server feature word for c's ring page: its domain's
// features as SET_FEATURE left them (all supported ones by default), as C
// xenstored copies them at INTRODUCE. Only for Platform.AttachRing, which
// runs with the engine locked.
func (c *Conn) RingFeatures() uint32 {
	if c.dom == nil {
		return SupportedFeatures
	}
	return c.dom.Features
}

// CurrentRingFeatures is RingFeatures for a caller without the engine
// lock (a transport adopting a ring after a live update).
func (c *Conn) CurrentRingFeatures() uint32 {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	return c.RingFeatures()
}

// homePath is the connection's domain's home, against which relative
// paths resolve: made once, not per request. Engine locked.
func (c *Conn) homePath() string {
	if c.home == "" {
		c.home = domainPath(c.domid)
	}
	return c.home
}

// Domid is the domain the connection speaks for.
func (c *Conn) Domid() uint32 { return c.domid }

// ID is a number unique to this connection in its engine.
func (c *Conn) ID() uint64 { return c.id }

// WantsInput reports whether the transport may read and hand over the next
// request: false while maxoutstanding replies wait to be sent, while events
// this connection caused are parked, and after Close.
func (c *Conn) WantsInput() bool {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	return c.wantsInputLocked()
}

func (c *Conn) wantsInputLocked() bool {
	if c.closed || c.parked > 0 || c.e.inDebt(c) || c.e.luWaiting(c) {
		return false
	}
	max := c.e.quotas.Hard[QMaxOutstanding]
	return max <= 0 || c.replies < max
}

// NextOutput removes and returns the next encoded message to send, or
// false when there is none. Taking an event may unpark events elsewhere.
func (c *Conn) NextOutput() ([]byte, bool) {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	return c.nextOutputLocked()
}

// keptOutCap is the largest emptied output queue a connection keeps.
const keptOutCap = 8

func (c *Conn) nextOutputLocked() ([]byte, bool) {
	e := c.e
	if len(c.out) == 0 {
		return nil, false
	}
	it := c.out[0]
	if !c.closed { // a closed connection's last reply is not counted
		e.outBytes -= int64(len(it.msg))
	}
	c.out[0] = outItem{}
	switch {
	case len(c.out) > 1:
		c.out = c.out[1:]
	case cap(c.out) <= keptOutCap:
		c.out = c.out[:0] // the usual single reply: no new array for the next
	default:
		c.out = nil // let a large backing array go
	}
	if it.watch == nil {
		c.replies--
		if c.replies == e.quotas.Hard[QMaxOutstanding]-1 {
			c.signal() // input may resume
		}
	} else {
		it.watch.queued--
		c.forgetEvent(it.msg)
		e.watchRead(it.watch)
		e.unpark(it.watch)
	}
	return it.msg, true
}

// HandledLocked is how many requests Handle has taken for c. Only for a
// LiveUpdater's Exec, which runs with the engine locked: a transport
// tells by it whether a request it passed was handled before the update.
func (c *Conn) HandledLocked() uint64 { return c.handled }

// PendingOutput is the number of queued outgoing messages.
func (c *Conn) PendingOutput() int {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	return len(c.out)
}

// Close unregisters the connection: its watches (with their queued and
// parked events) and transactions go, and events it had parked elsewhere
// are delivered or dropped without blocking anyone.
func (c *Conn) Close() {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closeConnLocked(c)
}

func (e *Engine) closeConnLocked(c *Conn) {
	if c.closed {
		return
	}
	c.closed = true
	if e.lu != nil && e.lu.conn == c {
		e.luEnd() // its owner left: nobody to answer
	}
	e.resetWatchesLocked(c) // and transactions
	c.dropOutput()
	delete(e.conns, c)
	if c.dom != nil && c.dom.conn == c {
		c.dom.conn = nil
	}
}

// Handle processes one request and queues its reply (and any events). The
// transport must have checked WantsInput.
func (c *Conn) Handle(m wire.Msg) {
	c.prepare(&m) // hypercalls and mappings, so before the lock
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	c.handleLocked(&m)
}

// Status is what a transport learns about a connection at the end of
// HandleTake or Take, under the same lock as the call's work.
type Status struct {
	WantsInput bool // as WantsInput: it may read and hand over the next request
	Queued     int  // messages still queued after the call (PendingOutput)
	Closed     bool // the engine closed c (Closed): send what it gave, then close
}

// HandleTake is Handle followed by Take in one acquisition of the engine
// lock: a transport's whole step for one request. The transport must have
// been told WantsInput (by the last Status). Wake-ups the call causes for c
// itself (its reply, input resuming) are not signalled: the Status says
// what they would have.
func (c *Conn) HandleTake(m wire.Msg, into func(msg []byte) bool) Status {
	c.prepare(&m) // hypercalls and mappings, so before the lock
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	c.inCall = true
	defer func() { c.inCall = false }()
	c.handleLocked(&m)
	return c.takeLocked(into)
}

// Take removes queued messages in order, passing each to into with the
// engine locked, until into returns false or none is left (nil into:
// none is taken), and reports c's status, in one acquisition of the
// engine lock. A transport that keeps what it has not written under its
// own lock (taken inside this one) then never holds a message the
// engine's state has lost, even for a moment: a live update exports both
// under the engine lock. As in HandleTake, c's own wake-ups during the
// call are not signalled.
func (c *Conn) Take(into func(msg []byte) bool) Status {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	c.inCall = true
	defer func() { c.inCall = false }()
	return c.takeLocked(into)
}

func (c *Conn) takeLocked(into func(msg []byte) bool) Status {
	for into != nil {
		msg, ok := c.nextOutputLocked()
		if !ok || !into(msg) {
			break
		}
	}
	return Status{WantsInput: c.wantsInputLocked(), Queued: len(c.out), Closed: c.closed}
}

func (c *Conn) handleLocked(m *wire.Msg) {
	e := c.e
	c.handled++
	if c.closed {
		return
	}
	c.requests++
	if e.traceOn && e.trace != nil {
		e.trace("IN  conn " + strconv.FormatUint(c.id, 10) + " " + m.Type.String() + " " + printable(m.Payload))
	}
	payload, err := e.dispatchContained(c, m)
	if err == errContained {
		// c is closed now, but its transport still sends this.
		c.queueReply(wire.ErrorMsg(m.ReqID, m.TxID, syscall.EIO))
		return
	}
	if c.closed || err == errReplied { // closed: RELEASE of our own domain, say
		return
	}
	if err != nil {
		c.queueReply(wire.ErrorMsg(m.ReqID, m.TxID, toErrno(err)))
		return
	}
	if len(payload) > wire.PayloadMax {
		// Seed fix 1 (XSA-72): an oversized reply becomes E2BIG and the
		// connection lives on.
		c.queueReply(wire.ErrorMsg(m.ReqID, m.TxID, syscall.E2BIG))
		return
	}
	c.queueReply(wire.Msg{Type: m.Type, ReqID: m.ReqID, TxID: m.TxID, Payload: payload})
	if e.lu != nil && e.lu.start != nil && c != e.lu.conn {
		e.luTry() // a transaction it waits for may have ended
	}
}

// dropOutput discards everything queued (the watches' counts must already
// be reset).
func (c *Conn) dropOutput() {
	for i := range c.out {
		c.e.outBytes -= int64(len(c.out[i].msg))
		c.out[i] = outItem{}
	}
	c.out = nil
	c.replies = 0
	c.queuedEvents = nil
}

func (c *Conn) forgetEvent(msg []byte) {
	k := string(msg[wire.HeaderSize:])
	if c.queuedEvents[k]--; c.queuedEvents[k] <= 0 {
		delete(c.queuedEvents, k)
	}
}

func (c *Conn) queueReply(m wire.Msg) {
	if c.e.traceOn && c.e.trace != nil {
		c.e.trace("OUT conn " + strconv.FormatUint(c.id, 10) + " " + m.Type.String() + " " + printable(m.Payload))
	}
	msg := m.Encode()
	c.out = append(c.out, outItem{msg: msg})
	if !c.closed {
		c.e.outBytes += int64(len(msg))
	}
	c.replies++
	c.signal()
}

// signal calls the transport's wake callback, unless the transport is in
// HandleTake or Take for c and learns the news from their Status.
func (c *Conn) signal() {
	if !c.inCall {
		c.wake()
	}
}

func toErrno(err error) syscall.Errno {
	if e, ok := err.(syscall.Errno); ok {
		return e
	}
	return syscall.EINVAL
}

var okPayload = []byte("OK\x00")

func ok() ([]byte, error) { return okPayload, nil }

// printable renders a payload for logs: NULs as spaces, cut at 80 bytes.
func printable(p []byte) string {
	n := len(p)
	if n > 80 {
		n = 80
	}
	b := make([]byte, n)
	for i := 0; i < n; i++ {
		c := p[i]
		if c == 0 {
			c = ' '
		} else if c < 0x20 || c > 0x7e {
			c = '.'
		}
		b[i] = c
	}
	return string(b)
}

// sortedConns returns connections in creation order, so that events for
// one change reach connections in a stable order.
func (e *Engine) sortedConns() []*Conn {
	cs := make([]*Conn, 0, len(e.conns))
	for c := range e.conns {
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].id < cs[j].id })
	return cs
}
