package ring

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzRingRead drives Read and Write of both ends over arbitrary page
// contents and checks them against the byte-by-byte model: correct bytes,
// correct index updates, IndexError exactly when prod-cons > RingSize, and
// no byte outside the consumer's cons word (reads) or the producer's data
// array and prod word (writes) modified.
//
// Inputs are whole pages, which the fuzzer's default minimisation of new
// corpus entries (up to 60 s each) handles slowly; run it as
//
//	go test -run '^$' -fuzz FuzzRingRead -fuzztime 30s -fuzzminimizetime 200x ./xen/ring
func FuzzRingRead(f *testing.F) {
	seed := make([]byte, PageSize)
	f.Add(seed, uint16(16), false)
	wrap := bytes.Clone(seed)
	put32(wrap, offReqCons, 1020)
	put32(wrap, offReqProd, 1040)
	f.Add(wrap, uint16(100), false)
	bad := bytes.Clone(seed)
	put32(bad, offRspCons, 5)
	put32(bad, offRspProd, 4)
	f.Add(bad, uint16(4096), true)
	f.Fuzz(func(t *testing.T, data []byte, dstLen uint16, guest bool) {
		b := make([]byte, PageSize)
		copy(b, data)
		q, other := reqQueue, rspQueue
		var read, write func([]byte) (int, error)
		if guest {
			q, other = rspQueue, reqQueue
			g, err := NewGuest(b)
			if err != nil {
				t.Fatal(err)
			}
			read, write = g.Read, g.Write
		} else {
			s, err := NewServer(b)
			if err != nil {
				t.Fatal(err)
			}
			read, write = s.Read, s.Write
		}

		// Read side.
		before := bytes.Clone(b)
		dst := make([]byte, int(dstLen)%(2*RingSize+1))
		want, wantErr := modelRead(b, q, len(dst))
		n, err := read(dst)
		if wantErr != nil {
			if !errors.Is(err, ErrRingIndex) || n != 0 {
				t.Fatalf("read = %d, %v; want IndexError", n, err)
			}
			if !bytes.Equal(b, before) {
				t.Fatal("failed read modified the page")
			}
		} else {
			if err != nil || n != len(want) || !bytes.Equal(dst[:n], want) {
				t.Fatalf("read = %d, %v; want %d bytes", n, err, len(want))
			}
			exp := bytes.Clone(before)
			if n > 0 {
				put32(exp, q.cons, get32(before, q.cons)+uint32(n))
			}
			if !bytes.Equal(b, exp) {
				t.Fatal("read modified bytes other than its consumer index")
			}
		}

		// Write side, on the other queue.
		before = bytes.Clone(b)
		src := dst
		cons, prod := get32(b, other.cons), get32(b, other.prod)
		n, err = write(src)
		if prod-cons > RingSize {
			if !errors.Is(err, ErrRingIndex) || n != 0 || !bytes.Equal(b, before) {
				t.Fatalf("write on bad indices = %d, %v", n, err)
			}
			return
		}
		if err != nil || n != min(len(src), RingSize-int(prod-cons)) {
			t.Fatalf("write = %d, %v", n, err)
		}
		exp := bytes.Clone(before)
		for i := range n {
			exp[other.data+int((prod+uint32(i))%RingSize)] = src[i]
		}
		if n > 0 {
			put32(exp, other.prod, prod+uint32(n))
		}
		if !bytes.Equal(b, exp) {
			t.Fatal("write modified the page outside its data and producer index")
		}
	})
}
