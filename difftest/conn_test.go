//go:build linux

package difftest

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"time"

	"github.com/xsstub/xenstored/wire"
)

// rawConn is a socket connection that keeps every incoming message, replies
// and watch events alike, in arrival order. Unlike xsclient it does not
// interpret payloads, so malformed requests and odd replies stay visible.
type rawConn struct {
	nc   net.Conn
	in   chan wire.Msg // closed when the daemon closes the connection
	gone bool          // in has been drained to its close
}

func dialRaw(sock string) (*rawConn, error) {
	var nc net.Conn
	var err error
	// A daemon creates its socket before listening on it: retry briefly.
	for try := 0; ; try++ {
		if nc, err = net.Dial("unix", sock); err == nil || try == 500 {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	c := &rawConn{nc: nc, in: make(chan wire.Msg, 4096)}
	go c.readLoop()
	return c, nil
}

func (c *rawConn) readLoop() {
	defer close(c.in)
	r := bufio.NewReader(c.nc)
	var hdr [wire.HeaderSize]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := binary.LittleEndian.Uint32(hdr[12:])
		if n > 1<<20 {
			return
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(r, p); err != nil {
			return
		}
		c.in <- wire.Msg{
			Type:    wire.Type(binary.LittleEndian.Uint32(hdr[0:])),
			ReqID:   binary.LittleEndian.Uint32(hdr[4:]),
			TxID:    binary.LittleEndian.Uint32(hdr[8:]),
			Payload: p,
		}
	}
}

// send writes raw bytes (a whole message, or a deliberately bad one).
func (c *rawConn) send(b []byte) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.nc.Write(b)
	return err
}

// next returns the next incoming message; ok is false when the connection
// was closed by the daemon, timedOut when nothing came within d.
func (c *rawConn) next(d time.Duration) (m wire.Msg, ok, timedOut bool) {
	if c.gone {
		return wire.Msg{}, false, false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case m, ok = <-c.in:
		if !ok {
			c.gone = true
		}
		return m, ok, false
	case <-t.C:
		return wire.Msg{}, false, true
	}
}

func (c *rawConn) close() {
	_ = c.nc.Close()
	for range c.in {
	}
	c.gone = true
}
