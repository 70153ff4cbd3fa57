//go:build linux

package difftest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xsstub/xenstored/wire"
)

// replyTimeout bounds the wait for any one reply; a daemon that does not
// answer is reported as "no reply" rather than hanging the test.
const replyTimeout = 3 * time.Second

// outcome is what one op produced on one daemon, normalised so that the two
// daemons' outcomes can be compared as strings.
type outcome struct {
	reply  string
	events [numConns][]string // per connection, in arrival order
}

// side is one daemon and the client state a sequence builds on it.
type side struct {
	d       *daemon
	conns   [numConns]*rawConn
	watched [numConns]bool // a WATCH was sent since (re)connect: sync it
	txids   map[int]uint32 // T<n> -> this daemon's transaction id
	gens    map[string]map[string]int
	reqID   uint32
}

func newSide(d *daemon) (*side, error) {
	s := &side{d: d, txids: map[int]uint32{}, gens: map[string]map[string]int{}}
	for i := range s.conns {
		c, err := dialRaw(d.sock)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("%s: %w", d.name, err)
		}
		s.conns[i] = c
	}
	return s, nil
}

func (s *side) close() {
	for _, c := range s.conns {
		if c != nil {
			c.close()
		}
	}
}

func (s *side) txID(ref int) uint32 {
	switch {
	case ref == txNone:
		return 0
	case ref == txBogus:
		return bogusTxID
	}
	if id, ok := s.txids[ref]; ok {
		return id
	}
	return bogusTxID
}

// txName names a transaction id in this daemon's terms (the latest T<n>
// it was handed out for), or "".
func (s *side) txName(id uint32) string {
	best := 0
	for n, v := range s.txids {
		if v == id && n > best {
			best = n
		}
	}
	if best == 0 {
		return ""
	}
	return "T" + strconv.Itoa(best)
}

// exec runs one op and collects its reply and the events it caused.
func (s *side) exec(op Op) outcome {
	var out outcome
	c := s.conns[op.Conn]
	switch op.Act {
	case actReconnect:
		c.close()
		nc, err := dialRaw(s.d.sock)
		if err != nil {
			out.reply = "reconnect failed: " + err.Error()
			// keep a dead connection in the slot
			s.conns[op.Conn] = c
			return out
		}
		s.conns[op.Conn] = nc
		s.watched[op.Conn] = false
		out.reply = "reconnected"
		return out
	case actOversize:
		var hdr [wire.HeaderSize]byte
		wire.Header{Type: wire.Read, ReqID: 0xffff, Len: wire.PayloadMax + 1}.Put(hdr[:])
		if err := c.send(hdr[:]); err != nil {
			out.reply = "send failed"
			return out
		}
		for {
			m, ok, timedOut := c.next(replyTimeout)
			switch {
			case timedOut:
				out.reply = "connection kept open"
				return out
			case !ok:
				out.reply = "connection closed"
				return out
			case m.Type == wire.WatchEvent:
				out.events[op.Conn] = append(out.events[op.Conn], s.event(m))
			default:
				out.reply = "reply " + s.msgString(m, 0)
				return out
			}
		}
	}
	if c.gone {
		out.reply = "connection closed"
		return out
	}
	if op.Act == actPipeline {
		out.reply = s.pipeline(c, op, &out.events[op.Conn])
		out.events[op.Conn] = append(out.events[op.Conn], "<reply>")
		s.sync(&out)
		return out
	}
	tx := s.txID(op.Tx)
	s.reqID++
	req := wire.Msg{Type: op.Type, ReqID: s.reqID, TxID: tx, Payload: op.Payload}
	if err := c.send(req.Encode()); err != nil {
		out.reply = "send failed"
		return out
	}
	if op.Type == wire.Watch {
		s.watched[op.Conn] = true
	}
	out.reply = s.await(c, op, req, &out.events[op.Conn])
	out.events[op.Conn] = append(out.events[op.Conn], "<reply>")
	s.sync(&out)
	return out
}

// pipeline sends op.Count copies of op's request in one write, then reads
// all replies; it summarises them as counts of distinct replies, in order.
func (s *side) pipeline(c *rawConn, op Op, events *[]string) string {
	var buf []byte
	first := s.reqID + 1
	for range op.Count {
		s.reqID++
		m := wire.Msg{Type: op.Type, ReqID: s.reqID, TxID: s.txID(op.Tx), Payload: op.Payload}
		buf = append(buf, m.Encode()...)
	}
	if err := c.send(buf); err != nil {
		return "send failed: " + err.Error()
	}
	var parts []string
	last, n := "", 0
	flush := func() {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d x %s", n, last))
		}
	}
	for i := 0; i < op.Count; {
		m, ok, timedOut := c.next(replyTimeout)
		switch {
		case timedOut:
			flush()
			return strings.Join(parts, ", ") + fmt.Sprintf(", then no reply after %d", i)
		case !ok:
			flush()
			return strings.Join(parts, ", ") + fmt.Sprintf(", then connection closed after %d", i)
		case m.Type == wire.WatchEvent:
			*events = append(*events, s.event(m))
			continue
		}
		r := s.msgString(m, m.TxID)
		if m.ReqID != first+uint32(i) {
			r += fmt.Sprintf(" [req_id %d, expected %d]", m.ReqID, first+uint32(i))
		}
		if r != last {
			flush()
			last, n = r, 0
		}
		n++
		i++
	}
	flush()
	return strings.Join(parts, ", ")
}

// await reads c up to the reply to req, recording events on the way.
func (s *side) await(c *rawConn, op Op, req wire.Msg, events *[]string) string {
	for {
		m, ok, timedOut := c.next(replyTimeout)
		switch {
		case timedOut:
			return "no reply"
		case !ok:
			return "connection closed"
		case m.Type == wire.WatchEvent:
			*events = append(*events, s.event(m))
			continue
		}
		return s.reply(op, req, m)
	}
}

// sync makes sure every event caused by the last op has arrived: a
// harmless request on each watching connection is answered only after the
// events queued before it.
func (s *side) sync(out *outcome) {
	for i, c := range s.conns {
		if !s.watched[i] || c.gone {
			continue
		}
		s.reqID++
		req := wire.Msg{Type: wire.GetDomainPath, ReqID: s.reqID, Payload: []byte("0\x00")}
		if err := c.send(req.Encode()); err != nil {
			continue
		}
		for {
			m, ok, timedOut := c.next(replyTimeout)
			if timedOut || !ok {
				out.events[i] = append(out.events[i], "<sync lost>")
				break
			}
			if m.Type == wire.WatchEvent {
				out.events[i] = append(out.events[i], s.event(m))
				continue
			}
			if m.ReqID != req.ReqID {
				out.events[i] = append(out.events[i], "<unexpected "+s.msgString(m, 0)+">")
				continue
			}
			break
		}
	}
}

func (s *side) event(m wire.Msg) string {
	e := strconv.Quote(string(m.Payload))
	if m.ReqID != 0 || m.TxID != 0 {
		e += fmt.Sprintf(" (req_id %d, tx_id %d)", m.ReqID, m.TxID)
	}
	return e
}

// msgString shows a message with its tx_id in this daemon's terms.
func (s *side) msgString(m wire.Msg, sentTx uint32) string {
	var b strings.Builder
	b.WriteString(m.Type.String())
	if m.TxID != sentTx {
		if n := s.txName(m.TxID); n != "" {
			fmt.Fprintf(&b, " [tx_id %s]", n)
		} else {
			fmt.Fprintf(&b, " [tx_id %d]", m.TxID)
		}
	}
	b.WriteString(" " + strconv.Quote(string(m.Payload)))
	return b.String()
}

// reply normalises the reply m to req: transaction ids become T<n>, and
// DIRECTORY_PART generation counts become the order in which distinct
// values were first seen for that path.
func (s *side) reply(op Op, req wire.Msg, m wire.Msg) string {
	var extra string
	if m.ReqID != req.ReqID {
		extra = fmt.Sprintf(" [req_id %d, sent %d]", m.ReqID, req.ReqID)
	}
	switch {
	case m.Type == wire.TransactionStart && req.Type == wire.TransactionStart && op.Start > 0:
		if id, err := strconv.ParseUint(strings.TrimSuffix(string(m.Payload), "\x00"), 10, 32); err == nil && strings.HasSuffix(string(m.Payload), "\x00") {
			s.txids[op.Start] = uint32(id)
			m.Payload = []byte(fmt.Sprintf("<T%d>", op.Start))
		}
	case m.Type == wire.DirectoryPart && req.Type == wire.DirectoryPart:
		if i := slices.Index(m.Payload, 0); i >= 0 {
			key := strconv.Itoa(op.Tx) + "\x00" + string(req.Payload)
			if j := slices.Index(req.Payload, 0); j >= 0 {
				key = strconv.Itoa(op.Tx) + "\x00" + string(req.Payload[:j])
			}
			g := s.gens[key]
			if g == nil {
				g = map[string]int{}
				s.gens[key] = g
			}
			gen := string(m.Payload[:i])
			n, ok := g[gen]
			if !ok {
				n = len(g)
				g[gen] = n
			}
			m.Payload = append([]byte(fmt.Sprintf("<gen%d>", n)), m.Payload[i:]...)
		}
	}
	return s.msgString(m, req.TxID) + extra
}

// mismatch is the first difference found in a sequence.
type mismatch struct {
	index  int // op index
	what   string
	c, g   outcome
	masked []string // intended differences seen before it
}

// stats counts C's reply kinds per peer and request type over a run
// (coverage).
var stats = map[string]int{}

// runSeq replays ops on a fresh C xenstored of peer p and a fresh daemon of
// ours and returns the first unmasked difference, or nil.
func runSeq(p *peer, ops []Op) (*mismatch, error) {
	ms, err := runSeqAll(p, ops, false)
	if len(ms) > 0 {
		return ms[0], err
	}
	return nil, err
}

// runSeqAll is runSeq, going on after a difference if all is set (later
// differences may then be consequences of earlier ones).
func runSeqAll(p *peer, ops []Op, all bool) ([]*mismatch, error) {
	var found []*mismatch
	cd, err := startC(p)
	if err != nil {
		return nil, err
	}
	defer cd.stop()
	gd, err := startGo()
	if err != nil {
		return nil, err
	}
	defer gd.stop()
	cs, err := newSide(cd)
	if err != nil {
		return nil, err
	}
	defer cs.close()
	gs, err := newSide(gd)
	if err != nil {
		return nil, err
	}
	defer gs.close()
	var masked []string
	for i, op := range ops {
		co, alt, unsafe := cUnsafe(p, op)
		if !unsafe {
			co = cs.exec(op)
		}
		gso := gs.exec(op)
		if op.Act == actRequest {
			stats[p.key+": "+op.Type.String()+" -> "+replyKind(co.reply)]++
		}
		for _, ev := range co.events {
			for _, e := range ev {
				if e != "<reply>" {
					stats[p.key+": (watch events)"]++
				}
			}
		}
		if slices.Contains(alt, gso.reply) {
			co.reply = gso.reply
		}
		what := compare(co, gso)
		if what == "" {
			continue
		}
		why, fixup := intended(p, op, co, gso)
		if why == "" {
			why = allowed(p, op, co, gso)
		}
		if why != "" {
			masked = append(masked, fmt.Sprintf("op %d: %s", i, why))
			if fixup != nil {
				gs.exec(*fixup)
			}
			f, div := cFixup(op, why, co, len(cs.txids) > 0)
			if f != nil {
				cs.exec(*f)
			}
			if diverges[why] || div {
				break // the two stores differ from here on: nothing left to compare
			}
			continue
		}
		m := &mismatch{index: i, what: what, c: co, g: gso, masked: masked}
		if dead, log := cd.dead(); dead {
			m.what += "; C xenstored died: " + log
		}
		if dead, log := gd.dead(); dead {
			m.what += "; our xenstored died: " + log
		}
		found = append(found, m)
		if !all {
			return found, nil
		}
	}
	for _, d := range []*daemon{cd, gd} {
		if dead, log := d.dead(); dead {
			found = append(found, &mismatch{index: len(ops) - 1, what: d.name + " xenstored died: " + log})
		}
	}
	return found, nil
}

// compare names what differs between two outcomes ("" if nothing).
func compare(c, g outcome) string {
	var diffs []string
	if c.reply != g.reply {
		diffs = append(diffs, "reply")
	}
	for i := range c.events {
		if !eventsMatch(c.events[i], g.events[i]) {
			diffs = append(diffs, fmt.Sprintf("events on c%d", i))
		}
	}
	return strings.Join(diffs, ", ")
}

// eventsMatch compares the events one op caused on one connection. Events
// queued before the op's reply and those after it are compared separately;
// within each, the same events must arrive, and in the same order among
// events of the same token (the order across different watches is not
// part of the protocol).
func eventsMatch(c, g []string) bool {
	if slices.Equal(c, g) {
		return true
	}
	split := func(evs []string) (pre, post []string) {
		i := slices.Index(evs, "<reply>")
		if i < 0 {
			return evs, nil
		}
		return evs[:i], evs[i+1:]
	}
	cpre, cpost := split(c)
	gpre, gpost := split(g)
	return sameEvents(cpre, gpre) && sameEvents(cpost, gpost)
}

func sameEvents(c, g []string) bool {
	if len(c) != len(g) {
		return false
	}
	byToken := func(evs []string) map[string][]string {
		m := map[string][]string{}
		for _, e := range evs {
			tok := e
			if u, err := strconv.Unquote(strings.SplitN(e, " (", 2)[0]); err == nil {
				parts, _ := wire.SplitStrings([]byte(u))
				if len(parts) > 1 {
					tok = parts[1]
				}
			}
			m[tok] = append(m[tok], e)
		}
		return m
	}
	cm, gm := byToken(c), byToken(g)
	if len(cm) != len(gm) {
		return false
	}
	for tok, evs := range cm {
		if !slices.Equal(evs, gm[tok]) {
			return false
		}
	}
	return true
}

func (o outcome) String() string {
	var b strings.Builder
	b.WriteString("reply: " + shorten(o.reply) + "\n")
	for i, ev := range o.events {
		if len(ev) == 0 || (len(ev) == 1 && ev[0] == "<reply>") {
			continue
		}
		short := make([]string, len(ev))
		for j, e := range ev {
			short[j] = shorten(e)
		}
		fmt.Fprintf(&b, "      events c%d: %s\n", i, strings.Join(short, " "))
	}
	return b.String()
}

// shorten cuts the middle out of long quoted strings for reports.
func shorten(s string) string {
	if len(s) <= 160 {
		return s
	}
	return fmt.Sprintf("%s...(%d chars)...%s", s[:80], len(s), s[len(s)-40:])
}

// signature groups mismatches for de-duplication and minimisation: the op
// kind and the kinds of the two replies (the type, and the error name for
// errors; values are left out), or where the events differ.
func (m *mismatch) signature(ops []Op) string {
	op := ops[m.index]
	kind := op.Type.String()
	if op.Act != actRequest {
		kind = op.String()
	}
	if strings.Contains(m.what, "reply") {
		return kind + " | C: " + replyKind(m.c.reply) + " | Go: " + replyKind(m.g.reply)
	}
	return kind + " | " + m.what
}

// replyKind is a normalised reply without its value, except for errors.
func replyKind(r string) string {
	if strings.HasPrefix(r, "ERROR ") {
		return r
	}
	if i := strings.IndexByte(r, ' '); i > 0 {
		return r[:i]
	}
	return r
}

// minimise drops ops while the same kind of mismatch still happens at the
// end, returning the shortened sequence (ending at the mismatching op).
func minimise(p *peer, ops []Op, m *mismatch, budget time.Duration) ([]Op, *mismatch) {
	sig := m.signature(ops)
	cur := slices.Clone(ops[:m.index+1])
	deadline := time.Now().Add(budget)
	try := func(cand []Op) *mismatch {
		mm, err := runSeq(p, cand)
		if err != nil || mm == nil || mm.index != len(cand)-1 || mm.signature(cand) != sig {
			return nil
		}
		return mm
	}
	// Chunks first, then single ops.
	for chunk := len(cur) / 2; chunk >= 1; chunk /= 2 {
		for i := len(cur) - 1 - chunk; i >= 0 && time.Now().Before(deadline); i-- {
			// never drop the final (mismatching) op
			i = min(i, len(cur)-1-chunk)
			if i < 0 {
				break
			}
			cand := slices.Concat(cur[:i], cur[i+chunk:])
			if mm := try(cand); mm != nil {
				cur, m = cand, mm
			}
		}
	}
	return cur, m
}
