// Package ring implements both ends of the xenstore ring page described in
// Xen's docs/misc/xenstore-ring.txt and xs_wire.h (struct
// xenstore_domain_interface): two 1024-byte circular byte queues (req: guest
// to server, rsp: server to guest), their free-running uint32 consumer and
// producer indices, and the server_features, connection, error and
// evtchn_port words.
//
// Scope: byte transport only. Framing xenstore messages (the 16-byte header
// and its length limit) is the caller's business; this package moves bytes
// and guards the ring itself. It makes no system calls: the page is a
// []byte that the caller obtained somehow (a grant mapping, a memfd mapping,
// or plain memory in tests).
//
// Threat model and invariants:
//
//   - The page is shared with a peer that may be hostile and may write any
//     word at any moment. Every index word is read exactly once per
//     operation, with an atomic load, into a local; all decisions are taken on
//     the locals.
//   - The amount of queued data, prod-cons in uint32 wrap arithmetic, must be
//     at most RingSize. Anything else is reported as an *IndexError
//     (errors.Is(err, ErrRingIndex)); the server should then set the error
//     word to ErrorRingIdx and stop serving the ring. Nothing here panics on
//     peer-controlled data.
//   - Offsets into the data arrays are always masked with RingSize-1, so no
//     operation touches bytes outside req or rsp, whatever the indices say.
//   - Ordering: a consumer loads prod (atomic, acquire) before copying data
//     and stores cons (atomic, release) after; a producer copies data before
//     storing prod. Go's sync/atomic operations are sequentially consistent,
//     which gives the barriers the C implementations spell out as
//     xen_mb/xen_rmb/xen_wmb.
//   - Data is copied out of the shared page into caller memory before anyone
//     parses it; nothing is parsed in place.
//
// A Server or Guest value is not safe for concurrent use by several
// goroutines of the same side; one goroutine per ring end is the intended use.
package ring

import (
	"errors"
	"fmt"
)

// Page geometry and offsets (bytes) of struct xenstore_domain_interface.
const (
	PageSize = 4096
	RingSize = 1024 // XENSTORE_RING_SIZE

	offReq            = 0
	offRsp            = 1024
	offReqCons        = 2048
	offReqProd        = 2052
	offRspCons        = 2056
	offRspProd        = 2060
	offServerFeatures = 2064
	offConnection     = 2068
	offError          = 2072
	offEvtchnPort     = 2076
	layoutEnd         = 2080
)

// Server feature bits (server_features word).
const (
	FeatureReconnection uint32 = 1 // XENSTORE_SERVER_FEATURE_RECONNECTION
	FeatureError        uint32 = 2 // XENSTORE_SERVER_FEATURE_ERROR
	FeatureWatchDepth   uint32 = 4 // XENSTORE_SERVER_FEATURE_WATCHDEPTH
	FeatureDomIDAny     uint32 = 8 // XENSTORE_SERVER_FEATURE_DOMID_ANY
)

// Values of the connection word.
const (
	Connected uint32 = 0 // XENSTORE_CONNECTED
	Reconnect uint32 = 1 // XENSTORE_RECONNECT
)

// Values of the error word.
const (
	ErrorNone    uint32 = 0 // XENSTORE_ERROR_NONE
	ErrorComm    uint32 = 1 // XENSTORE_ERROR_COMM
	ErrorRingIdx uint32 = 2 // XENSTORE_ERROR_RINGIDX
	ErrorProto   uint32 = 3 // XENSTORE_ERROR_PROTO
)

// ErrRingIndex is matched (errors.Is) by every *IndexError.
var ErrRingIndex = errors.New("xenstore ring: inconsistent producer/consumer index")

// IndexError reports a queue whose indices claim more than RingSize bytes
// are in flight (this includes a consumer index ahead of the producer). The
// values are the ones read from the page for the failed operation.
type IndexError struct {
	Queue string // "req" or "rsp"
	Cons  uint32
	Prod  uint32
}

func (e *IndexError) Error() string {
	return fmt.Sprintf("xenstore ring: %s queue: prod %#x - cons %#x = %#x exceeds ring size %d",
		e.Queue, e.Prod, e.Cons, e.Prod-e.Cons, RingSize)
}

// Is makes errors.Is(err, ErrRingIndex) true.
func (e *IndexError) Is(target error) bool { return target == ErrRingIndex }

// queue names one of the two circular buffers by its offsets in the page.
type queue struct {
	name string
	data int // offset of the 1024 data bytes
	cons int // offset of the consumer index
	prod int // offset of the producer index
}

var (
	reqQueue = queue{name: "req", data: offReq, cons: offReqCons, prod: offReqProd}
	rspQueue = queue{name: "rsp", data: offRsp, cons: offRspCons, prod: offRspProd}
)

// indices loads cons and prod once each and validates them. The load order
// matters: the index this side does not own is the one whose value
// publishes data (prod for a consumer) or space (cons for a producer); it is
// loaded with acquire semantics before any data byte is touched.
func (p *page) indices(q queue) (cons, prod uint32, err error) {
	cons = p.load(q.cons)
	prod = p.load(q.prod)
	if prod-cons > RingSize {
		return cons, prod, &IndexError{Queue: q.name, Cons: cons, Prod: prod}
	}
	return cons, prod, nil
}

// readable reports how many bytes q holds.
func (p *page) readable(q queue) (int, error) {
	cons, prod, err := p.indices(q)
	if err != nil {
		return 0, err
	}
	return int(prod - cons), nil
}

// writable reports how many bytes can be appended to q.
func (p *page) writable(q queue) (int, error) {
	cons, prod, err := p.indices(q)
	if err != nil {
		return 0, err
	}
	return RingSize - int(prod-cons), nil
}

// read copies up to len(dst) queued bytes of q into dst and advances cons.
func (p *page) read(q queue, dst []byte) (int, error) {
	cons, prod, err := p.indices(q)
	if err != nil {
		return 0, err
	}
	n := min(int(prod-cons), len(dst))
	if n == 0 {
		return 0, nil
	}
	start := int(cons & (RingSize - 1))
	first := min(n, RingSize-start)
	copy(dst[:first], p.b[q.data+start:q.data+start+first])
	copy(dst[first:n], p.b[q.data:q.data+n-first])
	p.store(q.cons, cons+uint32(n))
	return n, nil
}

// write copies as much of src as fits into q and advances prod.
func (p *page) write(q queue, src []byte) (int, error) {
	cons, prod, err := p.indices(q)
	if err != nil {
		return 0, err
	}
	n := min(RingSize-int(prod-cons), len(src))
	if n == 0 {
		return 0, nil
	}
	start := int(prod & (RingSize - 1))
	first := min(n, RingSize-start)
	copy(p.b[q.data+start:q.data+start+first], src[:first])
	copy(p.b[q.data:q.data+n-first], src[first:n])
	p.store(q.prod, prod+uint32(n))
	return n, nil
}

// Server is the xenstored end of a ring: it consumes req and produces rsp.
type Server struct{ p page }

// NewServer wraps a shared ring page. page must be PageSize bytes long and
// 4-byte aligned (any mmap'd page is).
func NewServer(page []byte) (*Server, error) {
	p, err := newPage(page)
	if err != nil {
		return nil, err
	}
	return &Server{p: p}, nil
}

// Read copies up to len(dst) request bytes into dst and consumes them. It
// returns 0, nil when the queue is empty.
func (s *Server) Read(dst []byte) (int, error) { return s.p.read(reqQueue, dst) }

// Write appends as much of src to the response queue as fits and returns the
// count; 0, nil means the queue is full.
func (s *Server) Write(src []byte) (int, error) { return s.p.write(rspQueue, src) }

// Readable is the number of request bytes waiting.
func (s *Server) Readable() (int, error) { return s.p.readable(reqQueue) }

// Writable is the free space in the response queue.
func (s *Server) Writable() (int, error) { return s.p.writable(rspQueue) }

// Features returns the server_features word.
func (s *Server) Features() uint32 { return s.p.load(offServerFeatures) }

// AdvertiseFeatures sets bits in server_features. Bits are never cleared,
// as xenstore-ring.txt requires. A server supporting reconnection must
// advertise it before moving any data.
func (s *Server) AdvertiseFeatures(bits uint32) {
	s.p.store(offServerFeatures, s.p.load(offServerFeatures)|bits)
}

// SetFeatures sets server_features to exactly bits, for a connection
// being set up (before any data moves): a domain may have been given
// fewer features than the server supports (SET_FEATURE). Afterwards use
// AdvertiseFeatures, which never clears a bit.
func (s *Server) SetFeatures(bits uint32) {
	s.p.store(offServerFeatures, bits)
}

// Connection returns the connection word (Connected or Reconnect; a hostile
// guest may write anything).
func (s *Server) Connection() uint32 { return s.p.load(offConnection) }

// ReconnectRequested reports whether the guest has set connection=Reconnect.
func (s *Server) ReconnectRequested() bool { return s.Connection() == Reconnect }

// CompleteReconnect performs the server's side of the reconnection
// handshake once the caller has discarded all connection state (partial
// packets, in-flight requests, watches, transactions): both queues are
// emptied by zeroing the four indices, the error word is cleared, and only
// then is connection set to Connected. The caller must notify the event
// channel afterwards.
func (s *Server) CompleteReconnect() {
	s.p.store(offReqCons, 0)
	s.p.store(offReqProd, 0)
	s.p.store(offRspCons, 0)
	s.p.store(offRspProd, 0)
	s.p.store(offError, ErrorNone)
	s.p.store(offConnection, Connected)
}

// MarkConnected sets connection to Connected and touches nothing else: for
// a ring its builder left at Reconnect before any server served it (Xen's
// dom0less boot), where the guest may have queued requests already (Linux
// 6.1 does, when a process writes to /dev/xen/xenbus before the store
// came up). C xenstored's start-up introduction does the same. The caller
// must notify the event channel afterwards.
func (s *Server) MarkConnected() { s.p.store(offConnection, Connected) }

// Error returns the error word.
func (s *Server) Error() uint32 { return s.p.load(offError) }

// SetError sets the error word (ErrorComm, ErrorRingIdx, ErrorProto). It is
// meaningful to the guest only if FeatureError is advertised; after setting
// it the server stops serving the ring.
func (s *Server) SetError(code uint32) { s.p.store(offError, code) }

// EvtchnPort returns the evtchn_port word, which Xen fills for
// dom0less/hyperlaunch domains; 0 means "use the port from XS_INTRODUCE".
func (s *Server) EvtchnPort() uint32 { return s.p.load(offEvtchnPort) }

// Guest is the domain end of a ring: it produces req and consumes rsp. It is
// used by test clients and by ringclient.
type Guest struct{ p page }

// NewGuest wraps a shared ring page; see NewServer for the requirements.
func NewGuest(page []byte) (*Guest, error) {
	p, err := newPage(page)
	if err != nil {
		return nil, err
	}
	return &Guest{p: p}, nil
}

// Write appends as much of src to the request queue as fits.
func (g *Guest) Write(src []byte) (int, error) { return g.p.write(reqQueue, src) }

// Read copies up to len(dst) response bytes into dst and consumes them.
func (g *Guest) Read(dst []byte) (int, error) { return g.p.read(rspQueue, dst) }

// Readable is the number of response bytes waiting.
func (g *Guest) Readable() (int, error) { return g.p.readable(rspQueue) }

// Writable is the free space in the request queue.
func (g *Guest) Writable() (int, error) { return g.p.writable(reqQueue) }

// Features returns the server_features word.
func (g *Guest) Features() uint32 { return g.p.load(offServerFeatures) }

// Connection returns the connection word.
func (g *Guest) Connection() uint32 { return g.p.load(offConnection) }

// RequestReconnect sets connection=Reconnect. The caller must then notify
// the event channel and wait until Connection() is Connected again, ignoring
// every other field meanwhile. Only meaningful if the server advertises
// FeatureReconnection.
func (g *Guest) RequestReconnect() { g.p.store(offConnection, Reconnect) }

// Error returns the error word; non-zero means the server stopped serving.
func (g *Guest) Error() uint32 { return g.p.load(offError) }

// EvtchnPort returns the evtchn_port word.
func (g *Guest) EvtchnPort() uint32 { return g.p.load(offEvtchnPort) }
