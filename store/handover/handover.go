package handover

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/store/migration"
	"github.com/xsstub/xenstored/wire"
)

// Transports is what live update carries besides the store's State: the
// descriptors that survive the exec and the bytes each connection's
// transport held.
type Transports struct {
	ListenFD int32           // the socket listener; -1: none
	EvtchnFD int32           // the event channel device; -1: none
	Sockets  map[uint64]Conn // by store connection ID
	Rings    map[uint64]Conn // by store connection ID; FD is the local event channel port
	Version  uint32          // of the stream to write; 0: 2
}

// NewTransports is an empty handover: no listener, no event channel.
func NewTransports() *Transports {
	return &Transports{ListenFD: -1, EvtchnFD: -1, Sockets: map[uint64]Conn{}, Rings: map[uint64]Conn{}}
}

// Conn is one connection's transport state: the one handover type of both
// transports.
type Conn struct {
	FD      int32  // socket descriptor, or a ring's local event channel port
	In      []byte // bytes read but not handled: the front of a request
	Out     []byte // bytes taken from the engine but not written
	Partial int    // Out's first bytes that end a message partly written; whole messages follow
}

// Encode writes st and h as the xenstore migration stream
// (version 2), records in C xenstored's order: global data, quotas, each
// connection with its watches and transactions, the nodes from the root
// down, the special nodes, then the domains. A connection's out-data is
// the bytes its transport had not written (counted as out-resp-len) and
// then the engine's queue; the pending live-update reply ends it.
func Encode(w io.Writer, st *store.State, h *Transports) error {
	mw, err := migration.NewWriter(w, &migration.WriterOptions{Version: h.Version})
	if err != nil {
		return err
	}
	quotas, err := namedQuotas(st.Quotas)
	if err != nil {
		return fmt.Errorf("live-update state: %w", err)
	}
	// Version 1 (C xenstored 4.17) has no quota or domain records: the
	// caller checked that they hold nothing its command line does not.
	v1 := h.Version == migration.Version1
	recs := []migration.Record{&migration.Global{SocketFD: h.ListenFD, EvtchnFD: h.EvtchnFD}}
	if !v1 {
		recs = append(recs, &migration.GlobalQuota{PerDomain: quotas})
	}
	conns, err := connRecords(st, h)
	if err != nil {
		return fmt.Errorf("live-update state: %w", err)
	}
	recs = append(recs, conns...)
	for _, n := range st.Nodes {
		recs = append(recs, &migration.Node{Path: n.Path, Value: n.Value, Perms: migrationPerms(n.Perms)})
	}
	for _, d := range st.Domains {
		if v1 {
			break
		}
		quotas, err := namedQuotas(d.Quotas)
		if err != nil {
			return fmt.Errorf("live-update state: domain %d: %w", d.ID, err)
		}
		recs = append(recs, &migration.Domain{DomID: uint16(d.ID), Features: d.Features, Quotas: quotas})
	}
	for _, r := range recs {
		if err := mw.WriteRecord(r); err != nil {
			return fmt.Errorf("live-update state: %w", err)
		}
	}
	return mw.Close()
}

// connRecords are the connections, numbered from 1 as C does, each with
// its watches and transactions: domains first, then sockets. C xenstored
// 4.17 crashes on a socket connection read before dom0's ring: a socket
// client belongs to dom0 there.
func connRecords(st *store.State, h *Transports) ([]migration.Record, error) {
	var recs []migration.Record
	next := uint32(1)
	introduced := map[uint32]store.DomainState{}
	for _, d := range st.Domains {
		if d.Introduced {
			introduced[d.ID] = d
		}
	}
	add := func(cs store.ConnState) error {
		rec, err := connRecord(cs, st, h, next, introduced)
		if err != nil || rec == nil {
			return err // nil: a socket whose transport is gone
		}
		next++
		recs = append(recs, rec)
		for _, ws := range cs.Watches {
			recs = append(recs, watchRecord(rec.ID, ws))
		}
		for _, tx := range cs.AbortedTxns {
			recs = append(recs, &migration.Transaction{ConnID: rec.ID, TxID: tx})
		}
		return nil
	}
	for _, cs := range st.Conns {
		if cs.Ring {
			if err := add(cs); err != nil {
				return nil, err
			}
		}
	}
	for _, cs := range st.Conns {
		if cs.Ring {
			delete(introduced, cs.Domid)
		}
	}
	// Introduced domains without a ring connection (a daemon without
	// Xen, the store's own domain, a ring not mapped again): a ring
	// record with event channel 0, which no served ring has, names them.
	// C 4.22 reads port 0 the same way (domain.c read_state_connection:
	// a domain it could not restore is kept, its connection ignored, for
	// its @releaseDomain).
	for _, id := range slices.Sorted(maps.Keys(introduced)) {
		recs = append(recs, &migration.Connection{ID: next, Kind: migration.ConnRing,
			Ring: migration.Ring{DomID: uint16(id), TargetDomID: target(introduced[id])}})
		next++
	}
	for _, cs := range st.Conns {
		if !cs.Ring {
			if err := add(cs); err != nil {
				return nil, err
			}
		}
	}
	return recs, nil
}

func target(d store.DomainState) uint16 {
	if d.HasTarget {
		return uint16(d.Target)
	}
	return migration.DomIDInvalid
}

// connRecord is cs's CONNECTION_DATA record, numbered id; nil for a
// connection whose transport is gone. Its out-resp-len counts only the rest
// of a message partly written, as C xenstored's does: the transport's whole
// messages go after it, with the engine's queue.
func connRecord(cs store.ConnState, st *store.State, h *Transports, id uint32, doms map[uint32]store.DomainState) (*migration.Connection, error) {
	rec := &migration.Connection{ID: id}
	var ts Conn
	if cs.Ring {
		rs, ok := h.Rings[cs.ID]
		if !ok || rs.FD <= 0 {
			return nil, nil
		}
		d := doms[cs.Domid]
		rec.Kind = migration.ConnRing
		rec.Ring = migration.Ring{DomID: uint16(cs.Domid), TargetDomID: target(d), Evtchn: uint32(rs.FD)}
		ts = rs
	} else {
		s, ok := h.Sockets[cs.ID]
		if !ok {
			return nil, nil
		}
		rec.Kind, rec.Socket = migration.ConnSocket, s.FD
		ts = s
	}
	if ts.Partial < 0 || ts.Partial > min(len(ts.Out), math.MaxUint16) {
		return nil, fmt.Errorf("connection %d: out-resp-len cannot carry %d bytes of a message partly written (%d unsent)", id, ts.Partial, len(ts.Out))
	}
	rec.In, rec.OutResp = ts.In, uint16(ts.Partial)
	out := slices.Clone(ts.Out)
	for _, m := range cs.Output {
		out = append(out, m...)
	}
	if r := st.Reply; r != nil && r.Conn == cs.ID {
		ok := wire.Msg{Type: wire.Control, ReqID: r.ReqID, TxID: r.TxID, Payload: []byte("OK\x00")}
		out = append(out, ok.Encode()...)
	}
	rec.Out = out
	return rec, nil
}

func watchRecord(conn uint32, ws store.WatchState) migration.Record {
	path := ws.Path[ws.RelPrefix:] // as the client gave it
	if ws.Depth < 0 {
		return &migration.Watch{ConnID: conn, Path: path, Token: ws.Token}
	}
	return &migration.WatchExtended{ConnID: conn, Path: path, Token: ws.Token, Depth: uint16(ws.Depth)}
}

var permLetters = map[uint8]byte{store.PermNone: 'n', store.PermRead: 'r', store.PermWrite: 'w', store.PermRead | store.PermWrite: 'b'}

func migrationPerms(ps store.Perms) []migration.Perm {
	out := make([]migration.Perm, len(ps))
	for i, p := range ps {
		out[i] = migration.Perm{Perm: permLetters[p.Access], DomID: uint16(p.ID)}
		if p.Ignore {
			out[i].Flags = migration.PermFlagIgnore
		}
	}
	return out
}

func storePerms(ps []migration.Perm) (store.Perms, error) {
	out := make(store.Perms, len(ps))
	for i, p := range ps {
		acc, err := store.ParsePerm(string(p.Perm) + "0")
		if err != nil {
			return nil, err
		}
		out[i] = store.Perm{ID: uint32(p.DomID), Access: acc.Access, Ignore: p.Flags&migration.PermFlagIgnore != 0}
	}
	return out, nil
}

// namedQuotas lists every quota by name (soft ones prefixed). A value the
// stream's 32 bits cannot carry is an error, never truncated.
func namedQuotas(q store.Quotas) ([]migration.Quota, error) {
	var out []migration.Quota
	for _, name := range store.QuotaNames() {
		qq, soft, _ := store.QuotaByName(name)
		v := q.Hard[qq]
		if soft {
			v = q.Soft[qq]
		}
		if v < 0 || v > math.MaxUint32 {
			return nil, fmt.Errorf("quota %s: %d does not fit the stream's 32 bits", name, v)
		}
		out = append(out, migration.Quota{Name: name, Value: uint32(v)})
	}
	return out, nil
}

// setQuotas applies named quotas over q. Another writer's stream may hold
// what ours cannot: a name we do not know (a newer daemon's) is skipped, a
// value past store.MaxQuota (C keeps unsigned 32 bits) becomes
// store.MaxQuota, which no count reaches; each is told to warn.
func setQuotas(q *store.Quotas, named []migration.Quota, warn func(msg string, args ...any)) {
	for _, n := range named {
		v := int64(n.Value)
		if v > store.MaxQuota {
			warn("live-update state: quota above the largest we keep, kept as the largest", "quota", n.Name, "value", v, "kept", store.MaxQuota)
			v = store.MaxQuota
		}
		if err := q.Set(n.Name, int(v), false); err != nil {
			warn("live-update state: quota skipped", "quota", n.Name, "value", n.Value, "err", err)
		}
	}
}

// Decode reads a stream of ours back into a State and the transports'
// state; priv is the control domain (its ring connection is privileged).
// A ring record with event channel 0 only says that its domain is
// introduced.
func Decode(r io.Reader, priv uint32) (*store.State, *Transports, error) {
	return DecodeWith(r, DecodeOptions{Priv: priv})
}

// DecodeOptions adapt Decode to a stream another daemon wrote.
type DecodeOptions struct {
	Priv   uint32                   // the control domain
	Quotas *store.Quotas            // quotas the stream's own apply over; nil: the defaults
	Reader *migration.ReaderOptions // nil: strict, for our own streams
	// Warn hears what the stream held that the state cannot keep as it
	// was (see setQuotas); nil: nobody.
	Warn func(msg string, args ...any)
}

// DecodeWith is Decode with options.
func DecodeWith(r io.Reader, o DecodeOptions) (*store.State, *Transports, error) {
	d := newDecoder(o.Priv)
	if o.Quotas != nil {
		d.st.Quotas = *o.Quotas
	}
	d.opts = o.Reader
	if o.Warn != nil {
		d.warn = o.Warn
	}
	if err := d.read(r); err != nil {
		return nil, nil, err
	}
	return d.st, d.h, nil
}

// Check reads the stream as the next daemon will, without keeping the
// nodes: a stream it cannot read must never be handed over.
func Check(r io.Reader) error {
	d := newDecoder(0)
	d.dropNodes = true
	return d.read(r)
}

func newDecoder(priv uint32) *decoder {
	return &decoder{st: &store.State{Quotas: store.DefaultQuotas()}, h: NewTransports(),
		priv: priv, conns: map[uint32]int{}, doms: map[uint32]int{}, warn: func(string, ...any) {}}
}

func (d *decoder) read(r io.Reader) error {
	rd, err := migration.NewReader(r, d.opts)
	if err != nil {
		return fmt.Errorf("live-update state: %w", err)
	}
	for {
		rec, err := rd.Next() // one record at a time: the stream is never all in memory
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("live-update state: %w", err)
		}
		if err := d.record(rec); err != nil {
			return fmt.Errorf("live-update state: %s: %w", rec.Type(), err)
		}
	}
}

type decoder struct {
	st    *store.State
	h     *Transports
	priv  uint32         // the control domain: its ring connection is privileged
	conns map[uint32]int // conn-id to index in st.Conns; -1: a ring record without a connection
	doms  map[uint32]int // domid to index in st.Domains

	dropNodes bool                     // checking only: nodes are read, not kept
	opts      *migration.ReaderOptions // nil: strict, for our own streams
	warn      func(msg string, args ...any)
}

func (d *decoder) domain(id uint32) *store.DomainState {
	i, ok := d.doms[id]
	if !ok {
		i = len(d.st.Domains)
		d.doms[id] = i
		d.st.Domains = append(d.st.Domains, store.DomainState{ID: id, Features: store.SupportedFeatures, Quotas: d.st.Quotas})
	}
	return &d.st.Domains[i]
}

func (d *decoder) record(rec migration.Record) error {
	switch r := rec.(type) {
	case *migration.Global:
		d.h.ListenFD, d.h.EvtchnFD = r.SocketFD, r.EvtchnFD
	case *migration.GlobalQuota:
		setQuotas(&d.st.Quotas, r.PerDomain, d.warn)
		setQuotas(&d.st.Quotas, r.Global, d.warn)
	case *migration.Connection:
		return d.connection(r)
	case *migration.Watch:
		return d.watch(r.ConnID, r.Path, r.Token, -1)
	case *migration.WatchExtended:
		depth := int(r.Depth)
		if r.Depth == migration.DepthUnlimited {
			depth = -1
		}
		return d.watch(r.ConnID, r.Path, r.Token, depth)
	case *migration.Transaction:
		c, err := d.conn(r.ConnID)
		if err != nil {
			return err
		}
		c.AbortedTxns = append(c.AbortedTxns, r.TxID)
	case *migration.Node:
		if r.ConnID != 0 || r.TxID != 0 {
			return nil // a transaction's pending node: the transaction is aborted
		}
		ps, err := storePerms(r.Perms)
		if err != nil {
			return err
		}
		if !d.dropNodes {
			d.st.Nodes = append(d.st.Nodes, store.NodeState{Path: r.Path, Value: r.Value, Perms: ps})
		}
	case *migration.Domain:
		dom := d.domain(uint32(r.DomID))
		dom.Features = r.Features
		setQuotas(&dom.Quotas, r.Quotas, d.warn)
	default:
		return fmt.Errorf("unexpected record")
	}
	return nil
}

func (d *decoder) connection(r *migration.Connection) error {
	if _, dup := d.conns[r.ID]; dup {
		return fmt.Errorf("connection %d twice", r.ID)
	}
	cs := store.ConnState{ID: uint64(r.ID), Priv: true}
	out := r.Out
	switch r.Kind {
	case migration.ConnRing:
		dom := d.domain(uint32(r.Ring.DomID))
		dom.Introduced = true
		if r.Ring.TargetDomID != migration.DomIDInvalid {
			dom.Target, dom.HasTarget = uint32(r.Ring.TargetDomID), true
		}
		if r.Ring.Evtchn == 0 {
			d.conns[r.ID] = -1
			return nil
		}
		cs.Domid, cs.Ring, cs.Priv = uint32(r.Ring.DomID), true, uint32(r.Ring.DomID) == d.priv
		d.h.Rings[cs.ID] = Conn{FD: int32(r.Ring.Evtchn), In: r.In, Out: out[:r.OutResp], Partial: int(r.OutResp)}
	case migration.ConnSocket:
		d.h.Sockets[cs.ID] = Conn{FD: r.Socket, In: r.In, Out: out[:r.OutResp], Partial: int(r.OutResp)}
	default:
		return fmt.Errorf("connection kind %v", r.Kind)
	}
	msgs, err := splitMessages(out[r.OutResp:])
	if err != nil {
		return fmt.Errorf("connection %d: %w", r.ID, err)
	}
	cs.Output = msgs
	d.conns[r.ID] = len(d.st.Conns)
	d.st.Conns = append(d.st.Conns, cs)
	return nil
}

func (d *decoder) conn(id uint32) (*store.ConnState, error) {
	i, ok := d.conns[id]
	if !ok {
		return nil, fmt.Errorf("connection %d not defined before", id)
	}
	if i < 0 {
		return nil, nil
	}
	return &d.st.Conns[i], nil
}

func (d *decoder) watch(connID uint32, path, token string, depth int) error {
	c, err := d.conn(connID)
	if err != nil || c == nil {
		return err
	}
	ws := store.WatchState{Path: path, Token: token, Depth: depth}
	if !strings.HasPrefix(path, "/") && !strings.HasPrefix(path, "@") {
		home := fmt.Sprintf("/local/domain/%d/", c.Domid)
		ws.Path, ws.RelPrefix = home+path, len(home)
	}
	c.Watches = append(c.Watches, ws)
	return nil
}

// splitMessages cuts whole wire messages apart.
func splitMessages(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < wire.HeaderSize {
			return nil, errors.New("a partial message after the out-resp bytes")
		}
		h, err := wire.ParseHeader(b)
		if err != nil {
			return nil, err
		}
		n := wire.HeaderSize + int(h.Len)
		if len(b) < n {
			return nil, errors.New("a partial message after the out-resp bytes")
		}
		out = append(out, slices.Clone(b[:n]))
		b = b[n:]
	}
	return out, nil
}
