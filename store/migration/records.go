package migration

import (
	"strconv"
)

// RecordType is the type field of a record header.
type RecordType uint32

// Record types, numbered as in the spec's "Records" table.
const (
	TypeEnd           RecordType = 0
	TypeGlobal        RecordType = 1
	TypeConnection    RecordType = 2
	TypeWatch         RecordType = 3
	TypeTransaction   RecordType = 4
	TypeNode          RecordType = 5
	TypeGlobalQuota   RecordType = 6
	TypeDomain        RecordType = 7
	TypeWatchExtended RecordType = 8 // version 2 and up
)

var typeNames = [...]string{
	TypeEnd:           "END",
	TypeGlobal:        "GLOBAL_DATA",
	TypeConnection:    "CONNECTION_DATA",
	TypeWatch:         "WATCH_DATA",
	TypeTransaction:   "TRANSACTION_DATA",
	TypeNode:          "NODE_DATA",
	TypeGlobalQuota:   "GLOBAL_QUOTA_DATA",
	TypeDomain:        "DOMAIN_DATA",
	TypeWatchExtended: "WATCH_DATA_EXTENDED",
}

func (t RecordType) String() string {
	if int64(t) < int64(len(typeNames)) {
		return typeNames[t]
	}
	return "type 0x" + strconv.FormatUint(uint64(t), 16)
}

// known reports whether t is defined by the spec (in any version).
func (t RecordType) known() bool { return t <= TypeWatchExtended }

// Record is one record of a stream other than END (the Writer's Close writes
// END, the Reader reports it as io.EOF). The concrete types are *Global,
// *Connection, *Watch, *WatchExtended, *Transaction, *Node, *GlobalQuota and
// *Domain.
type Record interface {
	Type() RecordType
	// appendBody appends the record's body, without the trailing padding,
	// as it is written in a stream of the given version.
	appendBody(dst []byte, version uint32) ([]byte, error)
}

// Global is GLOBAL_DATA: the descriptors a live update carries across exec.
type Global struct {
	SocketFD int32 // rw-socket-fd; -1: no socket
	EvtchnFD int32 // evtchn-fd
}

// ConnKind is a CONNECTION_DATA conn-type.
type ConnKind uint16

// Connection kinds.
const (
	ConnRing   ConnKind = 0 // shared ring
	ConnSocket ConnKind = 1 // socket
)

func (k ConnKind) String() string {
	switch k {
	case ConnRing:
		return "ring"
	case ConnSocket:
		return "socket"
	}
	return "conn-type 0x" + strconv.FormatUint(uint64(k), 16)
}

// FieldUniqueID is the CONNECTION_DATA fields flag saying that unique-id
// follows the data.
const FieldUniqueID uint16 = 0x0001

// DomIDInvalid is Xen's DOMID_INVALID, a ring connection's TargetDomID when
// the domain has no SET_TARGET.
const DomIDInvalid uint16 = 0x7FF4

// Ring is the conn-spec of a shared-ring connection.
type Ring struct {
	DomID       uint16 // domid: the domain owning the ring page
	TargetDomID uint16 // tdomid: SET_TARGET's target, or DomIDInvalid
	Evtchn      uint32 // evtchn: xenstored's local port
}

// Connection is CONNECTION_DATA. Exactly one of Ring and SocketFD is
// meaningful, chosen by Kind; the other must be zero.
//
// In holds the bytes read from the connection and not yet processed: whole
// requests, possibly followed by one partial request (header and payload as
// on the wire). Out holds the bytes not yet written: its first OutResp bytes
// are the unsent rest of a partially written message (possibly starting in
// its header), then whole messages (replies and watch events) follow.
// An empty In or Out reads back as nil.
type Connection struct {
	ID     uint32 // conn-id, non-zero
	Kind   ConnKind
	Ring   Ring  // Kind == ConnRing
	Socket int32 // socket-fd, Kind == ConnSocket

	In      []byte // in-data, at most 65535 bytes
	OutResp uint16 // out-resp-len, at most len(Out)
	Out     []byte // out-data, including the partial response

	HasUniqueID bool   // fields & FieldUniqueID
	UniqueID    uint64 // unique-id, when HasUniqueID
}

// Watch is WATCH_DATA: a watch without a depth limit.
type Watch struct {
	ConnID uint32
	Path   string // wpath as the client gave it (may be relative); no NUL
	Token  string // no NUL
}

// DepthUnlimited is the WATCH_DATA_EXTENDED depth meaning "no limit".
const DepthUnlimited uint16 = 0xffff

// WatchExtended is WATCH_DATA_EXTENDED (version 2): a watch with a depth.
type WatchExtended struct {
	ConnID uint32
	Path   string
	Token  string
	Depth  uint16 // levels below Path that match; DepthUnlimited: any
}

// Transaction is TRANSACTION_DATA: an open transaction of a connection.
type Transaction struct {
	ConnID uint32
	TxID   uint32
}

// Node access bits of a node pending in a transaction (NODE_DATA access).
const (
	AccessRead    uint16 = 0x0001
	AccessWritten uint16 = 0x0002
)

// Permission letters of a node permission specifier (SET_PERMS).
const (
	PermNone  byte = 'n'
	PermRead  byte = 'r'
	PermWrite byte = 'w'
	PermBoth  byte = 'b'
)

// PermFlagIgnore marks a stale permission, ignored when checking access.
const PermFlagIgnore uint8 = 0x01

// Perm is a node permission specifier.
type Perm struct {
	Perm  byte  // PermNone, PermRead, PermWrite or PermBoth
	Flags uint8 // PermFlagIgnore or 0
	DomID uint16
}

// Node is NODE_DATA. A committed node has ConnID 0 (and then TxID and Access
// are zero); a node pending in a transaction names it by ConnID and TxID. A
// node deleted in a transaction has no Perms, no Value and Access 0.
// Perms[0] is the owner. An empty Value or Perms reads back as nil.
type Node struct {
	ConnID uint32
	TxID   uint32
	Access uint16 // AccessRead|AccessWritten, pending nodes only
	Perms  []Perm
	Path   string // absolute path or @special name; no NUL
	Value  []byte // may contain NUL octets
}

// Quota is one named quota value; 0 means unlimited. Names are those of
// GET_QUOTA/SET_QUOTA plus implementation specific ones (C xenstored writes
// e.g. "nodes" and "soft-memory"); no NUL, never empty.
type Quota struct {
	Name  string
	Value uint32
}

// GlobalQuota is GLOBAL_QUOTA_DATA: default per-domain quotas, then quotas
// that apply globally only.
type GlobalQuota struct {
	PerDomain []Quota // n-dom-quota values
	Global    []Quota // n-glob-quota values
}

// Domain is DOMAIN_DATA: one domain's features and quotas. Features is only
// carried by version 2 streams (it is written as 0 and read as 0 in version 1).
type Domain struct {
	DomID    uint16
	Features uint32 // as at offset 2064 of the ring page
	Quotas   []Quota
}

func (*Global) Type() RecordType        { return TypeGlobal }
func (*Connection) Type() RecordType    { return TypeConnection }
func (*Watch) Type() RecordType         { return TypeWatch }
func (*WatchExtended) Type() RecordType { return TypeWatchExtended }
func (*Transaction) Type() RecordType   { return TypeTransaction }
func (*Node) Type() RecordType          { return TypeNode }
func (*GlobalQuota) Type() RecordType   { return TypeGlobalQuota }
func (*Domain) Type() RecordType        { return TypeDomain }
