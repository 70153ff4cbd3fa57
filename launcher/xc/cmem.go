//go:build linux && cgo

package xc

// #include <stdlib.h>
import "C"

import (
	"fmt"
	"unsafe"
)

// cmem is C memory holding one of libxc's structs, read and written by the
// fields of a Layout (bounds and widths checked; a violation is a bug in
// the tables and panics).
type cmem struct {
	p unsafe.Pointer
	n uintptr
}

// calloc allocates n zeroed bytes; free releases them.
func calloc(n uintptr) cmem { return cmem{C.calloc(1, C.size_t(n)), n} }

func (m cmem) free() { C.free(m.p) }

func (m cmem) at(f Field, size uintptr) unsafe.Pointer {
	if f.Size != size || f.Off+f.Size > m.n {
		panic(fmt.Sprintf("xc: field %+v (want width %d) outside a %d-byte struct", f, size, m.n))
	}
	return unsafe.Add(m.p, f.Off)
}

func (m cmem) put16(f Field, v uint16) { *(*uint16)(m.at(f, 2)) = v }
func (m cmem) put32(f Field, v uint32) { *(*uint32)(m.at(f, 4)) = v }
func (m cmem) put64(f Field, v uint64) { *(*uint64)(m.at(f, 8)) = v }
func (m cmem) get16(f Field) uint16    { return *(*uint16)(m.at(f, 2)) }
func (m cmem) get32(f Field) uint32    { return *(*uint32)(m.at(f, 4)) }
func (m cmem) get64(f Field) uint64    { return *(*uint64)(m.at(f, 8)) }

func (m cmem) putPtr(f Field, p unsafe.Pointer) { *(*unsafe.Pointer)(m.at(f, 8)) = p }
func (m cmem) getPtr(f Field) unsafe.Pointer    { return *(*unsafe.Pointer)(m.at(f, 8)) }

// elem is element i (of size bytes) of an array that starts at f.
func (m cmem) elem(f Field, i, size uintptr) cmem {
	if (i+1)*size > f.Size {
		panic(fmt.Sprintf("xc: element %d of %d bytes outside field %+v", i, size, f))
	}
	return cmem{m.at(f, f.Size), f.Size}.slice(i*size, size)
}

func (m cmem) slice(off, n uintptr) cmem {
	if off+n > m.n {
		panic(fmt.Sprintf("xc: [%d, %d) outside a %d-byte struct", off, off+n, m.n))
	}
	return cmem{unsafe.Add(m.p, off), n}
}
