package ring

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// page is the shared ring page. Index and control words are accessed only
// through load and store, which use sync/atomic on the 4-byte words in
// place; data bytes are accessed with copy.
type page struct{ b []byte }

func newPage(b []byte) (page, error) {
	if len(b) != PageSize {
		return page{}, fmt.Errorf("xenstore ring: page is %d bytes, want %d", len(b), PageSize)
	}
	if a := uintptr(unsafe.Pointer(&b[0])); a%4 != 0 {
		return page{}, fmt.Errorf("xenstore ring: page at %#x is not 4-byte aligned", a)
	}
	return page{b: b[:PageSize:PageSize]}, nil
}

// word returns a pointer to the uint32 at off. off is always one of the
// package's fixed offsets, all 4-aligned and below layoutEnd; the check
// keeps the pointer inside the page even if a caller got it wrong (without
// touching the shared bytes, which a plain bounds-checked read would).
func (p *page) word(off int) *uint32 {
	if off < 0 || off > len(p.b)-4 {
		panic("xenstore ring: word offset out of page")
	}
	return (*uint32)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(p.b)), off))
}

// load reads the word at off once, with acquire ordering. The page is
// little-endian shared memory; this package only targets little-endian
// hosts (every Xen architecture is), so a native load is the right value.
func (p *page) load(off int) uint32 { return atomic.LoadUint32(p.word(off)) }

// store writes the word at off with release ordering.
func (p *page) store(off int, v uint32) { atomic.StoreUint32(p.word(off), v) }
