//go:build linux

package difftest

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/xsstub/xenstored/wire"
)

// Number of connections per daemon in a sequence.
const numConns = 3

// action says what an Op does besides sending one well-formed message.
type action int

const (
	actRequest   action = iota // send Type/Tx/Payload, expect one reply
	actReconnect               // close the connection and open a new one
	actOversize                // send a header announcing more than 4096 bytes
	actPipeline                // send Count copies of the request at once, then read
)

// Tx references, as an Op's Tx field.
const (
	txNone  = 0  // tx_id 0
	txBogus = -1 // a tx_id no daemon hands out
)

// bogusTxID is the tx_id sent for txBogus and for transactions whose start
// failed: far above what either daemon allocates in a short sequence.
const bogusTxID = 0x7fff_0000

// Op is one step of a sequence. Sequences are pure data: the same Op list
// is replayed on both daemons and, shortened, when minimising a mismatch.
type Op struct {
	Conn    int
	Act     action
	Type    wire.Type
	Tx      int // txNone, txBogus, or the Start of a TRANSACTION_START op
	Payload []byte
	// Start names the transaction a TRANSACTION_START opens (T<Start>),
	// so that references survive the removal of other ops.
	Start int
	// Count is the number of copies an actPipeline op sends.
	Count int
}

// String renders an op for reports, e.g. `c1 WRITE tx=T3 "/a\x00v1"`.
func (o Op) String() string {
	switch o.Act {
	case actReconnect:
		return fmt.Sprintf("c%d RECONNECT", o.Conn)
	case actOversize:
		return fmt.Sprintf("c%d OVERSIZE-HEADER (len 4097, no payload)", o.Conn)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "c%d %v", o.Conn, o.Type)
	if o.Act == actPipeline {
		fmt.Fprintf(&b, " x%d pipelined", o.Count)
	}
	switch {
	case o.Tx == txBogus:
		fmt.Fprintf(&b, " tx=bogus(%d)", bogusTxID)
	case o.Tx > 0:
		fmt.Fprintf(&b, " tx=T%d", o.Tx)
	}
	b.WriteString(" " + quote(o.Payload))
	return b.String()
}

// quote shows a payload as a Go string literal, long runs shortened.
func quote(p []byte) string {
	s := strconv.Quote(string(p))
	if len(s) <= 120 {
		return s
	}
	return fmt.Sprintf("%s...(%d bytes)...%s", s[:60], len(p), s[len(s)-30:])
}

// formatSeq renders a sequence, one op a line, with op numbers.
func formatSeq(ops []Op) string {
	var b strings.Builder
	for i, o := range ops {
		tag := ""
		if o.Start > 0 {
			tag = fmt.Sprintf("   -> T%d", o.Start)
		}
		fmt.Fprintf(&b, "  %3d: %s%s\n", i, o, tag)
	}
	return b.String()
}
