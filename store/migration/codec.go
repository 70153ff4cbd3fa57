package migration

import (
	"bytes"
	"encoding/binary"
	"math"
)

var le = binary.LittleEndian

// pad8 rounds n up to a multiple of 8.
func pad8(n int) int { return (n + 7) &^ 7 }

// ---- encoding ------------------------------------------------------------

func appendU16(b []byte, v uint16) []byte { return le.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return le.AppendUint32(b, v) }

// strLen returns the length of s with its NUL, as a u16 length field.
func strLen(what, s string) (uint16, error) {
	if bytes.IndexByte([]byte(s), 0) >= 0 {
		return 0, invalid("%s contains a NUL octet", what)
	}
	if len(s)+1 > math.MaxUint16 {
		return 0, invalid("%s is %d octets, more than a 16-bit length holds", what, len(s))
	}
	return uint16(len(s) + 1), nil
}

func appendCString(b []byte, s string) []byte {
	b = append(b, s...)
	return append(b, 0)
}

func (r *Global) appendBody(b []byte, _ uint32) ([]byte, error) {
	b = appendU32(b, uint32(r.SocketFD))
	return appendU32(b, uint32(r.EvtchnFD)), nil
}

func (r *Connection) appendBody(b []byte, _ uint32) ([]byte, error) {
	if r.ID == 0 {
		return nil, invalid("connection id 0")
	}
	if len(r.In) > math.MaxUint16 {
		return nil, invalid("connection %d: %d octets of input, more than in-data-len holds", r.ID, len(r.In))
	}
	if int64(len(r.Out)) > math.MaxUint32 {
		return nil, invalid("connection %d: %d octets of output, more than out-data-len holds", r.ID, len(r.Out))
	}
	if int(r.OutResp) > len(r.Out) {
		return nil, invalid("connection %d: out-resp-len %d exceeds out-data-len %d", r.ID, r.OutResp, len(r.Out))
	}
	if !r.HasUniqueID && r.UniqueID != 0 {
		return nil, invalid("connection %d: unique-id set without HasUniqueID", r.ID)
	}
	var fields uint16
	if r.HasUniqueID {
		fields |= FieldUniqueID
	}
	b = appendU32(b, r.ID)
	b = appendU16(b, uint16(r.Kind))
	b = appendU16(b, fields)
	switch r.Kind {
	case ConnRing:
		if r.Socket != 0 {
			return nil, invalid("connection %d: ring connection with a socket-fd", r.ID)
		}
		b = appendU16(b, r.Ring.DomID)
		b = appendU16(b, r.Ring.TargetDomID)
		b = appendU32(b, r.Ring.Evtchn)
	case ConnSocket:
		if r.Ring != (Ring{}) {
			return nil, invalid("connection %d: socket connection with ring fields", r.ID)
		}
		b = appendU32(b, uint32(r.Socket))
		b = appendU32(b, 0) // pad
	default:
		return nil, invalid("connection %d: %v", r.ID, r.Kind)
	}
	b = appendU16(b, uint16(len(r.In)))
	b = appendU16(b, r.OutResp)
	b = appendU32(b, uint32(len(r.Out)))
	start := len(b) - connFixed
	b = append(b, r.In...)
	b = append(b, r.Out...)
	if r.HasUniqueID {
		for (len(b)-start)%8 != 0 {
			b = append(b, 0)
		}
		b = le.AppendUint64(b, r.UniqueID)
	}
	return b, nil
}

func appendWatch(b []byte, ext bool, conn uint32, path, token string, depth uint16) ([]byte, error) {
	pl, err := strLen("watch path", path)
	if err != nil {
		return nil, err
	}
	tl, err := strLen("watch token", token)
	if err != nil {
		return nil, err
	}
	b = appendU32(b, conn)
	b = appendU16(b, pl)
	b = appendU16(b, tl)
	if ext {
		b = appendU16(b, depth)
		b = appendU16(b, 0) // pad
	}
	b = appendCString(b, path)
	return appendCString(b, token), nil
}

func (r *Watch) appendBody(b []byte, _ uint32) ([]byte, error) {
	return appendWatch(b, false, r.ConnID, r.Path, r.Token, 0)
}

func (r *WatchExtended) appendBody(b []byte, v uint32) ([]byte, error) {
	if v < Version2 {
		return nil, ErrNotInVersion
	}
	return appendWatch(b, true, r.ConnID, r.Path, r.Token, r.Depth)
}

func (r *Transaction) appendBody(b []byte, _ uint32) ([]byte, error) {
	b = appendU32(b, r.ConnID)
	return appendU32(b, r.TxID), nil
}

func validPerm(p byte) bool {
	return p == PermNone || p == PermRead || p == PermWrite || p == PermBoth
}

func (r *Node) appendBody(b []byte, _ uint32) ([]byte, error) {
	pl, err := strLen("node path", r.Path)
	if err != nil {
		return nil, err
	}
	if len(r.Value) > math.MaxUint16 {
		return nil, invalid("node %q: value of %d octets, more than value-len holds", r.Path, len(r.Value))
	}
	if len(r.Perms) > math.MaxUint16 {
		return nil, invalid("node %q: %d permissions, more than perm-count holds", r.Path, len(r.Perms))
	}
	if r.ConnID == 0 && (r.TxID != 0 || r.Access != 0) {
		return nil, invalid("node %q: committed node with tx-id %d, access %#x", r.Path, r.TxID, r.Access)
	}
	if r.Access&^(AccessRead|AccessWritten) != 0 {
		return nil, invalid("node %q: access %#x", r.Path, r.Access)
	}
	b = appendU32(b, r.ConnID)
	b = appendU32(b, r.TxID)
	b = appendU16(b, pl)
	b = appendU16(b, uint16(len(r.Value)))
	b = appendU16(b, r.Access)
	b = appendU16(b, uint16(len(r.Perms)))
	for i, p := range r.Perms {
		if !validPerm(p.Perm) {
			return nil, invalid("node %q: permission %d: perm %q", r.Path, i, p.Perm)
		}
		if p.Flags&^PermFlagIgnore != 0 {
			return nil, invalid("node %q: permission %d: flags %#x", r.Path, i, p.Flags)
		}
		b = append(b, p.Perm, p.Flags)
		b = appendU16(b, p.DomID)
	}
	b = appendCString(b, r.Path)
	return append(b, r.Value...), nil
}

func appendQuotas(b []byte, qs ...[]Quota) ([]byte, error) {
	for _, q := range qs {
		for _, e := range q {
			b = appendU32(b, e.Value)
		}
	}
	for _, q := range qs {
		for _, e := range q {
			if e.Name == "" {
				return nil, invalid("empty quota name")
			}
			if _, err := strLen("quota name", e.Name); err != nil {
				return nil, err
			}
			b = appendCString(b, e.Name)
		}
	}
	return b, nil
}

func (r *GlobalQuota) appendBody(b []byte, _ uint32) ([]byte, error) {
	if len(r.PerDomain) > math.MaxUint16 || len(r.Global) > math.MaxUint16 {
		return nil, invalid("%d+%d global quotas, more than a 16-bit count holds", len(r.PerDomain), len(r.Global))
	}
	b = appendU16(b, uint16(len(r.PerDomain)))
	b = appendU16(b, uint16(len(r.Global)))
	return appendQuotas(b, r.PerDomain, r.Global)
}

func (r *Domain) appendBody(b []byte, v uint32) ([]byte, error) {
	if len(r.Quotas) > math.MaxUint16 {
		return nil, invalid("domain %d: %d quotas, more than n-quota holds", r.DomID, len(r.Quotas))
	}
	if v < Version2 && r.Features != 0 {
		return nil, invalid("domain %d: features %#x in a version %d stream (%w)", r.DomID, r.Features, v, ErrNotInVersion)
	}
	b = appendU16(b, r.DomID)
	b = appendU16(b, uint16(len(r.Quotas)))
	b = appendU32(b, r.Features)
	return appendQuotas(b, r.Quotas)
}

// ---- decoding ------------------------------------------------------------

// Fixed part sizes of the variable-length records.
const (
	globalSize   = 8
	connFixed    = 24
	watchFixed   = 8
	watchExtFix  = 12
	txSize       = 8
	nodeFixed    = 16
	permSize     = 4
	quotaGlbFix  = 4
	domainFixed  = 8
	quotaValSize = 4
)

// decoder turns a record body into a Record. It never reads past body and
// allocates at most in proportion to len(body).
type decoder struct {
	version        uint32
	ignoreReserved bool
}

// need checks that body has n octets from off on.
func need(body []byte, off, n int, what string) error {
	if n < 0 || off > len(body) || len(body)-off < n {
		return malformed("%s needs %d octets at offset %d, body has %d", what, n, off, len(body))
	}
	return nil
}

// cString decodes a length-counted, NUL-terminated string field.
func cString(b []byte, what string) (string, error) {
	if len(b) == 0 {
		return "", malformed("%s length 0 (it counts the NUL terminator)", what)
	}
	if b[len(b)-1] != 0 {
		return "", malformed("%s not NUL-terminated", what)
	}
	if i := bytes.IndexByte(b[:len(b)-1], 0); i >= 0 {
		return "", malformed("%s has a NUL octet at %d before its end", what, i)
	}
	return string(b[:len(b)-1]), nil
}

// reserved checks that a field the spec says to write as zero is zero, or
// returns 0 for it when reading leniently.
func (d *decoder) reserved(v uint64, what string) error {
	if v != 0 && !d.ignoreReserved {
		return nonZero("%s is %#x", what, v)
	}
	return nil
}

// bytesOrNil copies nothing: it returns b's sub-slice, or nil when empty.
func bytesOrNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b[:len(b):len(b)]
}

// decode parses body (the record's len octets) and returns the record and
// the number of octets its fields use.
func (d *decoder) decode(t RecordType, body []byte) (Record, int, error) {
	switch t {
	case TypeGlobal:
		return d.global(body)
	case TypeConnection:
		return d.connection(body)
	case TypeWatch:
		return d.watch(body, false)
	case TypeWatchExtended:
		if d.version < Version2 {
			return nil, 0, ErrNotInVersion
		}
		return d.watch(body, true)
	case TypeTransaction:
		return d.transaction(body)
	case TypeNode:
		return d.node(body)
	case TypeGlobalQuota:
		return d.globalQuota(body)
	case TypeDomain:
		return d.domain(body)
	}
	return nil, 0, ErrUnknownType
}

func (d *decoder) global(body []byte) (Record, int, error) {
	if err := need(body, 0, globalSize, "GLOBAL_DATA"); err != nil {
		return nil, 0, err
	}
	return &Global{
		SocketFD: int32(le.Uint32(body[0:])),
		EvtchnFD: int32(le.Uint32(body[4:])),
	}, globalSize, nil
}

func (d *decoder) connection(body []byte) (Record, int, error) {
	if err := need(body, 0, connFixed, "CONNECTION_DATA fixed part"); err != nil {
		return nil, 0, err
	}
	r := &Connection{
		ID:   le.Uint32(body[0:]),
		Kind: ConnKind(le.Uint16(body[4:])),
	}
	fields := le.Uint16(body[6:])
	if r.ID == 0 {
		return nil, 0, malformed("conn-id 0")
	}
	if fields&^FieldUniqueID != 0 {
		// Unknown flags announce fields of unknown size after the data.
		return nil, 0, malformed("connection %d: unknown fields flags %#x", r.ID, fields&^FieldUniqueID)
	}
	r.HasUniqueID = fields&FieldUniqueID != 0
	switch r.Kind {
	case ConnRing:
		r.Ring = Ring{
			DomID:       le.Uint16(body[8:]),
			TargetDomID: le.Uint16(body[10:]),
			Evtchn:      le.Uint32(body[12:]),
		}
	case ConnSocket:
		r.Socket = int32(le.Uint32(body[8:]))
		if err := d.reserved(uint64(le.Uint32(body[12:])), "socket conn-spec pad"); err != nil {
			return nil, 0, err
		}
	default:
		return nil, 0, malformed("connection %d: reserved %v", r.ID, r.Kind)
	}
	inLen := int(le.Uint16(body[16:]))
	r.OutResp = le.Uint16(body[18:])
	outLen64 := int64(le.Uint32(body[20:]))
	if int64(r.OutResp) > outLen64 {
		return nil, 0, malformed("connection %d: out-resp-len %d exceeds out-data-len %d", r.ID, r.OutResp, outLen64)
	}
	if outLen64 > int64(len(body)) {
		return nil, 0, malformed("connection %d: out-data-len %d exceeds the body's %d octets", r.ID, outLen64, len(body))
	}
	outLen := int(outLen64)
	if err := need(body, connFixed, inLen+outLen, "connection data"); err != nil {
		return nil, 0, err
	}
	off := connFixed
	r.In = bytesOrNil(body[off : off+inLen])
	off += inLen
	r.Out = bytesOrNil(body[off : off+outLen])
	off += outLen
	if r.HasUniqueID {
		aligned := pad8(off)
		if err := need(body, off, aligned-off+8, "unique-id"); err != nil {
			return nil, 0, err
		}
		if err := d.zeros(body[off:aligned], "padding before unique-id"); err != nil {
			return nil, 0, err
		}
		r.UniqueID = le.Uint64(body[aligned:])
		off = aligned + 8
	}
	return r, off, nil
}

func (d *decoder) zeros(b []byte, what string) error {
	if d.ignoreReserved {
		return nil
	}
	for i, c := range b {
		if c != 0 {
			return nonZero("%s: octet %d is %#02x", what, i, c)
		}
	}
	return nil
}

func (d *decoder) watch(body []byte, ext bool) (Record, int, error) {
	fixed, name := watchFixed, "WATCH_DATA fixed part"
	if ext {
		fixed, name = watchExtFix, "WATCH_DATA_EXTENDED fixed part"
	}
	if err := need(body, 0, fixed, name); err != nil {
		return nil, 0, err
	}
	conn := le.Uint32(body[0:])
	pl := int(le.Uint16(body[4:]))
	tl := int(le.Uint16(body[6:]))
	if err := need(body, fixed, pl+tl, "watch path and token"); err != nil {
		return nil, 0, err
	}
	path, err := cString(body[fixed:fixed+pl], "watch path")
	if err != nil {
		return nil, 0, err
	}
	token, err := cString(body[fixed+pl:fixed+pl+tl], "watch token")
	if err != nil {
		return nil, 0, err
	}
	if !ext {
		return &Watch{ConnID: conn, Path: path, Token: token}, fixed + pl + tl, nil
	}
	if err := d.reserved(uint64(le.Uint16(body[10:])), "watch pad"); err != nil {
		return nil, 0, err
	}
	return &WatchExtended{ConnID: conn, Path: path, Token: token, Depth: le.Uint16(body[8:])}, fixed + pl + tl, nil
}

func (d *decoder) transaction(body []byte) (Record, int, error) {
	if err := need(body, 0, txSize, "TRANSACTION_DATA"); err != nil {
		return nil, 0, err
	}
	return &Transaction{ConnID: le.Uint32(body[0:]), TxID: le.Uint32(body[4:])}, txSize, nil
}

func (d *decoder) node(body []byte) (Record, int, error) {
	if err := need(body, 0, nodeFixed, "NODE_DATA fixed part"); err != nil {
		return nil, 0, err
	}
	r := &Node{
		ConnID: le.Uint32(body[0:]),
		TxID:   le.Uint32(body[4:]),
		Access: le.Uint16(body[12:]),
	}
	pl := int(le.Uint16(body[8:]))
	vl := int(le.Uint16(body[10:]))
	np := int(le.Uint16(body[14:]))
	if r.ConnID == 0 {
		// "should be ignored if conn-id is zero"; written as zero.
		if err := d.reserved(uint64(r.TxID), "tx-id of a committed node"); err != nil {
			return nil, 0, err
		}
		if err := d.reserved(uint64(r.Access), "access of a committed node"); err != nil {
			return nil, 0, err
		}
		r.TxID, r.Access = 0, 0
	} else if r.Access&^(AccessRead|AccessWritten) != 0 {
		return nil, 0, malformed("node access %#x has undefined bits", r.Access)
	}
	if err := need(body, nodeFixed, np*permSize+pl+vl, "node permissions, path and value"); err != nil {
		return nil, 0, err
	}
	off := nodeFixed
	if np > 0 {
		r.Perms = make([]Perm, np)
		for i := range r.Perms {
			p := Perm{Perm: body[off], Flags: body[off+1], DomID: le.Uint16(body[off+2:])}
			if !validPerm(p.Perm) {
				return nil, 0, malformed("node permission %d: perm %#02x is not n, r, w or b", i, p.Perm)
			}
			if p.Flags&^PermFlagIgnore != 0 {
				return nil, 0, malformed("node permission %d: flags %#02x has undefined bits", i, p.Flags)
			}
			r.Perms[i] = p
			off += permSize
		}
	}
	path, err := cString(body[off:off+pl], "node path")
	if err != nil {
		return nil, 0, err
	}
	r.Path = path
	off += pl
	r.Value = bytesOrNil(body[off : off+vl])
	return r, off + vl, nil
}

// quotas decodes n values at off followed by n NUL-terminated names and
// returns them and the offset after the last name.
func quotas(body []byte, off, n int) ([]Quota, int, error) {
	if err := need(body, off, n*quotaValSize, "quota values"); err != nil {
		return nil, 0, err
	}
	if n == 0 {
		return nil, off, nil
	}
	q := make([]Quota, n)
	for i := range q {
		q[i].Value = le.Uint32(body[off:])
		off += quotaValSize
	}
	for i := range q {
		end := bytes.IndexByte(body[off:], 0)
		if end < 0 {
			return nil, 0, malformed("quota name %d of %d missing or not NUL-terminated", i+1, n)
		}
		if end == 0 {
			return nil, 0, malformed("quota name %d of %d is empty", i+1, n)
		}
		q[i].Name = string(body[off : off+end])
		off += end + 1
	}
	return q, off, nil
}

func (d *decoder) globalQuota(body []byte) (Record, int, error) {
	if err := need(body, 0, quotaGlbFix, "GLOBAL_QUOTA_DATA fixed part"); err != nil {
		return nil, 0, err
	}
	nd := int(le.Uint16(body[0:]))
	ng := int(le.Uint16(body[2:]))
	q, off, err := quotas(body, quotaGlbFix, nd+ng)
	if err != nil {
		return nil, 0, err
	}
	r := &GlobalQuota{}
	if nd > 0 {
		r.PerDomain = q[:nd:nd]
	}
	if ng > 0 {
		r.Global = q[nd:]
	}
	return r, off, nil
}

func (d *decoder) domain(body []byte) (Record, int, error) {
	if err := need(body, 0, domainFixed, "DOMAIN_DATA fixed part"); err != nil {
		return nil, 0, err
	}
	r := &Domain{
		DomID:    le.Uint16(body[0:]),
		Features: le.Uint32(body[4:]),
	}
	if d.version < Version2 {
		if err := d.reserved(uint64(r.Features), "features in a version 1 stream"); err != nil {
			return nil, 0, err
		}
		r.Features = 0
	}
	q, off, err := quotas(body, domainFixed, int(le.Uint16(body[2:])))
	if err != nil {
		return nil, 0, err
	}
	r.Quotas = q
	return r, off, nil
}
