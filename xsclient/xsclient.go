// Package xsclient is a small xenstore client over any byte stream: the
// Unix socket of a xenstored, or a ring adapter. It multiplexes requests by
// req_id, so several goroutines may use one Client, and delivers watch
// events on a channel. Tests, benchmarks and the load generator use it.
package xsclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/xsstub/xenstored/wire"
)

// Event is one WATCH_EVENT.
type Event struct {
	Path, Token string
}

// Client is a connection to a xenstore server.
type Client struct {
	rw      io.ReadWriteCloser
	wmu     sync.Mutex
	w       *bufio.Writer
	mu      sync.Mutex
	nextReq uint32
	pending map[uint32]chan wire.Msg
	err     error
	events  chan Event
	done    chan struct{}
}

// Dial connects to the Unix socket at path.
func Dial(path string) (*Client, error) {
	c, err := net.Dial("unix", path)
	if err != nil {
		return nil, fmt.Errorf("xsclient: %w", err)
	}
	return New(c), nil
}

// New starts a client on rw. Events are buffered up to 65536; a test that
// never reads them eventually stalls the client's reader.
func New(rw io.ReadWriteCloser) *Client {
	c := &Client{
		rw:      rw,
		w:       bufio.NewWriter(rw),
		pending: make(map[uint32]chan wire.Msg),
		events:  make(chan Event, 65536),
		done:    make(chan struct{}),
	}
	go c.readLoop()
	return c
}

// Events delivers watch events in arrival order.
func (c *Client) Events() <-chan Event { return c.events }

// Close closes the connection.
func (c *Client) Close() error {
	err := c.rw.Close()
	<-c.done
	return err
}

func (c *Client) readLoop() {
	defer close(c.done)
	r := bufio.NewReader(c.rw)
	var hdr [wire.HeaderSize]byte
	var err error
	for {
		if _, err = io.ReadFull(r, hdr[:]); err != nil {
			break
		}
		var h wire.Header
		if h, err = wire.ParseHeader(hdr[:]); err != nil {
			break
		}
		p := make([]byte, h.Len)
		if _, err = io.ReadFull(r, p); err != nil {
			break
		}
		m := wire.Msg{Type: h.Type, ReqID: h.ReqID, TxID: h.TxID, Payload: p}
		if m.Type == wire.WatchEvent {
			parts, _ := wire.SplitStrings(p)
			ev := Event{}
			if len(parts) > 0 {
				ev.Path = parts[0]
			}
			if len(parts) > 1 {
				ev.Token = parts[1]
			}
			c.events <- ev
			continue
		}
		c.mu.Lock()
		ch := c.pending[m.ReqID]
		delete(c.pending, m.ReqID)
		c.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
	c.mu.Lock()
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	c.err = err
	for id, ch := range c.pending {
		close(ch)
		delete(c.pending, id)
	}
	c.mu.Unlock()
	close(c.events)
}

// Send writes a request without waiting and returns a channel for its
// reply (closed if the connection dies first). Requests sent with Send are
// buffered until Flush or the next Do.
func (c *Client) Send(m wire.Msg) (<-chan wire.Msg, error) {
	ch := make(chan wire.Msg, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	c.nextReq++
	m.ReqID = c.nextReq
	c.pending[m.ReqID] = ch
	c.mu.Unlock()
	c.wmu.Lock()
	_, err := c.w.Write(m.Encode())
	c.wmu.Unlock()
	if err != nil {
		return nil, err
	}
	return ch, nil
}

// Flush sends buffered requests.
func (c *Client) Flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.w.Flush()
}

// Do sends one request and waits for its reply. An ERROR reply becomes an
// error wrapping the syscall.Errno it names.
func (c *Client) Do(ctx context.Context, m wire.Msg) (wire.Msg, error) {
	ch, err := c.Send(m)
	if err != nil {
		return wire.Msg{}, err
	}
	if err := c.Flush(); err != nil {
		return wire.Msg{}, err
	}
	select {
	case r, ok := <-ch:
		if !ok {
			c.mu.Lock()
			err := c.err
			c.mu.Unlock()
			return wire.Msg{}, fmt.Errorf("xsclient: connection lost: %w", err)
		}
		return r, ReplyError(r)
	case <-ctx.Done():
		return wire.Msg{}, ctx.Err()
	}
}

// ReplyError converts an ERROR reply into an error (nil otherwise).
func ReplyError(r wire.Msg) error {
	if r.Type != wire.Error {
		return nil
	}
	name := strings.TrimRight(string(r.Payload), "\x00")
	if e, ok := wire.ParseErrno(name); ok {
		return e
	}
	return fmt.Errorf("xenstore error %q", name)
}

// Call performs a request with NUL-terminated string arguments.
func (c *Client) Call(typ wire.Type, tx uint32, args ...string) ([]byte, error) {
	r, err := c.Do(context.Background(), wire.Msg{Type: typ, TxID: tx, Payload: wire.JoinStrings(args...)})
	if err != nil {
		return nil, fmt.Errorf("%v %s: %w", typ, strings.Join(args, " "), err)
	}
	return r.Payload, nil
}

// Read returns a node's value.
func (c *Client) Read(tx uint32, path string) ([]byte, error) {
	return c.Call(wire.Read, tx, path)
}

// Write sets a node's value (the value is not NUL-terminated on the wire).
func (c *Client) Write(tx uint32, path string, value []byte) error {
	p := append(append([]byte(path), 0), value...)
	_, err := c.Do(context.Background(), wire.Msg{Type: wire.Write, TxID: tx, Payload: p})
	if err != nil {
		return fmt.Errorf("WRITE %s: %w", path, err)
	}
	return nil
}

// Mkdir creates a node if missing.
func (c *Client) Mkdir(tx uint32, path string) error {
	_, err := c.Call(wire.Mkdir, tx, path)
	return err
}

// Rm removes a subtree.
func (c *Client) Rm(tx uint32, path string) error {
	_, err := c.Call(wire.Rm, tx, path)
	return err
}

// Directory lists a node's children.
func (c *Client) Directory(tx uint32, path string) ([]string, error) {
	p, err := c.Call(wire.Directory, tx, path)
	if err != nil {
		return nil, err
	}
	parts, _ := wire.SplitStrings(p)
	return parts, nil
}

// GetPerms returns a node's permissions as strings ("n0", "r5", ...).
func (c *Client) GetPerms(tx uint32, path string) ([]string, error) {
	p, err := c.Call(wire.GetPerms, tx, path)
	if err != nil {
		return nil, err
	}
	parts, _ := wire.SplitStrings(p)
	return parts, nil
}

// SetPerms replaces a node's permissions.
func (c *Client) SetPerms(tx uint32, path string, perms ...string) error {
	_, err := c.Call(wire.SetPerms, tx, append([]string{path}, perms...)...)
	return err
}

// Watch registers a watch; its initial event arrives on Events.
func (c *Client) Watch(path, token string) error {
	_, err := c.Call(wire.Watch, 0, path, token)
	return err
}

// Unwatch removes a watch.
func (c *Client) Unwatch(path, token string) error {
	_, err := c.Call(wire.Unwatch, 0, path, token)
	return err
}

// TransactionStart opens a transaction.
func (c *Client) TransactionStart() (uint32, error) {
	p, err := c.Call(wire.TransactionStart, 0, "")
	if err != nil {
		return 0, err
	}
	id, err := strconv.ParseUint(strings.TrimRight(string(p), "\x00"), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("bad transaction id %q", p)
	}
	return uint32(id), nil
}

// TransactionEnd commits (true) or aborts a transaction; a conflicting
// commit fails with syscall.EAGAIN.
func (c *Client) TransactionEnd(tx uint32, commit bool) error {
	arg := "F"
	if commit {
		arg = "T"
	}
	_, err := c.Call(wire.TransactionEnd, tx, arg)
	return err
}

// Control sends a CONTROL command and returns its text reply.
func (c *Client) Control(args ...string) (string, error) {
	p, err := c.Call(wire.Control, 0, args...)
	return strings.TrimRight(string(p), "\x00"), err
}

// IsErrno reports whether err carries errno e.
func IsErrno(err error, e syscall.Errno) bool { return errors.Is(err, e) }
