// Package wire is the xenstore wire protocol of Xen's
// xen/include/public/io/xs_wire.h: message types, the 16-byte header, error
// names and the payload conventions of docs/misc/xenstore.txt.
//
// It is pure data handling with no I/O: transports (Unix socket, shared-memory
// ring) frame bytes with Header and the engine interprets payloads. Every
// decoder here treats its input as hostile: lengths are bound-checked before
// use and nothing panics on malformed input.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"syscall"
)

// Type is a message type (xsd_sockmsg_type).
type Type uint32

// Message types, numbered as in xs_wire.h.
const (
	Control            Type = 0 // also the deprecated DEBUG
	Directory          Type = 1
	Read               Type = 2
	GetPerms           Type = 3
	Watch              Type = 4
	Unwatch            Type = 5
	TransactionStart   Type = 6
	TransactionEnd     Type = 7
	Introduce          Type = 8
	Release            Type = 9
	GetDomainPath      Type = 10
	Write              Type = 11
	Mkdir              Type = 12
	Rm                 Type = 13
	SetPerms           Type = 14
	WatchEvent         Type = 15
	Error              Type = 16
	IsDomainIntroduced Type = 17
	Resume             Type = 18
	SetTarget          Type = 19
	// 20 was XS_RESTRICT, removed from the protocol; it is invalid.
	ResetWatches  Type = 21
	DirectoryPart Type = 22
	GetFeature    Type = 23
	SetFeature    Type = 24
	GetQuota      Type = 25
	SetQuota      Type = 26
	TypeCount     Type = 27
	Invalid       Type = 0xffff
)

var typeNames = [...]string{
	Control: "CONTROL", Directory: "DIRECTORY", Read: "READ", GetPerms: "GET_PERMS",
	Watch: "WATCH", Unwatch: "UNWATCH", TransactionStart: "TRANSACTION_START",
	TransactionEnd: "TRANSACTION_END", Introduce: "INTRODUCE", Release: "RELEASE",
	GetDomainPath: "GET_DOMAIN_PATH", Write: "WRITE", Mkdir: "MKDIR", Rm: "RM",
	SetPerms: "SET_PERMS", WatchEvent: "WATCH_EVENT", Error: "ERROR",
	IsDomainIntroduced: "IS_DOMAIN_INTRODUCED", Resume: "RESUME", SetTarget: "SET_TARGET",
	20: "RESTRICT", ResetWatches: "RESET_WATCHES", DirectoryPart: "DIRECTORY_PART",
	GetFeature: "GET_FEATURE", SetFeature: "SET_FEATURE", GetQuota: "GET_QUOTA",
	SetQuota: "SET_QUOTA",
}

func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return "UNKNOWN(" + strconv.FormatUint(uint64(t), 10) + ")"
}

// Protocol limits from xs_wire.h.
const (
	HeaderSize = 16
	PayloadMax = 4096 // XENSTORE_PAYLOAD_MAX, both directions
	AbsPathMax = 3072 // XENSTORE_ABS_PATH_MAX
	RelPathMax = 2048 // XENSTORE_REL_PATH_MAX
	RingSize   = 1024 // XENSTORE_RING_SIZE
)

// Header is struct xsd_sockmsg, little-endian on every Xen architecture.
type Header struct {
	Type  Type
	ReqID uint32
	TxID  uint32
	Len   uint32
}

// ErrTooLong reports a header whose length exceeds PayloadMax. C xenstored
// drops such a connection; so do our transports.
var ErrTooLong = errors.New("xenstore: payload length exceeds 4096")

// ParseHeader decodes a header from the first HeaderSize bytes of b.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("xenstore: short header (%d bytes)", len(b))
	}
	h := Header{
		Type:  Type(binary.LittleEndian.Uint32(b[0:])),
		ReqID: binary.LittleEndian.Uint32(b[4:]),
		TxID:  binary.LittleEndian.Uint32(b[8:]),
		Len:   binary.LittleEndian.Uint32(b[12:]),
	}
	if h.Len > PayloadMax {
		return h, fmt.Errorf("%w (len %d, type %v)", ErrTooLong, h.Len, h.Type)
	}
	return h, nil
}

// Put encodes h into the first HeaderSize bytes of b.
func (h Header) Put(b []byte) {
	binary.LittleEndian.PutUint32(b[0:], uint32(h.Type))
	binary.LittleEndian.PutUint32(b[4:], h.ReqID)
	binary.LittleEndian.PutUint32(b[8:], h.TxID)
	binary.LittleEndian.PutUint32(b[12:], h.Len)
}

// Msg is one whole message: header fields plus payload. Payload is owned by
// the Msg; Len is always len(Payload) when encoded.
type Msg struct {
	Type    Type
	ReqID   uint32
	TxID    uint32
	Payload []byte
}

// Encode returns header and payload as one byte slice.
func (m *Msg) Encode() []byte {
	b := make([]byte, HeaderSize+len(m.Payload))
	Header{Type: m.Type, ReqID: m.ReqID, TxID: m.TxID, Len: uint32(len(m.Payload))}.Put(b)
	copy(b[HeaderSize:], m.Payload)
	return b
}

// Decode parses one whole message from b, which must hold exactly one
// message. It is the entry point for fuzzing the framing.
func Decode(b []byte) (Msg, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return Msg{}, err
	}
	if uint32(len(b)-HeaderSize) != h.Len {
		return Msg{}, fmt.Errorf("xenstore: header says %d payload bytes, have %d", h.Len, len(b)-HeaderSize)
	}
	p := make([]byte, h.Len)
	copy(p, b[HeaderSize:])
	return Msg{Type: h.Type, ReqID: h.ReqID, TxID: h.TxID, Payload: p}, nil
}

// Errno names as carried in ERROR replies, in xs_wire.h's order.
var errnoNames = map[syscall.Errno]string{
	syscall.EINVAL: "EINVAL", syscall.EACCES: "EACCES", syscall.EEXIST: "EEXIST",
	syscall.EISDIR: "EISDIR", syscall.ENOENT: "ENOENT", syscall.ENOMEM: "ENOMEM",
	syscall.ENOSPC: "ENOSPC", syscall.EIO: "EIO", syscall.ENOTEMPTY: "ENOTEMPTY",
	syscall.ENOSYS: "ENOSYS", syscall.EROFS: "EROFS", syscall.EBUSY: "EBUSY",
	syscall.EAGAIN: "EAGAIN", syscall.EISCONN: "EISCONN", syscall.E2BIG: "E2BIG",
	syscall.EPERM: "EPERM",
}

// ErrnoName is the wire spelling of e; errors outside xs_wire.h's table are
// sent as EINVAL, which is what C xenstored does.
func ErrnoName(e syscall.Errno) string {
	if n, ok := errnoNames[e]; ok {
		return n
	}
	return "EINVAL"
}

// ParseErrno maps a wire error name back to an errno (for clients).
func ParseErrno(name string) (syscall.Errno, bool) {
	for e, n := range errnoNames {
		if n == name {
			return e, true
		}
	}
	return 0, false
}

// ErrorMsg builds the ERROR reply to req carrying e.
func ErrorMsg(reqID, txID uint32, e syscall.Errno) Msg {
	return Msg{Type: Error, ReqID: reqID, TxID: txID, Payload: append([]byte(ErrnoName(e)), 0)}
}

// SplitStrings splits a payload made of NUL-terminated strings. An
// unterminated tail is returned as a final element with ok=false so callers
// can decide whether the protocol allows it.
func SplitStrings(p []byte) (parts []string, terminated bool) {
	start := 0
	for i, c := range p {
		if c == 0 {
			parts = append(parts, string(p[start:i]))
			start = i + 1
		}
	}
	if start < len(p) {
		return append(parts, string(p[start:])), false
	}
	return parts, true
}

// JoinStrings encodes strings each followed by a NUL.
func JoinStrings(s ...string) []byte {
	n := 0
	for _, x := range s {
		n += len(x) + 1
	}
	b := make([]byte, 0, n)
	for _, x := range s {
		b = append(b, x...)
		b = append(b, 0)
	}
	return b
}
