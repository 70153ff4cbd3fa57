package launcher

import (
	"bytes"
	"io"
	"strings"
	"sync/atomic"
	"unsafe"
)

// The stub's console ring (xen/include/public/io/console.h, struct
// xencons_interface): in[1024], out[2048], then the in and out indices.
// The domain builder grants it to dom0 under grant ref 0
// (GNTTAB_RESERVED_CONSOLE). Until xenconsoled runs (it needs xenstore,
// which the stub is about to provide) nothing empties it, and Linux's hvc
// driver spins once its 2 KiB are full; ConsoleRing drains it.
const (
	consInSize   = 1024
	consOutSize  = 2048
	consOutOff   = consInSize
	consOutCons  = consInSize + consOutSize + 8
	consOutProd  = consOutCons + 4
	consRingSize = consOutProd + 4
	// GrantRefConsole is GNTTAB_RESERVED_CONSOLE.
	GrantRefConsole = 0
)

// ConsoleRing reads the output half of a mapped console page.
type ConsoleRing struct {
	page []byte
	buf  []byte
}

// NewConsoleRing wraps page, which must be at least 3088 bytes and 4-byte
// aligned (a mapped page is).
func NewConsoleRing(page []byte) *ConsoleRing {
	if len(page) < consRingSize || uintptr(unsafe.Pointer(&page[0]))%4 != 0 {
		panic("launcher: console page too small or misaligned")
	}
	return &ConsoleRing{page: page, buf: make([]byte, 0, consOutSize)}
}

func (c *ConsoleRing) idx(off int) *uint32 { return (*uint32)(unsafe.Pointer(&c.page[off])) }

// Drain copies whatever the domain has written since the last call to w
// and frees that space in the ring. It returns the number of bytes. Indices
// that claim more than a ring's worth (a domain that scribbled on them)
// are resynchronised to the last 2 KiB.
func (c *ConsoleRing) Drain(w io.Writer) (int, error) {
	cons := atomic.LoadUint32(c.idx(consOutCons))
	prod := atomic.LoadUint32(c.idx(consOutProd)) // read barrier: data after prod
	if prod-cons > consOutSize {
		cons = prod - consOutSize
	}
	c.buf = c.buf[:0]
	for ; cons != prod; cons++ {
		c.buf = append(c.buf, c.page[consOutOff+int(cons%consOutSize)])
	}
	atomic.StoreUint32(c.idx(consOutCons), cons) // after the copy
	if len(c.buf) == 0 {
		return 0, nil
	}
	return w.Write(c.buf)
}

// panicMarker is how Linux starts a panic message.
var panicMarker = []byte("Kernel panic - not syncing")

// FindPanic looks for a complete line holding a kernel panic in buf. It
// returns that line (without its end) or "", and the unfinished last line
// to prepend to the next buffer.
func FindPanic(buf []byte) (line string, rest []byte) {
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			if len(buf) > 4096 {
				buf = buf[len(buf)-4096:]
			}
			return "", append([]byte(nil), buf...)
		}
		l := buf[:i]
		buf = buf[i+1:]
		if bytes.Contains(l, panicMarker) {
			return strings.TrimSpace(string(l)), append([]byte(nil), buf...)
		}
	}
}
