package bench

// RingNull is the ring ceiling, as bench/cnull is the socket's: a
// do-nothing ring server on the fake hypervisor that answers every request
// with nullstored's canned reply (same type/req_id/tx_id, "OK\0", "1\0"
// for TRANSACTION_START) and keeps no state. It uses the same fake pieces
// as our transport (the grant-mapped page, the event channel handle, its
// Pending/Unmask/Notify) on one locked thread, so the gap between it and
// our store over the same rings is what our transport and engine cost.

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/fake"
	"github.com/xsstub/xenstored/xen/ring"
)

// RingNull serves fake domains' rings with canned replies.
type RingNull struct {
	ev    *fake.EventChannel
	gm    xen.GrantMapper
	mu    sync.Mutex // guards rings (Add runs beside the loop)
	rings map[uint32]*nullRing
	stopW int
	done  chan error
}

type nullRing struct {
	m   xen.Mapping
	r   *ring.Server
	in  []byte // bytes of a request not yet whole
	out []byte // replies the ring had no room for
}

// NewRingNull starts the loop on h's rings.
func NewRingNull(h *fake.Hypervisor) (*RingNull, error) {
	ev, err := h.OpenEventChannel()
	if err != nil {
		return nil, err
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		ev.Close()
		return nil, fmt.Errorf("ring null: stop pipe: %w", err)
	}
	n := &RingNull{ev: ev, gm: h.GrantMapper(), rings: map[uint32]*nullRing{}, stopW: p[1], done: make(chan error, 1)}
	go func() { n.done <- n.serve(p[0]) }()
	return n, nil
}

// Add maps domain d's ring and binds its event channel, as INTRODUCE does.
func (n *RingNull) Add(d *fake.Domain) error {
	m, err := n.gm.MapForeign(d.ID(), xen.GrantRefXenstore)
	if err != nil {
		return err
	}
	r, err := ring.NewServer(m.Page())
	if err != nil {
		m.Unmap()
		return err
	}
	port, err := n.ev.BindInterdomain(d.ID(), d.GuestPort())
	if err != nil {
		m.Unmap()
		return err
	}
	n.mu.Lock()
	n.rings[port] = &nullRing{m: m, r: r}
	n.mu.Unlock()
	return nil
}

// Close stops the loop and unmaps every ring.
func (n *RingNull) Close() error {
	unix.Write(n.stopW, []byte{1})
	err := <-n.done
	unix.Close(n.stopW)
	n.mu.Lock()
	for p, nr := range n.rings {
		nr.m.Unmap()
		delete(n.rings, p)
	}
	n.mu.Unlock()
	if e := n.ev.Close(); err == nil {
		err = e
	}
	return err
}

func (n *RingNull) serve(stopR int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer unix.Close(stopR)
	fds := []unix.PollFd{{Fd: int32(n.ev.Fd()), Events: unix.POLLIN}, {Fd: int32(stopR), Events: unix.POLLIN}}
	buf := make([]byte, 4096)
	for {
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds, -1); err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("ring null: poll: %w", err)
		}
		if fds[1].Revents != 0 {
			return nil
		}
		if fds[0].Revents == 0 {
			continue
		}
		ports, err := n.ev.Pending()
		if err != nil {
			return fmt.Errorf("ring null: pending: %w", err)
		}
		for _, p := range ports {
			n.mu.Lock()
			nr := n.rings[p]
			n.mu.Unlock()
			if nr != nil {
				if err := nr.service(buf); err != nil {
					return err
				}
				if err := n.ev.Notify(p); err != nil {
					return err
				}
			}
			if err := n.ev.Unmask(p); err != nil {
				return err
			}
		}
	}
}

// service reads what the ring holds and answers every whole request; a
// guest notifies again when it frees room for replies still queued.
func (nr *nullRing) service(buf []byte) error {
	for {
		k, err := nr.r.Read(buf)
		if err != nil {
			return err
		}
		if k == 0 {
			break
		}
		nr.in = append(nr.in, buf[:k]...)
	}
	for len(nr.in) >= wire.HeaderSize {
		h, err := wire.ParseHeader(nr.in)
		if err != nil {
			return err
		}
		end := wire.HeaderSize + int(h.Len)
		if len(nr.in) < end {
			break
		}
		p := okPayload
		if h.Type == wire.TransactionStart {
			p = txPayload
		}
		var rh [wire.HeaderSize]byte
		wire.Header{Type: h.Type, ReqID: h.ReqID, TxID: h.TxID, Len: uint32(len(p))}.Put(rh[:])
		nr.out = append(append(nr.out, rh[:]...), p...)
		nr.in = nr.in[:copy(nr.in, nr.in[end:])]
	}
	if len(nr.out) > 0 {
		k, err := nr.r.Write(nr.out)
		if err != nil {
			return err
		}
		nr.out = nr.out[:copy(nr.out, nr.out[k:])]
	}
	return nil
}
