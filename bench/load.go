// Package bench is a load generator for xenstore servers. It speaks the
// xs_wire.h protocol over a local Unix socket with its own small pipelined
// client (one goroutine per connection, no per-request allocation of
// channels or maps), so that on a small machine the client costs as
// little CPU as possible next to the server it measures.
//
// A run opens Conns connections with Depth requests in flight on each
// ("lanes": every lane has at most one outstanding request, and its
// request id is its lane number) and issues operations drawn from a
// weighted Mix until Duration has passed or Ops operations have started.
// Latency is measured per operation, from sending its first request to
// receiving its last reply (for the watch operation: to the last watcher's
// event), into an HDR-style Histogram.
//
// The package also holds NullServer, a server that answers every request
// with a canned reply (the ceiling of the socket and the client), and the
// suite that `make bench` runs (suite.go).
package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/xsstub/xenstored/wire"
)

// Op is one kind of operation.
type Op int

// Operations. A transaction is TRANSACTION_START, READ, WRITE and
// TRANSACTION_END commit, retried from the start when the commit
// conflicts (EAGAIN). A watch operation is one WRITE on a writer
// connection, complete when the write is acknowledged and every watcher
// connection has received its event.
const (
	OpRead Op = iota
	OpWrite
	OpDirectory
	OpTxn
	OpWatch
	opCount
)

var opNames = [...]string{"read", "write", "dir", "txn", "watch"}

func (o Op) String() string {
	if o >= 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return "op" + strconv.Itoa(int(o))
}

// Mix holds a weight per operation.
type Mix [opCount]int

// ParseMix parses "read=1,write=1" (a bare name means weight 1).
func ParseMix(s string) (Mix, error) {
	var m Mix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		name, w, found := strings.Cut(f, "=")
		weight := 1
		if found {
			n, err := strconv.Atoi(w)
			if err != nil || n < 0 {
				return m, fmt.Errorf("bad weight in %q", f)
			}
			weight = n
		}
		ok := false
		for i, n := range opNames {
			if n == name || (name == "directory" && i == int(OpDirectory)) || (name == "transaction" && i == int(OpTxn)) {
				m[i] += weight
				ok = true
			}
		}
		if !ok {
			return m, fmt.Errorf("unknown operation %q (have %s)", name, strings.Join(opNames[:], ", "))
		}
	}
	return m, nil
}

func (m Mix) String() string {
	var parts []string
	for i, w := range m {
		if w > 0 {
			parts = append(parts, opNames[i]+"="+strconv.Itoa(w))
		}
	}
	return strings.Join(parts, ",")
}

func (m Mix) total() int {
	t := 0
	for _, w := range m {
		t += w
	}
	return t
}

// Limits that keep a run bounded.
const (
	MaxConns       = 1000
	MaxDepth       = 256
	MaxWatchers    = 1000
	MaxDuration    = 10 * time.Minute
	MaxValueSize   = 4000
	MaxKeys        = 100000
	MaxDirEntries  = 1000
	defaultTimeout = 10 * time.Second
	setupBatchSize = 64
)

// Config describes one run.
type Config struct {
	Socket     string        // Unix socket of the server
	Conns      int           // connections issuing operations (1..1000)
	Depth      int           // requests in flight per connection (1..256); 1 for watch
	Mix        Mix           // operation weights
	ValueSize  int           // bytes per written value
	Keys       int           // distinct keys read and written (default 128)
	DirEntries int           // children of the directory listed (default 16)
	Watchers   int           // watcher connections for OpWatch (default 10)
	Duration   time.Duration // measured time (after Warmup)
	Warmup     time.Duration // time before measuring starts
	Ops        int64         // stop after this many operations have started (0: no limit)
	Prefix     string        // base path of the nodes used (default /bench)
	Seed       uint64        // of the operation choice
	Timeout    time.Duration // for any one reply or watch event (default 10s)
	Progress   io.Writer     // a line per second, if set
}

// Result is what a run measured.
type Result struct {
	Config    Config
	Ops       int64         // operations completed in the measured window
	Elapsed   time.Duration // length of the measured window
	Errors    int64         // unexpected ERROR replies
	FirstErr  string        // the first of them
	Conflicts int64         // transaction commits that got EAGAIN (retried)
	Events    int64         // watch events received in the window
	Hist      Histogram     // latency of the operations in the window
}

// Rate is operations per second.
func (r *Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

func (r *Result) String() string {
	return fmt.Sprintf("%d ops in %.2fs: %.0f ops/s, p50 %s p99 %s p99.9 %s max %s, errors %d, conflicts %d",
		r.Ops, r.Elapsed.Seconds(), r.Rate(), fmtDur(r.Hist.Quantile(0.5)), fmtDur(r.Hist.Quantile(0.99)),
		fmtDur(r.Hist.Quantile(0.999)), fmtDur(r.Hist.Max()), r.Errors, r.Conflicts)
}

func fmtDur(d time.Duration) string {
	switch {
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.1fµs", float64(d)/1e3)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	default:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	}
}

func (c *Config) normalize() error {
	if c.Socket == "" {
		return errors.New("no socket")
	}
	if c.Conns == 0 {
		c.Conns = 1
	}
	if c.Depth == 0 {
		c.Depth = 1
	}
	if c.Keys == 0 {
		c.Keys = 128
	}
	if c.DirEntries == 0 {
		c.DirEntries = 16
	}
	if c.Watchers == 0 {
		c.Watchers = 10
	}
	if c.Prefix == "" {
		c.Prefix = "/bench"
	}
	if c.Timeout <= 0 {
		c.Timeout = defaultTimeout
	}
	if c.Mix.total() == 0 {
		c.Mix[OpRead], c.Mix[OpWrite] = 1, 1
	}
	switch {
	case c.Conns < 1 || c.Conns > MaxConns:
		return fmt.Errorf("connections %d not in 1..%d", c.Conns, MaxConns)
	case c.Depth < 1 || c.Depth > MaxDepth:
		return fmt.Errorf("depth %d not in 1..%d", c.Depth, MaxDepth)
	case c.ValueSize < 0 || c.ValueSize > MaxValueSize:
		return fmt.Errorf("value size %d not in 0..%d", c.ValueSize, MaxValueSize)
	case c.Keys < 1 || c.Keys > MaxKeys:
		return fmt.Errorf("keys %d not in 1..%d", c.Keys, MaxKeys)
	case c.DirEntries < 0 || c.DirEntries > MaxDirEntries:
		return fmt.Errorf("directory entries %d not in 0..%d", c.DirEntries, MaxDirEntries)
	case c.Watchers < 1 || c.Watchers > MaxWatchers:
		return fmt.Errorf("watchers %d not in 1..%d", c.Watchers, MaxWatchers)
	case c.Duration < 0 || c.Duration+c.Warmup > MaxDuration || c.Warmup < 0:
		return fmt.Errorf("duration+warmup must be within %v", MaxDuration)
	case c.Duration == 0 && c.Ops <= 0:
		return errors.New("need a duration or an op count")
	case !strings.HasPrefix(c.Prefix, "/"):
		return fmt.Errorf("prefix %q is not absolute", c.Prefix)
	}
	if c.Duration == 0 || c.Duration > MaxDuration-c.Warmup {
		// An op count alone is still bounded in time.
		c.Duration = MaxDuration - c.Warmup
	}
	if c.Mix[OpWatch] > 0 {
		if c.Mix[OpWatch] != c.Mix.total() {
			return errors.New("watch cannot be mixed with other operations")
		}
		c.Depth = 1
	}
	return nil
}

// run state shared by all connections of one run.
type runState struct {
	cfg       *Config
	value     []byte
	started   atomic.Int64 // operations started (for the Ops limit)
	completed atomic.Int64 // operations completed (for progress lines)
	stop      atomic.Bool
	measureAt time.Time
	stopAt    atomic.Int64 // UnixNano when stop was decided; 0 = not yet
}

func (s *runState) stopNow(t time.Time) {
	if s.stop.CompareAndSwap(false, true) {
		s.stopAt.Store(t.UnixNano())
	}
}

// mayStart reports whether another operation may start.
func (s *runState) mayStart() bool {
	if s.stop.Load() {
		return false
	}
	if s.cfg.Ops > 0 && s.started.Add(1) > s.cfg.Ops {
		return false
	}
	return true
}

// connStats is what one connection measured.
type connStats struct {
	hist      Histogram
	ops       int64
	errors    int64
	firstErr  string
	conflicts int64
	events    int64
	last      time.Time
}

func (st *connStats) fail(format string, args ...any) {
	st.errors++
	if st.firstErr == "" {
		st.firstErr = fmt.Sprintf(format, args...)
	}
}

func (st *connStats) done(s *runState, start, now time.Time) {
	s.completed.Add(1)
	if now.Before(s.measureAt) {
		return
	}
	if at := s.stopAt.Load(); at != 0 && now.UnixNano() > at {
		return
	}
	st.hist.Record(now.Sub(start))
	st.ops++
	st.last = now
}

// Run performs one run. The nodes it uses live under cfg.Prefix and are
// left in place.
func Run(cfg Config) (*Result, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	s := &runState{cfg: &cfg, value: make([]byte, cfg.ValueSize)}
	for i := range s.value {
		s.value[i] = 'a' + byte(i%26)
	}
	if err := setup(s); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	var conns []*conn
	closeAll := func() {
		for _, c := range conns {
			c.nc.Close()
		}
	}
	for i := 0; i < cfg.Conns; i++ {
		c, err := dial(cfg.Socket)
		if err != nil {
			closeAll()
			return nil, err
		}
		conns = append(conns, c)
	}
	var fan *fanout
	if cfg.Mix[OpWatch] > 0 {
		var err error
		if fan, err = newFanout(s, cfg.Conns); err != nil {
			closeAll()
			return nil, err
		}
		defer fan.close()
	}

	begin := time.Now()
	s.measureAt = begin.Add(cfg.Warmup)
	end := s.measureAt.Add(cfg.Duration)
	timer := time.AfterFunc(end.Sub(begin), func() { s.stopNow(end) })
	defer timer.Stop()
	progressDone := make(chan struct{})
	progressExited := make(chan struct{})
	if cfg.Progress != nil {
		go func() {
			defer close(progressExited)
			progress(s.cfg.Progress, &s.completed, begin, progressDone)
		}()
	} else {
		close(progressExited)
	}

	stats := make([]connStats, cfg.Conns)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.nc.Close()
			if fan != nil {
				fan.writer(s, c, i, &stats[i])
			} else {
				c.lanes(s, i, &stats[i])
			}
		}()
	}
	wg.Wait()
	close(progressDone)
	<-progressExited // the caller may read what it wrote
	s.stopNow(time.Now())

	r := &Result{Config: cfg}
	var last time.Time
	for i := range stats {
		st := &stats[i]
		r.Hist.Merge(&st.hist)
		r.Ops += st.ops
		r.Errors += st.errors
		r.Conflicts += st.conflicts
		if r.FirstErr == "" {
			r.FirstErr = st.firstErr
		}
		if st.last.After(last) {
			last = st.last
		}
	}
	if fan != nil {
		r.Events = fan.events.Load()
		r.Errors += fan.errors.Load()
		if r.FirstErr == "" {
			if e := fan.firstErr.Load(); e != nil {
				r.FirstErr = *e
			}
		}
	}
	stop := time.Unix(0, s.stopAt.Load())
	if last.Before(stop) && cfg.Ops > 0 && s.started.Load() >= cfg.Ops {
		stop = last // ran out of operations before the deadline
	}
	r.Elapsed = stop.Sub(s.measureAt)
	if r.Elapsed < 0 {
		r.Elapsed = 0
	}
	return r, nil
}

// progress writes a line per second to w with the rate and total of
// completed, until done is closed.
func progress(w io.Writer, completed *atomic.Int64, begin time.Time, done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	prev := int64(0)
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			n := completed.Load()
			fmt.Fprintf(w, "xsload: %4.0fs %9d ops/s %11d ops\n", now.Sub(begin).Seconds(), n-prev, n)
			prev = n
		}
	}
}

// Paths.
func keyPath(s *runState, k int) string { return s.cfg.Prefix + "/k/" + strconv.Itoa(k) }
func dirPath(s *runState) string        { return s.cfg.Prefix + "/dir" }
func watchRoot(s *runState) string      { return s.cfg.Prefix + "/watch" }
func watchPath(s *runState, writer int) string {
	return watchRoot(s) + "/w" + strconv.Itoa(writer)
}

// setup creates the keys and the directory's children, pipelined on one
// connection.
func setup(s *runState) error {
	c, err := dial(s.cfg.Socket)
	if err != nil {
		return err
	}
	defer c.nc.Close()
	var reqs []wire.Msg
	if s.cfg.Mix[OpRead]+s.cfg.Mix[OpWrite]+s.cfg.Mix[OpTxn] > 0 {
		for k := 0; k < s.cfg.Keys; k++ {
			reqs = append(reqs, writeMsg(keyPath(s, k), s.value))
		}
	}
	if s.cfg.Mix[OpDirectory] > 0 {
		for k := 0; k < s.cfg.DirEntries; k++ {
			reqs = append(reqs, writeMsg(dirPath(s)+"/e"+strconv.Itoa(k), s.value))
		}
		if s.cfg.DirEntries == 0 {
			reqs = append(reqs, wire.Msg{Type: wire.Mkdir, Payload: wire.JoinStrings(dirPath(s))})
		}
	}
	return c.batch(reqs)
}

func writeMsg(path string, value []byte) wire.Msg {
	p := make([]byte, 0, len(path)+1+len(value))
	p = append(append(append(p, path...), 0), value...)
	return wire.Msg{Type: wire.Write, Payload: p}
}

// conn is one client connection.
type conn struct {
	nc   net.Conn
	r    *bufio.Reader
	wbuf []byte
	hdr  [wire.HeaderSize]byte
	pay  []byte
}

// dial connects to path. Servers with a short listen backlog (C
// xenstored listens with a backlog of 1) refuse connections with EAGAIN
// while their backlog is full; dial retries those for up to 5 s.
func dial(path string) (*conn, error) {
	deadline := time.Now().Add(5 * time.Second)
	wait := 50 * time.Microsecond
	var nc net.Conn
	var err error
	for {
		nc, err = net.DialTimeout("unix", path, 5*time.Second)
		if err == nil || !errors.Is(err, syscall.EAGAIN) || time.Now().After(deadline) {
			break
		}
		time.Sleep(wait)
		wait = min(2*wait, 10*time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	return &conn{nc: nc, r: bufio.NewReaderSize(nc, 65536), pay: make([]byte, wire.PayloadMax)}, nil
}

// queue appends a request to the write buffer.
func (c *conn) queue(typ wire.Type, reqID, tx uint32, parts ...[]byte) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	var h [wire.HeaderSize]byte
	wire.Header{Type: typ, ReqID: reqID, TxID: tx, Len: uint32(n)}.Put(h[:])
	c.wbuf = append(c.wbuf, h[:]...)
	for _, p := range parts {
		c.wbuf = append(c.wbuf, p...)
	}
}

func (c *conn) flush() error {
	if len(c.wbuf) == 0 {
		return nil
	}
	_, err := c.nc.Write(c.wbuf)
	c.wbuf = c.wbuf[:0]
	return err
}

// next reads one message; its payload is valid until the next call.
func (c *conn) next() (wire.Header, []byte, error) {
	if _, err := io.ReadFull(c.r, c.hdr[:]); err != nil {
		return wire.Header{}, nil, err
	}
	h, err := wire.ParseHeader(c.hdr[:])
	if err != nil {
		return h, nil, err
	}
	p := c.pay[:h.Len]
	if _, err := io.ReadFull(c.r, p); err != nil {
		return h, nil, err
	}
	return h, p, nil
}

// nextReply skips watch events and returns the next reply.
func (c *conn) nextReply() (wire.Header, []byte, error) {
	for {
		h, p, err := c.next()
		if err != nil || h.Type != wire.WatchEvent {
			return h, p, err
		}
	}
}

// batch sends reqs, setupBatchSize at a time, and fails on any ERROR.
func (c *conn) batch(reqs []wire.Msg) error {
	_ = c.nc.SetDeadline(time.Now().Add(30 * time.Second))
	defer c.nc.SetDeadline(time.Time{})
	for len(reqs) > 0 {
		n := min(len(reqs), setupBatchSize)
		for i, m := range reqs[:n] {
			c.queue(m.Type, uint32(i), m.TxID, m.Payload)
		}
		if err := c.flush(); err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			h, p, err := c.nextReply()
			if err != nil {
				return err
			}
			if h.Type == wire.Error {
				m := reqs[h.ReqID%uint32(n)]
				return fmt.Errorf("%v %q: %s", m.Type, cut(m.Payload), cut(p))
			}
		}
		reqs = reqs[n:]
	}
	return nil
}

func cut(p []byte) string {
	if i := strings.IndexByte(string(p), 0); i >= 0 {
		p = p[:i]
	}
	return string(p)
}

// lane is one request slot of a connection.
type lane struct {
	op    Op
	step  int
	tx    uint32
	key   []byte // path + NUL
	start time.Time
	sent  wire.Type
	busy  bool
	abort bool // waiting for the reply to an abandoning TRANSACTION_END
}

var (
	nul      = []byte{0}
	commitT  = []byte("T\x00")
	emptyArg = []byte{0}
)

// lanes drives Depth lanes on c until the run stops.
func (c *conn) lanes(s *runState, id int, st *connStats) {
	cfg := s.cfg
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(id)))
	total := cfg.Mix.total()
	dir := append([]byte(dirPath(s)), 0)
	ls := make([]lane, cfg.Depth)
	pick := func() Op {
		n := rng.IntN(total)
		for i, w := range cfg.Mix {
			if n < w {
				return Op(i)
			}
			n -= w
		}
		return OpRead
	}
	// send issues lane l's next request.
	send := func(l int) {
		ln := &ls[l]
		switch ln.op {
		case OpRead:
			ln.sent = wire.Read
			c.queue(wire.Read, uint32(l), 0, ln.key)
		case OpWrite:
			ln.sent = wire.Write
			c.queue(wire.Write, uint32(l), 0, ln.key, s.value)
		case OpDirectory:
			ln.sent = wire.Directory
			c.queue(wire.Directory, uint32(l), 0, dir)
		case OpTxn:
			switch ln.step {
			case 0:
				ln.sent = wire.TransactionStart
				c.queue(wire.TransactionStart, uint32(l), 0, emptyArg)
			case 1:
				ln.sent = wire.Read
				c.queue(wire.Read, uint32(l), ln.tx, ln.key)
			case 2:
				ln.sent = wire.Write
				c.queue(wire.Write, uint32(l), ln.tx, ln.key, s.value)
			case 3:
				ln.sent = wire.TransactionEnd
				c.queue(wire.TransactionEnd, uint32(l), ln.tx, commitT)
			}
		}
	}
	begin := func(l int, now time.Time) {
		ln := &ls[l]
		if !s.mayStart() {
			ln.busy = false
			return
		}
		ln.busy = true
		ln.op = pick()
		ln.step = 0
		ln.tx = 0
		k := (id*cfg.Depth + l) % cfg.Keys
		if ln.op != OpTxn {
			k = rng.IntN(cfg.Keys)
		}
		ln.key = append(append(ln.key[:0], keyPath(s, k)...), 0)
		ln.start = now
		send(l)
	}
	busy := 0
	now := time.Now()
	for l := range ls {
		begin(l, now)
		if ls[l].busy {
			busy++
		}
	}
	if err := c.flush(); err != nil {
		st.fail("write: %v", err)
		return
	}
	for busy > 0 {
		_ = c.nc.SetReadDeadline(time.Now().Add(cfg.Timeout))
		h, p, err := c.next()
		if err != nil {
			st.fail("read: %v", err)
			return
		}
		if h.Type == wire.WatchEvent {
			continue
		}
		now := time.Now()
		if int(h.ReqID) >= len(ls) || !ls[h.ReqID].busy {
			st.fail("unexpected reply %v req_id %d", h.Type, h.ReqID)
			return
		}
		l := int(h.ReqID)
		ln := &ls[l]
		switch {
		case ln.abort:
			ln.abort = false
			begin(l, now)
		case h.Type == wire.Error && ln.sent == wire.TransactionEnd && cut(p) == "EAGAIN":
			st.conflicts++
			ln.step, ln.tx = 0, 0
			send(l)
		case h.Type == wire.Error:
			st.fail("%v %s: %s", ln.sent, cut(ln.key), cut(p))
			if ln.tx != 0 && ln.sent != wire.TransactionEnd {
				// Abandon the transaction so the server can drop it.
				ln.abort = true
				c.queue(wire.TransactionEnd, uint32(l), ln.tx, []byte("F\x00"))
				ln.sent = wire.TransactionEnd
				break
			}
			begin(l, now)
		case h.Type != ln.sent:
			st.fail("reply %v to %v", h.Type, ln.sent)
			return
		case ln.op == OpTxn && ln.step < 3:
			if ln.step == 0 {
				id, err := strconv.ParseUint(cut(p), 10, 32)
				if err != nil {
					st.fail("transaction id %q", p)
					return
				}
				ln.tx = uint32(id)
			}
			ln.step++
			send(l)
		default:
			st.done(s, ln.start, now)
			begin(l, now)
		}
		if !ls[l].busy {
			busy--
		}
		// Send what the replies read so far asked for once no further
		// whole message is already buffered.
		if c.r.Buffered() < wire.HeaderSize {
			if err := c.flush(); err != nil {
				st.fail("write: %v", err)
				return
			}
		}
	}
}
