package migration

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/xsstub/xenstored/wire"
)

// ErrInconsistent: a Stream whose records, each well formed, do not fit
// together (Validate).
var ErrInconsistent = errors.New("migration: inconsistent stream")

// DomIDFirstReserved is Xen's DOMID_FIRST_RESERVED: domids from here on
// name no domain.
const DomIDFirstReserved uint16 = 0x7FF0

// Stream is a whole dump in memory: its version and its records (END
// excluded) in stream order, which carries meaning: records other records
// depend on come first.
type Stream struct {
	Version uint32
	Records []Record
}

// ReadStream reads a stream up to and including END.
func ReadStream(r io.Reader, opts *ReaderOptions) (*Stream, error) {
	rd, err := NewReader(r, opts)
	if err != nil {
		return nil, err
	}
	s := &Stream{Version: rd.Version()}
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			return s, nil
		}
		if err != nil {
			return nil, err
		}
		s.Records = append(s.Records, rec)
	}
}

// Write writes the stream, its records and END, in s.Version (0 means
// Version2) with the default record cap.
func (s *Stream) Write(w io.Writer) error {
	wr, err := NewWriter(w, &WriterOptions{Version: s.Version})
	if err != nil {
		return err
	}
	for _, rec := range s.Records {
		if err := wr.WriteRecord(rec); err != nil {
			return err
		}
	}
	return wr.Close()
}

// ValidateOptions tune Validate.
type ValidateOptions struct {
	// Existing are the nodes the receiving store holds before it reads
	// the stream: a committed node's parent may be one of them instead of
	// an earlier record. nil means just "/" (C xenstored's fresh store,
	// whose "/" record only modifies the root).
	Existing []string
}

type watchKey struct {
	conn        uint32
	path, token string
}

type txKey struct{ conn, tx uint32 }

type pendingKey struct {
	txKey
	path string
}

// Validate checks what the Reader cannot see in one record, the rules
// the spec sets between records and the xenstore semantics a restored
// store relies on:
//
//   - "Records upon which other records depend must always appear
//     earlier": a WATCH_DATA, WATCH_DATA_EXTENDED or TRANSACTION_DATA
//     names an earlier CONNECTION_DATA; a node pending in a transaction
//     names an earlier TRANSACTION_DATA.
//   - "Each committed node in the stream is required to have an already
//     known parent node": an earlier committed NODE_DATA or one of
//     opts.Existing. @-nodes have no parent. Pending nodes need none.
//   - ids are unique: connection ids, (connection, tx-id), a connection's
//     (path, token) watches (WATCH answers EEXIST to a duplicate), a
//     committed path, a transaction's pending path, a DOMAIN_DATA's
//     domain-id ("present once for each domain"); GLOBAL_DATA and
//     GLOBAL_QUOTA_DATA appear at most once; quota names are unique in
//     their list.
//   - node paths are absolute ('/'-separated, no empty component, no
//     trailing '/' except the root) or special ('@' and no '/'); a
//     committed node has an owner (perm-count >= 1); a pending node is
//     deleted (no perms, no value, access 0) or accessed (perms and
//     access both non-zero).
//   - tx-id 0 (no transaction) is not a TRANSACTION_DATA; watch paths
//     are not empty.
//   - a ring connection's domid and tdomid name domains (below
//     DOMID_FIRST_RESERVED; tdomid may be DOMID_INVALID, and differs from
//     domid); a socket connection's fd is not negative; GLOBAL_DATA's fds
//     are -1 or more.
//   - a connection's in-data is xenstore messages (16-octet header and
//     payload of at most 4096), the last one possibly partial; its
//     out-data after out-resp-len octets is whole messages.
//
// It returns nil or every problem found, joined; each is a *RecordError
// wrapping ErrInconsistent, its Offset where the Writer puts the record.
func (s *Stream) Validate(opts *ValidateOptions) error {
	existing := []string{"/"}
	if opts != nil && opts.Existing != nil {
		existing = opts.Existing
	}
	known := make(map[string]bool, len(existing))
	for _, p := range existing {
		known[p] = true
	}
	var (
		errs      []error
		global    bool
		glbQuota  bool
		conns     = map[uint32]bool{}
		watches   = map[watchKey]bool{}
		txs       = map[txKey]bool{}
		committed = map[string]bool{}
		pending   = map[pendingKey]bool{}
		domains   = map[uint16]bool{}
		off       = int64(HeaderSize)
	)
	for i, rec := range s.Records {
		start := off
		bad := func(format string, a ...any) {
			errs = append(errs, &RecordError{Index: i, Offset: start, Type: typeOf(rec),
				Err: fmt.Errorf("%w: "+format, append([]any{ErrInconsistent}, a...)...)})
		}
		if rec == nil {
			bad("nil record")
			continue
		}
		if body, err := rec.appendBody(nil, s.Version); err == nil {
			off += recordHeaderSize + int64(pad8(len(body)))
		}
		switch r := rec.(type) {
		case *Global:
			if global {
				bad("second GLOBAL_DATA")
			}
			global = true
			if r.SocketFD < -1 || r.EvtchnFD < -1 {
				bad("descriptors %d, %d", r.SocketFD, r.EvtchnFD)
			}
		case *Connection:
			if conns[r.ID] {
				bad("connection id %d again", r.ID)
			}
			conns[r.ID] = true
			switch r.Kind {
			case ConnRing:
				if r.Ring.DomID >= DomIDFirstReserved {
					bad("connection %d: domid %#x is reserved", r.ID, r.Ring.DomID)
				}
				if t := r.Ring.TargetDomID; t != DomIDInvalid && (t >= DomIDFirstReserved || t == r.Ring.DomID) {
					bad("connection %d: tdomid %#x", r.ID, t)
				}
			case ConnSocket:
				if r.Socket < 0 {
					bad("connection %d: socket-fd %d", r.ID, r.Socket)
				}
			}
			if err := checkIn(r.In); err != nil {
				bad("connection %d: in-data: %v", r.ID, err)
			}
			if int(r.OutResp) > len(r.Out) {
				bad("connection %d: out-resp-len %d exceeds out-data-len %d", r.ID, r.OutResp, len(r.Out))
			} else if err := checkOut(r.Out[r.OutResp:]); err != nil {
				bad("connection %d: out-data after the %d-octet partial response: %v", r.ID, r.OutResp, err)
			}
		case *Watch:
			checkWatch(bad, conns, watches, r.ConnID, r.Path, r.Token)
		case *WatchExtended:
			checkWatch(bad, conns, watches, r.ConnID, r.Path, r.Token)
		case *Transaction:
			k := txKey{r.ConnID, r.TxID}
			switch {
			case !conns[r.ConnID]:
				bad("transaction %d of connection %d before or without its CONNECTION_DATA", r.TxID, r.ConnID)
			case r.TxID == 0:
				bad("transaction id 0 on connection %d", r.ConnID)
			case txs[k]:
				bad("transaction %d of connection %d again", r.TxID, r.ConnID)
			}
			txs[k] = true
		case *Node:
			if err := checkPath(r.Path); err != nil {
				bad("node %q: %v", r.Path, err)
				continue
			}
			if r.ConnID == 0 {
				switch {
				case len(r.Perms) == 0:
					bad("committed node %q has no permissions (no owner)", r.Path)
				case committed[r.Path]:
					bad("committed node %q again", r.Path)
				case r.Path[0] == '/' && r.Path != "/" && !known[parent(r.Path)]:
					bad("committed node %q before or without its parent %q", r.Path, parent(r.Path))
				}
				committed[r.Path] = true
				known[r.Path] = true
				continue
			}
			k := pendingKey{txKey{r.ConnID, r.TxID}, r.Path}
			deleted := len(r.Perms) == 0
			switch {
			case !txs[k.txKey]:
				bad("node %q pending in transaction %d of connection %d before or without its TRANSACTION_DATA", r.Path, r.TxID, r.ConnID)
			case pending[k]:
				bad("node %q pending in transaction %d of connection %d again", r.Path, r.TxID, r.ConnID)
			case deleted && (r.Access != 0 || len(r.Value) != 0):
				bad("node %q deleted in a transaction (no permissions) with access %#x and %d octets of value", r.Path, r.Access, len(r.Value))
			case !deleted && r.Access == 0:
				bad("node %q pending in a transaction with permissions but access 0 (deleted)", r.Path)
			}
			pending[k] = true
		case *GlobalQuota:
			if glbQuota {
				bad("second GLOBAL_QUOTA_DATA")
			}
			glbQuota = true
			checkQuotaNames(bad, "per-domain", r.PerDomain)
			checkQuotaNames(bad, "global", r.Global)
		case *Domain:
			if r.DomID >= DomIDFirstReserved {
				bad("domain-id %#x is reserved", r.DomID)
			}
			if domains[r.DomID] {
				bad("domain %d again", r.DomID)
			}
			domains[r.DomID] = true
			checkQuotaNames(bad, fmt.Sprintf("domain %d", r.DomID), r.Quotas)
		}
	}
	return errors.Join(errs...)
}

func typeOf(r Record) RecordType {
	if r == nil {
		return TypeEnd
	}
	return r.Type()
}

func checkWatch(bad func(string, ...any), conns map[uint32]bool, watches map[watchKey]bool, conn uint32, path, token string) {
	k := watchKey{conn, path, token}
	switch {
	case !conns[conn]:
		bad("watch %q %q of connection %d before or without its CONNECTION_DATA", path, token, conn)
	case path == "":
		bad("watch with an empty path on connection %d", conn)
	case watches[k]:
		bad("watch %q %q of connection %d again", path, token, conn)
	}
	watches[k] = true
}

func checkQuotaNames(bad func(string, ...any), list string, qs []Quota) {
	seen := make(map[string]bool, len(qs))
	for _, q := range qs {
		if seen[q.Name] {
			bad("%s quota %q again", list, q.Name)
		}
		seen[q.Name] = true
	}
}

// checkPath accepts an absolute node path or an @-name.
func checkPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case p[0] == '@':
		if strings.IndexByte(p, '/') >= 0 {
			return errors.New("special node name with '/'")
		}
		return nil
	case p[0] != '/':
		return errors.New("neither absolute nor special (@)")
	case p == "/":
		return nil
	case strings.HasSuffix(p, "/"):
		return errors.New("trailing '/'")
	case strings.Contains(p, "//"):
		return errors.New("empty path component")
	}
	return nil
}

// parent is the parent of an absolute path other than "/".
func parent(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

// checkIn checks buffered input: messages, the last possibly partial.
func checkIn(b []byte) error {
	for off := 0; len(b)-off >= wire.HeaderSize; {
		h, err := wire.ParseHeader(b[off:])
		if err != nil {
			return fmt.Errorf("message at %d: %v", off, err)
		}
		off += wire.HeaderSize + int(h.Len)
	}
	return nil
}

// checkOut checks buffered output: whole messages only.
func checkOut(b []byte) error {
	off := 0
	for off < len(b) {
		h, err := wire.ParseHeader(b[off:])
		if err != nil {
			return fmt.Errorf("message at %d: %v", off, err)
		}
		if len(b)-off-wire.HeaderSize < int(h.Len) {
			return fmt.Errorf("message at %d: %v with %d octets of payload, %d present", off, h.Type, h.Len, len(b)-off-wire.HeaderSize)
		}
		off += wire.HeaderSize + int(h.Len)
	}
	return nil
}
