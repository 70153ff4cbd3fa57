package fake

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/xen"
)

// growSlots is how many page slots the memfd grows by at a time. The file
// is sparse, so the step costs address space in the file only.
const growSlots = 1024

// pagePool hands out ring pages as slots of one memfd. A slot is
// reference-counted: the domain holds one reference until it is gone, and
// every mapping made in this process holds one. A slot whose count drops to
// zero is zeroed and reused.
type pagePool struct {
	mu     sync.Mutex
	fd     int   // -1 until the first alloc
	stride int64 // bytes per slot: xen.PageSize, or the system page if larger
	size   int   // slots the file holds
	next   int   // first slot never handed out
	free   []int
	refs   []int32
	closed bool
}

func newPagePool() *pagePool {
	return &pagePool{fd: -1, stride: int64(max(xen.PageSize, os.Getpagesize()))}
}

// alloc returns a zeroed slot with one reference.
func (p *pagePool) alloc() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, errors.New("page pool closed")
	}
	if n := len(p.free); n > 0 {
		s := p.free[n-1]
		p.free = p.free[:n-1]
		p.refs[s] = 1
		return s, nil
	}
	if p.fd < 0 {
		fd, err := unix.MemfdCreate("xsfake-pages", unix.MFD_CLOEXEC)
		if err != nil {
			return 0, fmt.Errorf("memfd_create: %w", err)
		}
		p.fd = fd
	}
	if p.next == p.size {
		if err := unix.Ftruncate(p.fd, int64(p.size+growSlots)*p.stride); err != nil {
			return 0, fmt.Errorf("ftruncate: %w", err)
		}
		p.size += growSlots
		p.refs = append(p.refs, make([]int32, growSlots)...)
	}
	s := p.next
	p.next++
	p.refs[s] = 1
	return s, nil
}

// offset is slot s's byte offset in the memfd.
func (p *pagePool) offset(s int) int64 { return int64(s) * p.stride }

// mmap maps slot s read-write, shared, and takes a reference for the
// mapping.
func (p *pagePool) mmap(s int) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.refs[s] == 0 {
		return nil, errors.New("page released")
	}
	b, err := unix.Mmap(p.fd, p.offset(s), xen.PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	p.refs[s]++
	return b, nil
}

// unmap unmaps b, a mapping of slot s, and drops its reference.
func (p *pagePool) unmap(s int, b []byte) error {
	err := unix.Munmap(b)
	p.unref(s)
	if err != nil {
		return fmt.Errorf("munmap: %w", err)
	}
	return nil
}

// unref drops one reference to slot s; the last one zeroes the page and
// frees the slot.
func (p *pagePool) unref(s int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if p.refs[s]--; p.refs[s] > 0 {
		return
	}
	// Punching a hole zeroes the page and returns its memory.
	if err := unix.Fallocate(p.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, p.offset(s), p.stride); err != nil {
		zero := make([]byte, p.stride)
		if _, err := unix.Pwrite(p.fd, zero, p.offset(s)); err != nil {
			return // leak the slot rather than hand out a dirty page
		}
	}
	p.free = append(p.free, s)
}

// dupFD returns a close-on-exec duplicate of the memfd, for a guest in
// another process.
func (p *pagePool) dupFD() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.fd < 0 {
		return -1, errors.New("page pool closed")
	}
	fd, err := unix.FcntlInt(uintptr(p.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("dup: %w", err)
	}
	return fd, nil
}

// close closes the memfd; mappings stay valid until unmapped.
func (p *pagePool) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if p.fd >= 0 {
		if err := unix.Close(p.fd); err != nil {
			return fmt.Errorf("fake: close page memfd: %w", err)
		}
	}
	return nil
}
