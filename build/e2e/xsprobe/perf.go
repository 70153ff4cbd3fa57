package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/xsstub/xenstored/wire"
)

// perfValue is what `perf` writes (and, for reads, what it reads back):
// 16 bytes.
const perfValue = "xsprobe-perf-16b"

// perfResult is what one `perf` run counts.
type perfResult struct {
	Ops      int           // replies of the expected type and payload
	Errors   int           // ERROR replies, wrong type, payload or req_id
	FirstErr string        // the first error, for the report
	Elapsed  time.Duration // first request sent to last reply read
}

func (r perfResult) String() string {
	s := r.Elapsed.Seconds()
	rate := 0.0
	if s > 0 {
		rate = float64(r.Ops) / s
	}
	out := fmt.Sprintf("ops=%d secs=%.2f ops_per_s=%.0f errors=%d", r.Ops, s, rate, r.Errors)
	if r.FirstErr != "" {
		out += " first_error=" + strings.ReplaceAll(r.FirstErr, " ", "_")
	}
	return out
}

// expect is what the reply to one outstanding request must be.
type expect struct {
	typ     wire.Type
	payload []byte // the exact reply payload
}

// pipeline keeps the requests in flight and judges each reply: its req_id
// must be one in flight (each answered once), its type the request's (an
// ERROR reply is an error) and its payload the one expected.
type pipeline struct {
	inflight map[uint32]expect
	res      perfResult
}

func newPipeline() *pipeline { return &pipeline{inflight: map[uint32]expect{}} }

func (p *pipeline) sent(reqID uint32, e expect) { p.inflight[reqID] = e }

func (p *pipeline) fail(format string, a ...any) {
	p.res.Errors++
	if p.res.FirstErr == "" {
		p.res.FirstErr = fmt.Sprintf(format, a...)
	}
}

// got judges one message read from the device. Watch events are not
// replies (none is expected; they are skipped).
func (p *pipeline) got(h wire.Header, payload []byte) {
	if h.Type == wire.WatchEvent {
		return
	}
	e, ok := p.inflight[h.ReqID]
	if !ok {
		p.fail("reply with req_id %d not in flight (type %v)", h.ReqID, h.Type)
		return
	}
	delete(p.inflight, h.ReqID)
	switch {
	case h.Type == wire.Error:
		p.fail("ERROR %s", strings.TrimRight(string(payload), "\x00"))
	case h.Type != e.typ:
		p.fail("reply type %v to %v", h.Type, e.typ)
	case !bytes.Equal(payload, e.payload):
		p.fail("%v reply payload %q, want %q", e.typ, payload, e.payload)
	default:
		p.res.Ops++
	}
}

// perfOp is the request `perf` repeats.
type perfOp struct {
	msg  wire.Msg // ReqID set per send
	want expect
}

// perfOpFor builds the request for kind read or write (txID 0 outside a
// transaction).
func perfOpFor(kind, path string, txID uint32) (perfOp, error) {
	switch kind {
	case "read":
		return perfOp{
			msg:  wire.Msg{Type: wire.Read, TxID: txID, Payload: wire.JoinStrings(path)},
			want: expect{wire.Read, []byte(perfValue)},
		}, nil
	case "write":
		p := append([]byte(path), 0)
		return perfOp{
			msg:  wire.Msg{Type: wire.Write, TxID: txID, Payload: append(p, perfValue...)},
			want: expect{wire.Write, []byte("OK\x00")},
		}, nil
	}
	return perfOp{}, fmt.Errorf("perf: kind %q: want read, write or txwrite", kind)
}

// runPerf repeats op for d with depth requests in flight: it writes depth
// requests (one message per write(2), as Linux's xenbus device wants), then
// for each reply read sends one more until d has passed, and finally reads
// the replies still in flight. Depth 1 is strictly one request at a time.
func runPerf(dev io.ReadWriter, op perfOp, d time.Duration, depth int, nextID func() uint32) perfResult {
	p := newPipeline()
	r := bufio.NewReaderSize(dev, 8192)
	buf := op.msg.Encode()
	hb := make([]byte, wire.HeaderSize)
	pl := make([]byte, wire.PayloadMax)
	t0 := time.Now()
	end := t0.Add(d)
	send := func() bool {
		id := nextID()
		h := wire.Header{Type: op.msg.Type, ReqID: id, TxID: op.msg.TxID, Len: uint32(len(op.msg.Payload))}
		h.Put(buf)
		if _, err := dev.Write(buf); err != nil {
			p.fail("write: %v", err)
			return false
		}
		p.sent(id, op.want)
		return true
	}
	for len(p.inflight) < depth && send() {
	}
	for len(p.inflight) > 0 {
		if _, err := io.ReadFull(r, hb); err != nil {
			p.fail("read: %v", err)
			break
		}
		h, err := wire.ParseHeader(hb)
		if err != nil {
			p.fail("%v", err)
			break
		}
		if _, err := io.ReadFull(r, pl[:h.Len]); err != nil {
			p.fail("read: %v", err)
			break
		}
		p.got(h, pl[:h.Len])
		if time.Now().Before(end) && !send() {
			break
		}
	}
	p.res.Elapsed = time.Since(t0)
	if n := len(p.inflight); n > 0 {
		p.res.Errors += n
		if p.res.FirstErr == "" {
			p.res.FirstErr = fmt.Sprintf("%d requests never answered", n)
		}
	}
	return p.res
}

// perf is `xsprobe perf read|write|txwrite PATH SECS DEPTH`: READs of PATH
// (holding a 16-byte value, written first), WRITEs of a 16-byte value to
// PATH, or the same WRITEs inside one transaction (aborted at the end);
// prints "ops=N secs=S ops_per_s=R errors=E" and exits 3 on any error or
// no operation at all.
func perf(c *conn, kind, path, secs, depthArg string) {
	s, err := strconv.ParseFloat(secs, 64)
	if err != nil || s <= 0 {
		fatal(fmt.Errorf("perf: SECS %q", secs))
	}
	depth := atoi(depthArg)
	if depth < 1 {
		fatal(fmt.Errorf("perf: DEPTH %d", depth))
	}
	var tx uint32
	switch kind {
	case "read":
		c.mustRaw(wire.Write, append(append([]byte(path), 0), perfValue...)) // not counted
	case "txwrite":
		v := c.must(wire.TransactionStart, "")
		n, err := strconv.ParseUint(strings.TrimRight(string(v), "\x00"), 10, 32)
		if err != nil {
			fatal(fmt.Errorf("perf: TRANSACTION_START answered %q", v))
		}
		tx = uint32(n)
		kind = "write"
	}
	op, err := perfOpFor(kind, path, tx)
	if err != nil {
		fatal(err)
	}
	res := runPerf(c.f, op, time.Duration(s*float64(time.Second)), depth, func() uint32 { c.reqID++; return c.reqID })
	if tx != 0 && res.Errors == 0 {
		c.txID = tx
		c.must(wire.TransactionEnd, "F")
	}
	fmt.Println(res)
	if res.Errors > 0 || res.Ops == 0 {
		os.Exit(3)
	}
}
