package ringclient

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xen/ring"
)

// Client is a xenstore client on one ring. Its methods are safe for
// concurrent use.
type Client struct {
	g    *ring.Guest
	port Port
	wake int // eventfd: new requests queued, or closing

	mu      sync.Mutex
	sendq   []byte
	waiters map[uint32]chan wire.Msg
	nextReq uint32
	err     error // terminal error, set once
	closing bool

	evMu     sync.Mutex
	evCond   *sync.Cond
	evq      []WatchEvent
	evClosed bool
	events   chan WatchEvent

	loopDone chan struct{}
	evDone   chan struct{}
	quit     chan struct{} // closed by Close
}

// New starts a client on page (the guest's view of the ring) and port. The
// client does not own either; Close leaves them open.
func New(page []byte, port Port) (*Client, error) {
	g, err := ring.NewGuest(page)
	if err != nil {
		return nil, fmt.Errorf("ringclient: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("ringclient: eventfd: %w", err)
	}
	c := &Client{
		g: g, port: port, wake: wake,
		waiters:  make(map[uint32]chan wire.Msg),
		nextReq:  1,
		events:   make(chan WatchEvent),
		loopDone: make(chan struct{}),
		evDone:   make(chan struct{}),
		quit:     make(chan struct{}),
	}
	c.evCond = sync.NewCond(&c.evMu)
	go c.loop()
	go c.deliverEvents()
	return c, nil
}

// Events delivers watch events in arrival order. It is closed after Close
// or when the connection breaks.
func (c *Client) Events() <-chan WatchEvent { return c.events }

// Call sends one request and waits for its reply. An XS_ERROR reply is
// returned as a *ReplyError.
func (c *Client) Call(ctx context.Context, typ wire.Type, txID uint32, payload []byte) (wire.Msg, error) {
	if len(payload) > wire.PayloadMax {
		return wire.Msg{}, fmt.Errorf("ringclient: %v: payload of %d bytes exceeds %d", typ, len(payload), wire.PayloadMax)
	}
	if err := ctx.Err(); err != nil {
		return wire.Msg{}, fmt.Errorf("ringclient: %v: %w", typ, err)
	}
	ch := make(chan wire.Msg, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return wire.Msg{}, err
	}
	id := c.nextReq
	c.nextReq++
	if c.nextReq == 0 {
		c.nextReq = 1
	}
	c.waiters[id] = ch
	m := wire.Msg{Type: typ, ReqID: id, TxID: txID, Payload: payload}
	c.sendq = append(c.sendq, m.Encode()...)
	c.mu.Unlock()
	signal(c.wake)

	select {
	case r, ok := <-ch:
		if !ok {
			c.mu.Lock()
			err := c.err
			c.mu.Unlock()
			return wire.Msg{}, fmt.Errorf("ringclient: %v: %w", typ, err)
		}
		if r.Type == wire.Error {
			return r, replyError(typ, r.Payload)
		}
		if r.Type != typ {
			return r, fmt.Errorf("ringclient: %v: reply has type %v", typ, r.Type)
		}
		return r, nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.waiters, id)
		c.mu.Unlock()
		return wire.Msg{}, fmt.Errorf("ringclient: %v: %w", typ, ctx.Err())
	}
}

// Read returns the value at path.
func (c *Client) Read(ctx context.Context, path string) ([]byte, error) {
	r, err := c.Call(ctx, wire.Read, 0, wire.JoinStrings(path))
	if err != nil {
		return nil, err
	}
	return r.Payload, nil
}

// Write sets path to value.
func (c *Client) Write(ctx context.Context, path string, value []byte) error {
	p := append(wire.JoinStrings(path), value...)
	_, err := c.Call(ctx, wire.Write, 0, p)
	return err
}

// Mkdir creates path.
func (c *Client) Mkdir(ctx context.Context, path string) error {
	_, err := c.Call(ctx, wire.Mkdir, 0, wire.JoinStrings(path))
	return err
}

// Rm removes path and its children.
func (c *Client) Rm(ctx context.Context, path string) error {
	_, err := c.Call(ctx, wire.Rm, 0, wire.JoinStrings(path))
	return err
}

// Directory lists the children of path.
func (c *Client) Directory(ctx context.Context, path string) ([]string, error) {
	r, err := c.Call(ctx, wire.Directory, 0, wire.JoinStrings(path))
	if err != nil {
		return nil, err
	}
	parts, _ := wire.SplitStrings(r.Payload)
	return parts, nil
}

// Watch registers a watch on path with token; events arrive on Events().
func (c *Client) Watch(ctx context.Context, path, token string) error {
	_, err := c.Call(ctx, wire.Watch, 0, wire.JoinStrings(path, token))
	return err
}

// Unwatch removes a watch.
func (c *Client) Unwatch(ctx context.Context, path, token string) error {
	_, err := c.Call(ctx, wire.Unwatch, 0, wire.JoinStrings(path, token))
	return err
}

// Close stops the client; pending calls fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		<-c.loopDone
		return nil
	}
	c.closing = true
	c.mu.Unlock()
	signal(c.wake)
	<-c.loopDone
	close(c.quit)
	<-c.evDone
	return unix.Close(c.wake)
}

// fail records the terminal error and releases everyone. Caller holds c.mu.
func (c *Client) failLocked(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	for id, ch := range c.waiters {
		close(ch)
		delete(c.waiters, id)
	}
	c.sendq = nil
}

// loop owns the ring: it is the only reader and writer of the page.
func (c *Client) loop() {
	defer close(c.loopDone)
	defer func() {
		c.evMu.Lock()
		c.evClosed = true
		c.evCond.Broadcast()
		c.evMu.Unlock()
	}()
	var rx []byte
	buf := make([]byte, 4096)
	fds := []unix.PollFd{{Fd: int32(c.port.Fd()), Events: unix.POLLIN}, {Fd: int32(c.wake), Events: unix.POLLIN}}
	for {
		c.mu.Lock()
		if c.closing {
			c.failLocked(ErrClosed)
			c.mu.Unlock()
			return
		}
		progress := false
		var err error
		if len(c.sendq) > 0 {
			var n int
			n, err = c.g.Write(c.sendq)
			c.sendq = c.sendq[n:]
			if n > 0 {
				progress = true
			}
		}
		c.mu.Unlock()
		if err == nil && progress {
			err = c.port.Notify()
		}
		var n int
		if err == nil {
			n, err = c.g.Read(buf)
		}
		if err == nil && n > 0 {
			progress = true
			rx = append(rx, buf[:n]...)
			err = c.port.Notify() // space freed for the server
		}
		var msgs []wire.Msg
		if err == nil {
			msgs, rx, err = splitMessages(rx)
		}
		if err == nil {
			if code := c.g.Error(); code != ring.ErrorNone {
				err = fmt.Errorf("server set ring error %d", code)
			}
		}
		c.dispatch(msgs)
		if err != nil {
			c.mu.Lock()
			c.failLocked(fmt.Errorf("%w: %w", ErrBroken, err))
			c.mu.Unlock()
			return
		}
		if progress {
			continue
		}
		if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
			c.mu.Lock()
			c.failLocked(fmt.Errorf("%w: poll: %w", ErrBroken, err))
			c.mu.Unlock()
			return
		}
		if fds[0].Revents != 0 {
			if err := c.port.Ack(); err != nil {
				c.mu.Lock()
				c.failLocked(fmt.Errorf("%w: %w", ErrBroken, err))
				c.mu.Unlock()
				return
			}
		}
		if fds[1].Revents != 0 {
			drain(c.wake)
		}
	}
}

func (c *Client) dispatch(msgs []wire.Msg) {
	for _, m := range msgs {
		if m.Type == wire.WatchEvent {
			ev, err := parseWatchEvent(m.Payload)
			if err != nil {
				continue // malformed event: nothing to deliver
			}
			c.evMu.Lock()
			c.evq = append(c.evq, ev)
			c.evCond.Signal()
			c.evMu.Unlock()
			continue
		}
		c.mu.Lock()
		ch, ok := c.waiters[m.ReqID]
		if ok {
			delete(c.waiters, m.ReqID)
		}
		c.mu.Unlock()
		if ok {
			ch <- m // buffered, never blocks
		}
	}
}

// deliverEvents moves queued events to the Events channel so the ring loop
// never blocks on a slow reader. After the connection breaks it still
// delivers what was queued, then closes the channel; Close stops it at once.
func (c *Client) deliverEvents() {
	defer close(c.evDone)
	defer close(c.events)
	for {
		c.evMu.Lock()
		for len(c.evq) == 0 && !c.evClosed {
			c.evCond.Wait()
		}
		if len(c.evq) == 0 {
			c.evMu.Unlock()
			return
		}
		ev := c.evq[0]
		c.evq = c.evq[1:]
		c.evMu.Unlock()
		select {
		case c.events <- ev:
		case <-c.quit:
			return
		}
	}
}

func signal(fd int) {
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], 1)
	unix.Write(fd, b[:])
}

func drain(fd int) {
	var b [8]byte
	unix.Read(fd, b[:])
}
