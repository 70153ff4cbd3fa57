//go:build linux

package difftest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/xsstub/xenstored/wire"
)

// malformed is the hardening suite's part that needs C xenstored's
// answers (the rest is tests/integration/hardening_test.go): every
// request type with payloads that are empty, unterminated, over-long,
// with too few or too many arguments, bad numbers and bad paths, and
// unknown types and transaction ids; each answer must be C's.
func malformed() []Op {
	long := "/" + strings.Repeat("x", 3000)
	payloads := []struct {
		name string
		p    string
	}{
		{"empty", ""},
		{"nul", "\x00"},
		{"unterminated", "/a"},
		{"two nuls", "\x00\x00"},
		{"relative", "a\x00"},
		{"bad chars", "/a b\x00"},
		{"double slash", "//a\x00"},
		{"trailing slash", "/a/\x00"},
		{"over path-max", long + "\x00"},
		{"special", "@introduceDomain\x00"},
		{"bad special", "@nonsense\x00"},
		{"numbers", "-1\x00abc\x0099999999999\x00"},
		{"args", "/a\x00b\x00c\x00d\x00"},
	}
	types := []wire.Type{wire.Read, wire.Write, wire.Mkdir, wire.Rm, wire.Directory, wire.DirectoryPart,
		wire.GetPerms, wire.SetPerms, wire.Watch, wire.Unwatch, wire.TransactionStart, wire.TransactionEnd,
		wire.GetDomainPath, wire.IsDomainIntroduced, wire.Release, wire.Resume, wire.SetTarget}
	ops := []Op{wr(0, 0, "/a", "v")}
	for _, typ := range types {
		for _, p := range payloads {
			ops = append(ops, raw(1, 0, typ, p.p))
		}
	}
	for _, typ := range []wire.Type{wire.Type(0x7fff), wire.Type(40), wire.WatchEvent, wire.Error, wire.IsDomainIntroduced} {
		ops = append(ops, raw(1, 0, typ, "/a\x00"))
	}
	ops = append(ops,
		raw(1, txBogus, wire.Read, "/a\x00"),
		raw(1, txBogus, wire.Write, "/a\x00v"),
		raw(1, txBogus, wire.TransactionEnd, "T\x00"),
		raw(1, 0, wire.TransactionEnd, "T\x00"),
		start(1, 1), raw(1, 1, wire.TransactionStart, "\x00"), raw(1, 1, wire.TransactionEnd, "X\x00"),
		raw(1, 1, wire.TransactionEnd, "\x00"), end(1, 1, "F"), raw(1, 1, wire.Read, "/a\x00"),
		raw(2, 0, wire.Write, "/a\x00"+strings.Repeat("v", 4096-3)),
		rq(0, 0, wire.Read, "/a"),
		Op{Conn: 2, Act: actOversize}, Op{Conn: 2, Act: actReconnect},
		rq(2, 0, wire.Read, "/a"),
	)
	return ops
}

// TestHardeningMalformed sends the malformed requests to ours and each C
// peer.
func TestHardeningMalformed(t *testing.T) {
	forPeers(t, func(t *testing.T, p *peer) {
		ops := malformed()
		ms, err := runSeqAll(p, ops, true)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range ms {
			title := fmt.Sprintf("malformed request: %s", m.signature(ops))
			if i > 0 {
				title += " (after an earlier difference)"
			}
			report(t, p, title, ops[:m.index+1], m)
		}
		t.Logf("%d requests compared", len(ops))
	})
}
