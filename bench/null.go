package bench

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"

	"github.com/xsstub/xenstored/wire"
)

// NullServer answers every request with a canned reply and keeps no
// state: the reply has the request's type, req_id and tx_id and the
// payload "OK\0" ("1\0" for TRANSACTION_START, so that clients get a
// transaction id). It fires no watch events. Its throughput is the
// ceiling that the socket, the scheduler and the client impose on any
// server.
type NullServer struct {
	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// Serve accepts clients on ln until Close (or ln fails).
func (s *NullServer) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.mu.Unlock()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		s.mu.Lock()
		s.conns[nc] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			serveNull(nc)
			s.mu.Lock()
			delete(s.conns, nc)
			s.mu.Unlock()
		}()
	}
}

// Close stops accepting, closes every client and waits for them.
func (s *NullServer) Close() error {
	s.mu.Lock()
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	for nc := range s.conns {
		nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

var (
	okPayload = []byte("OK\x00")
	txPayload = []byte("1\x00")
)

// serveNull answers one client: it reads every request already buffered,
// then writes all their replies with one write.
func serveNull(nc net.Conn) {
	defer nc.Close()
	r := bufio.NewReaderSize(nc, 65536)
	var hdr [wire.HeaderSize]byte
	out := make([]byte, 0, 65536)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		h, err := wire.ParseHeader(hdr[:])
		if err != nil {
			return
		}
		if _, err := r.Discard(int(h.Len)); err != nil {
			return
		}
		p := okPayload
		if h.Type == wire.TransactionStart {
			p = txPayload
		}
		var rh [wire.HeaderSize]byte
		wire.Header{Type: h.Type, ReqID: h.ReqID, TxID: h.TxID, Len: uint32(len(p))}.Put(rh[:])
		out = append(append(out, rh[:]...), p...)
		if r.Buffered() < wire.HeaderSize || len(out) > 60000 {
			if _, err := nc.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
	}
}
