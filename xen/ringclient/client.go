// Package ringclient is a small guest-side xenstore client speaking the
// wire protocol (package wire) over a shared ring page (package
// xen/ring). Tests use it as the guest in front of the daemon's ring
// transport; it depends only on a page and a Port, so it would run on a
// real guest's ring as well as on a fake.Guest.
//
// Behaviour: requests get consecutive req_ids and may be issued from many
// goroutines; one internal goroutine owns the ring, writes queued request
// bytes as space allows (messages longer than the free space are written
// in pieces), reads responses, matches them to callers by req_id and queues
// watch events (XS_WATCH_EVENT), which are delivered in order on Events()
// without ever blocking reply delivery.
//
// Failure: a corrupt ring (bad indices), a response header longer than
// wire.PayloadMax, or a non-zero error word set by the server ends the
// client: every pending and later call fails with an error matching
// ErrBroken. Error replies become *ReplyError values.
package ringclient

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/xsstub/xenstored/wire"
)

// Port is the guest's event channel to the server.
type Port interface {
	Notify() error // signal the server
	Fd() int       // polls readable when the server signalled us
	Ack() error    // consume the server's signals (and unmask, on Xen)
}

// WatchEvent is one XS_WATCH_EVENT.
type WatchEvent struct {
	Path  string
	Token string
}

// ErrBroken is matched by every error caused by the connection being
// unusable (ring corruption, protocol error, server error word, Close).
var ErrBroken = errors.New("xenstore ring connection broken")

// ErrClosed is matched by calls on a closed client (and also by ErrBroken).
var ErrClosed = fmt.Errorf("%w: client closed", ErrBroken)

// ReplyError is an XS_ERROR reply.
type ReplyError struct {
	Op    wire.Type
	Name  string        // as sent, e.g. "ENOENT"
	Errno syscall.Errno // 0 if the name is unknown
}

func (e *ReplyError) Error() string { return fmt.Sprintf("xenstore %v: %s", e.Op, e.Name) }

// Is matches the reply's errno, so errors.Is(err, syscall.ENOENT) works.
func (e *ReplyError) Is(target error) bool {
	t, ok := target.(syscall.Errno)
	return ok && e.Errno != 0 && t == e.Errno
}

// splitMessages cuts complete messages off the front of buf. It returns
// the messages (payloads copied), the unconsumed tail, and an error if a
// header announces more than wire.PayloadMax bytes.
func splitMessages(buf []byte) ([]wire.Msg, []byte, error) {
	var msgs []wire.Msg
	for len(buf) >= wire.HeaderSize {
		h, err := wire.ParseHeader(buf)
		if err != nil {
			return msgs, buf, err
		}
		end := wire.HeaderSize + int(h.Len)
		if len(buf) < end {
			break
		}
		p := make([]byte, h.Len)
		copy(p, buf[wire.HeaderSize:end])
		msgs = append(msgs, wire.Msg{Type: h.Type, ReqID: h.ReqID, TxID: h.TxID, Payload: p})
		buf = buf[end:]
	}
	return msgs, buf, nil
}

// parseWatchEvent decodes "path\0token\0".
func parseWatchEvent(p []byte) (WatchEvent, error) {
	parts, _ := wire.SplitStrings(p)
	if len(parts) < 2 {
		return WatchEvent{}, fmt.Errorf("xenstore watch event: %d fields, want 2", len(parts))
	}
	return WatchEvent{Path: parts[0], Token: parts[1]}, nil
}

// replyError turns an XS_ERROR payload into a *ReplyError.
func replyError(op wire.Type, p []byte) *ReplyError {
	parts, _ := wire.SplitStrings(p)
	name := ""
	if len(parts) > 0 {
		name = parts[0]
	}
	e, _ := wire.ParseErrno(name)
	return &ReplyError{Op: op, Name: name, Errno: e}
}
