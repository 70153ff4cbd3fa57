package ring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// newTestPage returns a zeroed page and both ends over it.
func newTestPage(t testing.TB) ([]byte, *Server, *Guest) {
	t.Helper()
	b := make([]byte, PageSize)
	s, err := NewServer(b)
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGuest(b)
	if err != nil {
		t.Fatal(err)
	}
	return b, s, g
}

func put32(b []byte, off int, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }
func get32(b []byte, off int) uint32    { return binary.LittleEndian.Uint32(b[off:]) }

// modelRead is the reference behaviour of a consumer: which bytes it must
// return for a queue with the given indices, byte by byte.
func modelRead(b []byte, q queue, max int) ([]byte, error) {
	cons, prod := get32(b, q.cons), get32(b, q.prod)
	if prod-cons > RingSize {
		return nil, &IndexError{Queue: q.name, Cons: cons, Prod: prod}
	}
	n := min(int(prod-cons), max)
	out := make([]byte, n)
	for i := range n {
		out[i] = b[q.data+int((cons+uint32(i))%RingSize)]
	}
	return out, nil
}

func TestLayout(t *testing.T) {
	// Offsets from xs_wire.h / xenstore-ring.txt, written out independently.
	tests := []struct {
		name string
		got  int
		want int
	}{
		{"req", offReq, 0},
		{"rsp", offRsp, 1024},
		{"req_cons", offReqCons, 2048},
		{"req_prod", offReqProd, 2052},
		{"rsp_cons", offRspCons, 2056},
		{"rsp_prod", offRspProd, 2060},
		{"server_features", offServerFeatures, 2064},
		{"connection", offConnection, 2068},
		{"error", offError, 2072},
		{"evtchn_port", offEvtchnPort, 2076},
		{"end", layoutEnd, 2080},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s offset = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
	// The atomic accessors must agree with little-endian decoding.
	b, s, g := newTestPage(t)
	put32(b, offServerFeatures, 0x01020304)
	put32(b, offConnection, 1)
	put32(b, offError, 3)
	put32(b, offEvtchnPort, 0xdeadbeef)
	if s.Features() != 0x01020304 || g.Features() != 0x01020304 {
		t.Errorf("Features = %#x/%#x", s.Features(), g.Features())
	}
	if s.Connection() != Reconnect || !s.ReconnectRequested() || g.Connection() != Reconnect {
		t.Errorf("Connection = %d", s.Connection())
	}
	if s.Error() != ErrorProto || g.Error() != ErrorProto {
		t.Errorf("Error = %d", s.Error())
	}
	if s.EvtchnPort() != 0xdeadbeef || g.EvtchnPort() != 0xdeadbeef {
		t.Errorf("EvtchnPort = %#x", s.EvtchnPort())
	}
	s.AdvertiseFeatures(FeatureReconnection | FeatureError)
	if got := get32(b, offServerFeatures); got != 0x01020304|3 {
		t.Errorf("AdvertiseFeatures cleared or lost bits: %#x", got)
	}
	s.SetError(ErrorRingIdx)
	if get32(b, offError) != 2 {
		t.Errorf("SetError wrote %d", get32(b, offError))
	}
}

func TestConstants(t *testing.T) {
	tests := []struct {
		name      string
		got, want uint32
	}{
		{"FeatureReconnection", FeatureReconnection, 1},
		{"FeatureError", FeatureError, 2},
		{"FeatureWatchDepth", FeatureWatchDepth, 4},
		{"FeatureDomIDAny", FeatureDomIDAny, 8},
		{"Connected", Connected, 0},
		{"Reconnect", Reconnect, 1},
		{"ErrorNone", ErrorNone, 0},
		{"ErrorComm", ErrorComm, 1},
		{"ErrorRingIdx", ErrorRingIdx, 2},
		{"ErrorProto", ErrorProto, 3},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
}

func TestNewRejectsBadPages(t *testing.T) {
	big := make([]byte, 2*PageSize+8)
	tests := []struct {
		name string
		page []byte
	}{
		{"nil", nil},
		{"short", make([]byte, PageSize-1)},
		{"long", make([]byte, PageSize+1)},
		{"misaligned", big[1 : 1+PageSize]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewServer(tt.page); err == nil {
				t.Error("NewServer accepted the page")
			}
			if _, err := NewGuest(tt.page); err == nil {
				t.Error("NewGuest accepted the page")
			}
		})
	}
}

func TestTransfer(t *testing.T) {
	tests := []struct {
		name  string
		start uint32 // initial value of all four indices
		sizes []int  // successive message sizes, each written then read whole
	}{
		{"zero start", 0, []int{1, 16, 100, 1024, 7}},
		{"wrap inside buffer", 1000, []int{16, 40, 1024, 1023, 1}},
		{"split header", 1020, []int{16, 16, 16}},
		{"uint32 wrap", 0xffffff00, []int{1024, 300, 500, 1024}},
		{"uint32 wrap split", 0xfffffffe, []int{16, 1024}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, s, g := newTestPage(t)
			for _, off := range []int{offReqCons, offReqProd, offRspCons, offRspProd} {
				put32(b, off, tt.start)
			}
			rng := rand.New(rand.NewPCG(uint64(tt.start), 1))
			for _, size := range tt.sizes {
				msg := make([]byte, size)
				for i := range msg {
					msg[i] = byte(rng.Uint32())
				}
				// Guest -> server.
				if n, err := g.Write(msg); err != nil || n != size {
					t.Fatalf("guest Write(%d) = %d, %v", size, n, err)
				}
				if n, err := s.Readable(); err != nil || n != size {
					t.Fatalf("Readable = %d, %v; want %d", n, err, size)
				}
				got := make([]byte, size+10)
				n, err := s.Read(got)
				if err != nil || n != size || !bytes.Equal(got[:n], msg) {
					t.Fatalf("server Read = %d, %v; data equal %v", n, err, bytes.Equal(got[:n], msg))
				}
				// Server -> guest, read back in two pieces to split it.
				if n, err := s.Write(msg); err != nil || n != size {
					t.Fatalf("server Write(%d) = %d, %v", size, n, err)
				}
				half := size / 2
				p1 := make([]byte, half)
				n1, err := g.Read(p1)
				if err != nil || n1 != half {
					t.Fatalf("guest Read part 1 = %d, %v", n1, err)
				}
				p2 := make([]byte, size)
				n2, err := g.Read(p2)
				if err != nil || n2 != size-half {
					t.Fatalf("guest Read part 2 = %d, %v", n2, err)
				}
				if !bytes.Equal(append(p1, p2[:n2]...), msg) {
					t.Fatal("split read returned wrong data")
				}
			}
			if n, _ := s.Readable(); n != 0 {
				t.Errorf("leftover request bytes: %d", n)
			}
			if n, _ := g.Writable(); n != RingSize {
				t.Errorf("Writable = %d, want %d", n, RingSize)
			}
		})
	}
}

func TestFullAndEmpty(t *testing.T) {
	_, s, g := newTestPage(t)
	if n, err := s.Read(make([]byte, 10)); n != 0 || err != nil {
		t.Fatalf("Read on empty = %d, %v", n, err)
	}
	big := bytes.Repeat([]byte{'x'}, 1500)
	if n, err := g.Write(big); n != RingSize || err != nil {
		t.Fatalf("Write of 1500 = %d, %v; want %d", n, err, RingSize)
	}
	if n, err := g.Write(big); n != 0 || err != nil {
		t.Fatalf("Write on full = %d, %v", n, err)
	}
	if n, err := g.Writable(); n != 0 || err != nil {
		t.Fatalf("Writable on full = %d, %v", n, err)
	}
	if n, err := s.Read(make([]byte, 100)); n != 100 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if n, err := g.Write(big); n != 100 || err != nil {
		t.Fatalf("Write after consuming 100 = %d, %v", n, err)
	}
	if n, err := s.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v", n, err)
	}
}

func TestHostileIndices(t *testing.T) {
	tests := []struct {
		name       string
		cons, prod uint32
		wantErr    bool
		readable   int
	}{
		{"empty", 5, 5, false, 0},
		{"exactly full", 0, 1024, false, 1024},
		{"full across uint32 wrap", 0xfffffe00, 0x200, false, 1024},
		{"one too many", 0, 1025, true, 0},
		{"prod far ahead", 0, 0x80000000, true, 0},
		{"cons ahead of prod", 10, 9, true, 0},
		{"cons far ahead", 0x1000, 0, true, 0},
		{"max distance", 0, 0xffffffff, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, side := range []string{"server", "guest"} {
				b, s, g := newTestPage(t)
				// The consumer's queue gets the hostile indices; the producer
				// side of the same queue must refuse to write too.
				var read func([]byte) (int, error)
				var readable func() (int, error)
				var write func([]byte) (int, error)
				var q queue
				if side == "server" {
					q, read, readable, write = reqQueue, s.Read, s.Readable, g.Write
				} else {
					q, read, readable, write = rspQueue, g.Read, g.Readable, s.Write
				}
				put32(b, q.cons, tt.cons)
				put32(b, q.prod, tt.prod)
				before := bytes.Clone(b)
				n, err := read(make([]byte, 4096))
				if tt.wantErr {
					var ie *IndexError
					if !errors.Is(err, ErrRingIndex) || !errors.As(err, &ie) {
						t.Fatalf("%s Read err = %v, want IndexError", side, err)
					}
					if ie.Cons != tt.cons || ie.Prod != tt.prod || ie.Queue != q.name {
						t.Errorf("IndexError = %+v", ie)
					}
					if n != 0 || !bytes.Equal(b, before) {
						t.Errorf("%s Read on bad indices returned %d or changed the page", side, n)
					}
					if _, err := readable(); !errors.Is(err, ErrRingIndex) {
						t.Errorf("Readable err = %v", err)
					}
					if n, err := write([]byte("abc")); n != 0 || !errors.Is(err, ErrRingIndex) {
						t.Errorf("Write on bad indices = %d, %v", n, err)
					}
					if !bytes.Equal(b, before) {
						t.Error("page changed after refused operations")
					}
					return
				}
				if err != nil || n != tt.readable {
					t.Fatalf("%s Read = %d, %v; want %d", side, n, err, tt.readable)
				}
				if got := get32(b, q.cons); got != tt.cons+uint32(n) {
					t.Errorf("cons = %#x, want %#x", got, tt.cons+uint32(n))
				}
			}
		})
	}
}

// TestBoundedReads fills everything outside the req data with a marker the
// req data never contains and checks, for many index values, that only req
// bytes come back: the reader never strays outside its array.
func TestBoundedReads(t *testing.T) {
	const marker = 0xee
	rng := rand.New(rand.NewPCG(7, 7))
	for range 2000 {
		b := bytes.Repeat([]byte{marker}, PageSize)
		for i := range RingSize {
			b[offReq+i] = byte(i % 200)
		}
		cons := rng.Uint32()
		prod := cons + uint32(rng.IntN(RingSize+1))
		put32(b, offReqCons, cons)
		put32(b, offReqProd, prod)
		s, err := NewServer(b)
		if err != nil {
			t.Fatal(err)
		}
		dst := make([]byte, rng.IntN(3000))
		want, _ := modelRead(b, reqQueue, len(dst))
		n, err := s.Read(dst)
		if err != nil {
			t.Fatalf("Read(cons=%#x prod=%#x) error %v", cons, prod, err)
		}
		if !bytes.Equal(dst[:n], want) || bytes.IndexByte(dst[:n], marker) >= 0 {
			t.Fatalf("Read(cons=%#x prod=%#x) returned bytes from outside req", cons, prod)
		}
	}
}

// TestHugeLengthHeader: a header announcing a 4 GiB payload is just 16 bytes
// to the ring; the ring moves them and nothing more.
func TestHugeLengthHeader(t *testing.T) {
	_, s, g := newTestPage(t)
	hdr := make([]byte, 16)
	put32(hdr, 0, 2)
	put32(hdr, 12, 0xffffffff)
	if n, err := g.Write(hdr); n != 16 || err != nil {
		t.Fatal(n, err)
	}
	got := make([]byte, 1<<16)
	n, err := s.Read(got)
	if n != 16 || err != nil || !bytes.Equal(got[:16], hdr) {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if n, err := s.Read(got); n != 0 || err != nil {
		t.Fatalf("second Read = %d, %v", n, err)
	}
}

// TestIndicesChangingUnderfoot has a hostile goroutine rewrite req_prod and
// req_cons continuously while the server reads. Every read must either fail
// with an IndexError or return bytes that are a plausible window of req;
// none may panic or exceed the ring.
func TestIndicesChangingUnderfoot(t *testing.T) {
	b, s, _ := newTestPage(t)
	for i := range RingSize {
		b[offReq+i] = byte(i)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var p page
		p.b = b
		rng := rand.New(rand.NewPCG(1, 2))
		for !stop.Load() {
			p.store(offReqProd, rng.Uint32()%4096)
			p.store(offReqCons, rng.Uint32()%4096)
		}
	}()
	deadline := time.Now().Add(300 * time.Millisecond)
	dst := make([]byte, 4*RingSize)
	var reads, errs int
	for time.Now().Before(deadline) {
		n, err := s.Read(dst)
		reads++
		if err != nil {
			if !errors.Is(err, ErrRingIndex) {
				t.Fatalf("unexpected error %v", err)
			}
			errs++
			continue
		}
		if n > RingSize {
			t.Fatalf("Read returned %d bytes", n)
		}
		// Data bytes are static; any returned run must be consecutive
		// modulo the ring, i.e. b[i+1] == b[i]+1 mod 256 except across
		// the 1024 boundary, which is also consecutive mod 256.
		for i := 1; i < n; i++ {
			if dst[i] != dst[i-1]+1 {
				t.Fatalf("non-contiguous data at %d: %d after %d", i, dst[i], dst[i-1])
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	if errs == 0 || errs == reads {
		t.Logf("reads %d, index errors %d (racy mix expected but not required)", reads, errs)
	}
}

func TestReconnect(t *testing.T) {
	b, s, g := newTestPage(t)
	s.AdvertiseFeatures(FeatureReconnection | FeatureError)
	if _, err := g.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("reply")); err != nil {
		t.Fatal(err)
	}
	s.SetError(ErrorComm)
	if s.ReconnectRequested() {
		t.Fatal("reconnect requested before the guest asked")
	}
	g.RequestReconnect()
	if !s.ReconnectRequested() || g.Connection() != Reconnect {
		t.Fatal("server does not see the reconnect request")
	}
	s.CompleteReconnect()
	for _, off := range []int{offReqCons, offReqProd, offRspCons, offRspProd, offConnection, offError} {
		if v := get32(b, off); v != 0 {
			t.Errorf("word at %d = %d after reconnect, want 0", off, v)
		}
	}
	if s.Features()&(FeatureReconnection|FeatureError) != 3 {
		t.Error("reconnect cleared feature bits")
	}
	if n, _ := s.Readable(); n != 0 {
		t.Errorf("req not empty after reconnect: %d", n)
	}
}

// TestConcurrentStream pumps a long random stream through both queues with
// one goroutine per end, as with two real domains.
func TestConcurrentStream(t *testing.T) {
	_, s, g := newTestPage(t)
	const total = 1 << 18
	src := make([]byte, total)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range src {
		src[i] = byte(rng.Uint32())
	}
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	wg.Add(2)
	go func() { // guest writer
		defer wg.Done()
		for off := 0; off < total; {
			n, err := g.Write(src[off:min(off+700, total)])
			if err != nil {
				errc <- err
				return
			}
			off += n
			if n == 0 {
				time.Sleep(time.Microsecond)
			}
		}
	}()
	got := make([]byte, 0, total)
	go func() { // server reader echoes back
		defer wg.Done()
		buf := make([]byte, 333)
		for len(got) < total {
			n, err := s.Read(buf)
			if err != nil {
				errc <- err
				return
			}
			got = append(got, buf[:n]...)
			for out := buf[:n]; len(out) > 0; {
				m, err := s.Write(out)
				if err != nil {
					errc <- err
					return
				}
				out = out[m:]
				if m == 0 {
					// Drain our own echo as the guest would.
					tmp := make([]byte, RingSize)
					if _, err := g.Read(tmp); err != nil {
						errc <- err
						return
					}
				}
			}
			if n == 0 {
				time.Sleep(time.Microsecond)
			}
		}
	}()
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if !bytes.Equal(got, src) {
		t.Fatal("stream corrupted")
	}
}
