package store

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xsstub/xenstored/wire"
)

// LiveUpdater is what live update needs from the program around the
// engine (Config.LiveUpdate; nil: the store cannot be updated and
// "live-update" answers so). Both run with the engine locked: nothing else
// is served meanwhile.
type LiveUpdater interface {
	// CheckBinary validates the new daemon given with -f (daemon mode).
	CheckBinary(path string) error
	// NewImage holds a new daemon of size bytes sent with -b/-d (a stub's
	// payload), outside the engine's memory where it can: a stub has
	// little. Closing it drops it (the update did not happen).
	NewImage(size int) (io.WriteCloser, error)
	// Exec replaces the running daemon: binary (-f), or "" for the last
	// NewImage's; cmdline (-c, may be empty: the current arguments); st
	// the state to carry, whose Reply names the request to answer "OK"
	// once the new daemon runs. It returns only on failure, and then the
	// old daemon goes on serving.
	Exec(st *State, binary string, cmdline string) error
}

// maxImage bounds a stub image sent with -b (the stub holds it in memory).
const maxImage = 64 << 20

// DefaultLiveUpdateTimeout is how long a live-update start waits for open
// transactions to end, unless -t says otherwise (as xenstore-control).
const DefaultLiveUpdateTimeout = 60 * time.Second

// luSession is a live update in progress (C xenstored's lu_status): begun
// by -f or -b on one connection, which alone may continue it.
type luSession struct {
	conn    *Conn
	binary  string
	image   io.WriteCloser // -b SIZE: where -d's bytes go
	imgSize int
	imgGot  int
	cmdline string

	// Set by -s: the request waiting for its answer, and its terms.
	start   *wire.Msg
	started time.Time
	timeout time.Duration
	force   bool
	retry   *time.Timer
}

// ctlLiveUpdate is CONTROL live-update, with xenstore-control's
// sub-operations: -f FILE (daemon) or -b SIZE then -d SIZE DATA... (stub),
// optionally -c CMDLINE, then -s [-t SECONDS] [-F]; -a aborts. Each answers
// "OK" or a reason in text, as C xenstored does; -s answers only when the
// update fails (the new daemon answers "OK").
func ctlLiveUpdate(e *Engine, c *Conn, m *wire.Msg, args []string, raw []byte) ([]byte, error) {
	if len(args) == 0 {
		return nil, syscall.EINVAL
	}
	if e.cfg.LiveUpdate == nil {
		return text("Live update is not possible here.")
	}
	e.commitPoint("live update")
	var reason string
	switch args[0] {
	case "-a":
		if len(args) != 1 {
			return nil, syscall.EINVAL
		}
		reason = e.luAbort(c)
	case "-c":
		if len(args) != 2 {
			return nil, syscall.EINVAL
		}
		reason = e.luCmdline(c, args[1])
	case "-f":
		if len(args) != 2 {
			return nil, syscall.EINVAL
		}
		reason = e.luBinary(c, args[1])
	case "-b":
		if len(args) != 2 {
			return nil, syscall.EINVAL
		}
		reason = e.luImageBegin(c, args[1])
	case "-d":
		reason = e.luImageData(c, raw)
	case "-s":
		return e.luStart(c, m, args[1:])
	default:
		return nil, syscall.EINVAL
	}
	if reason == "" {
		return ok()
	}
	return text(reason)
}

func (e *Engine) luBegin(c *Conn) string {
	if e.lu != nil {
		return "live-update session already active."
	}
	e.lu = &luSession{conn: c}
	return ""
}

// luOwned is the session if c holds it.
func (e *Engine) luOwned(c *Conn) *luSession {
	if e.lu == nil || e.lu.conn != c {
		return nil
	}
	return e.lu
}

func (e *Engine) luAbort(c *Conn) string {
	if e.lu == nil {
		return "No live-update session active."
	}
	e.log.Info("live-update: abort")
	e.luEnd()
	return ""
}

func (e *Engine) luEnd() {
	if s := e.lu; s != nil {
		if s.retry != nil {
			s.retry.Stop()
		}
		if s.image != nil {
			s.image.Close()
		}
	}
	e.lu = nil
}

func (e *Engine) luCmdline(c *Conn, cmdline string) string {
	s := e.luOwned(c)
	if s == nil {
		return "Not in live-update session."
	}
	s.cmdline = cmdline
	return ""
}

func (e *Engine) luBinary(c *Conn, path string) string {
	e.log.Info("live-update: binary", "file", path)
	if err := e.cfg.LiveUpdate.CheckBinary(path); err != nil {
		return err.Error()
	}
	if r := e.luBegin(c); r != "" {
		return r
	}
	e.lu.binary = path
	return ""
}

func (e *Engine) luImageBegin(c *Conn, size string) string {
	n, err := strconv.Atoi(size)
	if err != nil || n <= 0 || n > maxImage {
		return fmt.Sprintf("Image size %q not between 1 and %d.", size, maxImage)
	}
	if r := e.luBegin(c); r != "" {
		return r
	}
	w, err := e.cfg.LiveUpdate.NewImage(n)
	if err != nil {
		e.luEnd()
		return fmt.Sprintf("Allocation failure: %v", err)
	}
	e.lu.image, e.lu.imgSize = w, n
	return ""
}

// luImageData takes "-d\0SIZE\0<SIZE bytes>": the bytes may hold NULs.
func (e *Engine) luImageData(c *Conn, raw []byte) string {
	s := e.luOwned(c)
	if s == nil || s.imgSize == 0 {
		return "Not in live-update session."
	}
	_, rest, _ := bytes.Cut(raw, []byte{0}) // "-d"
	sz, data, found := bytes.Cut(rest, []byte{0})
	n, err := strconv.Atoi(string(sz))
	if !found || err != nil || n < 0 || n > len(data) {
		return "Bad image data."
	}
	if s.imgGot+n > s.imgSize {
		return "Too much kernel data."
	}
	if _, err := s.image.Write(data[:n]); err != nil {
		return fmt.Sprintf("Image write failure: %v", err)
	}
	s.imgGot += n
	return ""
}

// luStart is -s: the update goes ahead once no transaction is open, or,
// with -F, once every open one is older than the timeout (they are then
// aborted). Until then the request waits, and its connection with it.
func (e *Engine) luStart(c *Conn, m *wire.Msg, args []string) ([]byte, error) {
	s := e.luOwned(c)
	if s == nil {
		return text("Not in live-update session.")
	}
	if s.imgSize != 0 && s.imgGot != s.imgSize {
		return text("Kernel not complete.")
	}
	s.timeout, s.force = DefaultLiveUpdateTimeout, false
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "-F":
			s.force = true
		case args[i] == "-t" && i+1 < len(args):
			i++
			s.timeout = time.Duration(atoi(args[i])) * time.Second
		default:
			return nil, syscall.EINVAL
		}
	}
	e.log.Info("live-update: start", "force", s.force, "timeout", s.timeout)
	req := *m
	req.Payload = nil
	s.start, s.started = &req, e.now()
	e.luTry()
	return nil, errReplied
}

// luTry runs or answers a waiting start. Called with the engine locked.
func (e *Engine) luTry() {
	s := e.lu
	if s == nil || s.start == nil {
		return
	}
	busy, old := e.openTransactions(s.timeout)
	if busy > 0 && !(s.force && old == busy) {
		if e.now().Sub(s.started) < s.timeout {
			s.retry = time.AfterFunc(time.Second, func() {
				e.mu.Lock()
				defer e.mu.Unlock()
				e.luTry()
			})
			return
		}
		if !s.force {
			e.luAnswer(e.luRejectReason(s.timeout))
			return
		}
	}
	st := e.exportLocked() // open transactions go as aborted ones
	st.Reply = &PendingReply{Conn: s.conn.id, ReqID: s.start.ReqID, TxID: s.start.TxID}
	err := e.cfg.LiveUpdate.Exec(st, s.binary, s.cmdline)
	e.log.Error("live-update: new daemon not started; this one goes on", "err", err)
	e.luAnswer(fmt.Sprintf("Error activating new binary: %v", err))
}

// luAnswer replies to the waiting start and ends the session.
func (e *Engine) luAnswer(reason string) {
	s := e.lu
	e.luEnd()
	if s.conn.closed {
		return
	}
	s.conn.queueReply(wire.Msg{Type: wire.Control, ReqID: s.start.ReqID, TxID: s.start.TxID, Payload: append([]byte(reason), 0)})
}

// luWaiting reports whether c waits for its live-update start: it sends
// nothing more until then.
func (e *Engine) luWaiting(c *Conn) bool {
	return e.lu != nil && e.lu.conn == c && e.lu.start != nil
}

// openTransactions counts open transactions and those older than age.
func (e *Engine) openTransactions(age time.Duration) (open, old int) {
	now := e.now()
	for c := range e.conns {
		for _, tx := range c.txns {
			open++
			if now.Sub(tx.started) >= age {
				old++
			}
		}
	}
	return open, old
}

func (e *Engine) luRejectReason(age time.Duration) string {
	now := e.now()
	var lines []string
	for _, c := range e.sortedConns() {
		for _, tx := range c.txns {
			if d := now.Sub(tx.started); d >= age {
				lines = append(lines, fmt.Sprintf("Domain %d: %d s", c.domid, int(d.Seconds())))
			}
		}
	}
	if len(lines) == 0 {
		return "Overlapping transactions"
	}
	sort.Strings(lines)
	return "Domains with long running transactions:\n" + strings.Join(lines, "\n")
}
