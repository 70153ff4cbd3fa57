package store

import (
	"strconv"
	"strings"
	"testing"

	"github.com/xsstub/xenstored/wire"
)

// FuzzHandler drives random request sequences over several connections
// (two privileged, two guests), with domain introduction, release and death
// mixed in, and checks the invariants: no panic, every output decodes and
// fits the wire, queue bounds hold, and the tree and accounting stay
// consistent (CONTROL check).
func FuzzHandler(f *testing.F) {
	f.Add([]byte("\x00\x0b\x01\x00value\x02\x01\x01\x00\x01\x04\x02\x00\x03\x06\x00\x00"))
	f.Add([]byte("\x02\x0b\x03\x00x\x02\x0e\x03\x00\x03\x0d\x03\x00\x00\x08\x05\x00\x00\x09\x05\x00"))
	f.Add([]byte("\x01\x06\x00\x00\x01\x0b\x01\x01v\x00\x0b\x01\x00w\x01\x07\x00\x01"))
	f.Add([]byte("\x00\xff\x00\x00/a\x00b\x00\x03\x15\x00\x00\x02\x16\x01\x00"))
	paths := []string{"/", "/a", "/a/b", "/a/b/c", "/local/domain/5", "/local/domain/5/x", "/local/domain/6/y",
		"x", "x/y", "@releaseDomain", "@introduceDomain", "/a//b", "/a/", "", "/local/domain/", "/tool"}
	types := []wire.Type{wire.Read, wire.Write, wire.Mkdir, wire.Rm, wire.Directory, wire.DirectoryPart,
		wire.GetPerms, wire.SetPerms, wire.Watch, wire.Unwatch, wire.TransactionStart, wire.TransactionEnd,
		wire.Introduce, wire.Release, wire.GetDomainPath, wire.IsDomainIntroduced, wire.Resume, wire.SetTarget,
		wire.ResetWatches, wire.GetFeature, wire.SetFeature, wire.GetQuota, wire.SetQuota, wire.Control}
	perms := []string{"n0", "r5", "b6", "w5", "n5", "x1", "r70000", "b0x7ff5"}
	f.Fuzz(func(t *testing.T, prog []byte) {
		q := DefaultQuotas()
		q.Hard[QMaxOutstanding] = 4
		q.Hard[QMaxWatchEvents] = 3
		q.Hard[QNodes] = 20
		e := New(Config{Logger: quietLogger(), Quotas: &q})
		conns := []*Conn{e.NewConn(0, true, nil), e.NewConn(0, true, nil), e.NewConn(5, false, nil), e.NewConn(6, false, nil)}
		var txids []uint32
		next := func() byte {
			if len(prog) == 0 {
				return 0
			}
			b := prog[0]
			prog = prog[1:]
			return b
		}
		drain := func(c *Conn, n int) {
			for i := 0; i < n; i++ {
				b, ok := c.NextOutput()
				if !ok {
					return
				}
				m, err := wire.Decode(b)
				if err != nil {
					t.Fatalf("bad output: %v", err)
				}
				if m.Type == wire.TransactionStart {
					if id, err := strconv.Atoi(string(m.Payload[:len(m.Payload)-1])); err == nil {
						txids = append(txids, uint32(id))
					}
				}
			}
		}
		for steps := 0; len(prog) > 0 && steps < 200; steps++ {
			op := next()
			ci := int(op) % len(conns)
			c := conns[ci]
			switch op >> 6 {
			case 3: // let a connection read some output
				drain(c, int(next()%8))
				continue
			case 2:
				if op&0x20 != 0 {
					e.DomainGone(uint32(5+op&1), op&0x10 != 0)
					continue
				}
			}
			if !c.WantsInput() {
				drain(c, 16)
				continue
			}
			tb := next()
			typ := types[int(tb)%len(types)]
			if tb >= 0xf0 {
				typ = wire.Type(tb) // unknown types
			}
			p := paths[int(next())%len(paths)]
			var tx uint32
			if sel := next(); sel&3 == 3 && len(txids) > 0 {
				tx = txids[int(sel>>2)%len(txids)]
			}
			var payload []byte
			switch typ {
			case wire.Write:
				n := int(next() % 16)
				payload = append(append([]byte(p), 0), prog[:min(len(prog), n)]...)
			case wire.SetPerms:
				payload = wire.JoinStrings(p, perms[int(next())%len(perms)], perms[int(next())%len(perms)])
			case wire.Watch, wire.Unwatch:
				payload = wire.JoinStrings(p, "tok"+strconv.Itoa(int(next()%3)))
			case wire.TransactionEnd:
				payload = wire.JoinStrings([]string{"T", "F", "X"}[int(next())%3])
			case wire.Introduce:
				payload = wire.JoinStrings(strconv.Itoa(5+int(next()%2)), "1", "1")
			case wire.Release, wire.Resume, wire.GetDomainPath, wire.IsDomainIntroduced, wire.GetFeature:
				payload = wire.JoinStrings(strconv.Itoa(int(next() % 8)))
			case wire.SetTarget:
				payload = wire.JoinStrings("5", "6")
			case wire.SetQuota:
				payload = wire.JoinStrings("5", "nodes", strconv.Itoa(int(next())))
			case wire.DirectoryPart:
				payload = wire.JoinStrings(p, strconv.Itoa(int(next())))
			case wire.Control:
				payload = wire.JoinStrings([]string{"check", "help", "quota", "connections", "memreport"}[int(next())%5])
			default:
				if tb&1 == 1 { // raw bytes: missing NULs, garbage
					n := int(next() % 24)
					payload = append([]byte(nil), prog[:min(len(prog), n)]...)
				} else {
					payload = wire.JoinStrings(p)
				}
			}
			c.Handle(wire.Msg{Type: typ, ReqID: uint32(steps), TxID: tx, Payload: payload})
			for _, x := range conns {
				x.e.mu.Lock()
				if x.replies > q.Hard[QMaxOutstanding] {
					t.Fatalf("conn %d has %d replies queued", x.id, x.replies)
				}
				for _, w := range x.watches {
					if w.queued > q.Hard[QMaxWatchEvents] {
						t.Fatalf("watch has %d events queued", w.queued)
					}
				}
				x.e.mu.Unlock()
			}
			if len(prog)%7 == 0 {
				drain(conns[0], 4)
			}
		}
		if err := e.Check(); err != nil {
			t.Fatal(err)
		}
		for _, c := range conns {
			drain(c, 1<<20)
		}
		if err := e.Check(); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzParsers: the path and permission parsers never panic and accept only
// what the documented syntax allows.
func FuzzParsers(f *testing.F) {
	for _, s := range []string{"/a/b", "x", "@releaseDomain/1", "r0", "b0x10", "/a//b", "n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if abs, _, err := canonicalPath(s, "/local/domain/1", true, 2048); err == nil {
			if !validPathChars(abs) || len(abs) > wire.AbsPathMax {
				t.Fatalf("accepted %q", abs)
			}
		}
		if p, err := ParsePerm(s); err == nil {
			if len(s) < 2 || !strings.ContainsRune("rwbn", rune(s[0])) || p.String()[0] != s[0] {
				t.Fatalf("accepted perm %q as %v", s, p)
			}
		}
	})
}
