package launcher

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unsafe"
)

// fakeConsole is a console page as a domain writes it.
type fakeConsole struct {
	words []uint32 // 4-byte aligned backing
	page  []byte
}

func newFakeConsole() *fakeConsole {
	w := make([]uint32, 1024)
	return &fakeConsole{words: w, page: unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), 4096)}
}

func (f *fakeConsole) write(s string) int {
	prod := binary.LittleEndian.Uint32(f.page[consOutProd:])
	cons := binary.LittleEndian.Uint32(f.page[consOutCons:])
	n := 0
	for ; n < len(s) && prod-cons < consOutSize; n++ {
		f.page[consOutOff+int(prod%consOutSize)] = s[n]
		prod++
	}
	binary.LittleEndian.PutUint32(f.page[consOutProd:], prod)
	return n
}

func TestConsoleRingDrain(t *testing.T) {
	f := newFakeConsole()
	r := NewConsoleRing(f.page)
	var out bytes.Buffer
	if n, err := r.Drain(&out); n != 0 || err != nil {
		t.Fatal(n, err)
	}
	f.write("hello\n")
	if n, _ := r.Drain(&out); n != 6 || out.String() != "hello\n" {
		t.Fatalf("%d %q", n, out.String())
	}
	// A full ring (the stall a reader prevents), drained, then more: the
	// indices wrap around the 2 KiB buffer.
	big := bytes.Repeat([]byte("0123456789abcdef"), 200) // 3200 bytes
	out.Reset()
	for rest := string(big); rest != ""; {
		n := f.write(rest)
		if n == 0 {
			t.Fatal("ring stays full")
		}
		rest = rest[n:]
		if _, err := r.Drain(&out); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(out.Bytes(), big) {
		t.Fatalf("drained %d bytes, want %d identical", out.Len(), len(big))
	}
	if c, p := binary.LittleEndian.Uint32(f.page[consOutCons:]), binary.LittleEndian.Uint32(f.page[consOutProd:]); c != p {
		t.Errorf("cons %d prod %d after drain", c, p)
	}
	// Index wrap at 2^32.
	binary.LittleEndian.PutUint32(f.page[consOutCons:], 0xfffffffe)
	binary.LittleEndian.PutUint32(f.page[consOutProd:], 0xfffffffe)
	out.Reset()
	f.write("wrap")
	r.Drain(&out)
	if out.String() != "wrap" {
		t.Errorf("across 2^32: %q", out.String())
	}
	// Nonsense indices from the domain: at most one ring's worth.
	binary.LittleEndian.PutUint32(f.page[consOutCons:], 0)
	binary.LittleEndian.PutUint32(f.page[consOutProd:], 100000)
	out.Reset()
	if n, _ := r.Drain(&out); n != consOutSize {
		t.Errorf("drained %d of a corrupt ring", n)
	}
}

func TestFindPanic(t *testing.T) {
	l, rest := FindPanic([]byte("[ 1.0] ok\n[ 6.8] Kernel panic - not sync"))
	if l != "" || string(rest) != "[ 6.8] Kernel panic - not sync" {
		t.Fatalf("%q %q", l, rest)
	}
	l, _ = FindPanic(append(rest, []byte("ing: No working init found.\nmore\n")...))
	if l != "[ 6.8] Kernel panic - not syncing: No working init found." {
		t.Fatalf("%q", l)
	}
	if l, _ := FindPanic([]byte("fine\nlines\n")); l != "" {
		t.Fatal(l)
	}
}
