//go:build linux

package difftest

import (
	"fmt"
	"testing"

	"github.com/xsstub/xenstored/wire"
)

// Helpers to write sequences by hand. Transactions are named by number: a
// start(c, n) op opens T<n>, and tx arguments refer to it (0: none).

func rq(c, tx int, t wire.Type, args ...string) Op {
	return Op{Conn: c, Tx: tx, Type: t, Payload: wire.JoinStrings(args...)}
}

func raw(c, tx int, t wire.Type, payload string) Op {
	return Op{Conn: c, Tx: tx, Type: t, Payload: []byte(payload)}
}

func wr(c, tx int, path, value string) Op {
	return raw(c, tx, wire.Write, path+"\x00"+value)
}

func start(c, n int) Op {
	return Op{Conn: c, Type: wire.TransactionStart, Payload: []byte{0}, Start: n}
}

func end(c, tx int, arg string) Op { return rq(c, tx, wire.TransactionEnd, arg) }

// many makes n ops from f(i).
func many(n int, f func(i int) Op) []Op {
	ops := make([]Op, n)
	for i := range ops {
		ops[i] = f(i)
	}
	return ops
}

func pipe(c, n int, o Op) Op {
	o.Conn, o.Act, o.Count = c, actPipeline, n
	return o
}

// corners are hand-written sequences for behaviour the random generator
// reaches only rarely: transaction isolation and conflicts, watch event
// paths, special paths, limits.
var corners = []struct {
	name string
	ops  []Op
}{
	{"tx read sees a later outside write", []Op{
		wr(0, 0, "/a", "old"), start(0, 1), wr(1, 0, "/a", "new"),
		rq(0, 1, wire.Read, "/a"), end(0, 1, "T"), rq(0, 0, wire.Read, "/a"),
	}},
	{"tx read-then-outside-write conflicts", []Op{
		wr(0, 0, "/a", "old"), start(0, 1), rq(0, 1, wire.Read, "/a"),
		wr(1, 0, "/a", "new"), wr(0, 1, "/b", "x"), end(0, 1, "T"), rq(0, 0, wire.Read, "/b"),
	}},
	{"tx write-only vs outside write of the same node", []Op{
		wr(0, 0, "/a", "old"), start(0, 1), wr(0, 1, "/a", "tx"),
		wr(1, 0, "/a", "out"), end(0, 1, "T"), rq(0, 0, wire.Read, "/a"),
	}},
	{"tx sees node created outside after start", []Op{
		rq(0, 0, wire.Mkdir, "/a"), start(0, 1), wr(1, 0, "/a/b", "x"),
		rq(0, 1, wire.Read, "/a/b"), rq(0, 1, wire.Directory, "/a"), end(0, 1, "T"),
	}},
	{"tx rm of node created outside after parent was read", []Op{
		wr(0, 0, "/a", ""), start(0, 1), rq(0, 1, wire.GetPerms, "/a"),
		wr(1, 0, "/a/b", "x"), rq(0, 1, wire.Rm, "/a/b"), end(0, 1, "T"), rq(0, 0, wire.Directory, "/a"),
	}},
	{"tx directory after outside child creation", []Op{
		wr(0, 0, "/a/x", ""), start(0, 1), rq(0, 1, wire.Directory, "/a"),
		wr(1, 0, "/a/y", ""), rq(0, 1, wire.Directory, "/a"), end(0, 1, "T"),
	}},
	{"two transactions, interfering", []Op{
		wr(0, 0, "/a", "1"), wr(0, 0, "/b", "2"), start(0, 1), start(1, 2),
		rq(0, 1, wire.Read, "/a"), rq(1, 2, wire.Read, "/b"), wr(0, 1, "/b", "t1"), wr(1, 2, "/a", "t2"),
		end(0, 1, "T"), end(1, 2, "T"), rq(2, 0, wire.Read, "/a"), rq(2, 0, wire.Read, "/b"),
	}},
	{"watch events fire on commit only", []Op{
		rq(1, 0, wire.Watch, "/a", "w"), start(0, 1), wr(0, 1, "/a/b", "x"), wr(0, 1, "/a/c", "y"),
		rq(0, 1, wire.Rm, "/a/c"), end(0, 1, "T"),
	}},
	{"tx rm of a subtree: the parent is touched before the children", []Op{
		wr(0, 0, "/p/c/d", "x"), rq(1, 0, wire.Watch, "/p", "w"), rq(1, 0, wire.Watch, "/p/c/d", "w"), start(0, 1),
		rq(0, 1, wire.Rm, "/p/c"), rq(0, 1, wire.Rm, "/p"), end(0, 1, "T"),
	}},
	{"aborted transaction fires nothing", []Op{
		rq(1, 0, wire.Watch, "/a", "w"), start(0, 1), wr(0, 1, "/a/b", "x"), end(0, 1, "F"),
		rq(0, 0, wire.Read, "/a/b"),
	}},
	{"tx end with bad arg keeps the transaction", []Op{
		start(0, 1), end(0, 1, "X"), wr(0, 1, "/a", "v"), end(0, 1, "T"), rq(0, 0, wire.Read, "/a"),
	}},
	{"nested start", []Op{start(0, 1), {Conn: 0, Tx: 1, Type: wire.TransactionStart, Payload: []byte{0}, Start: 2}}},
	{"transaction of another connection", []Op{start(0, 1), rq(1, 1, wire.Read, "/")}},
	{"tx ids after end are stale", []Op{start(0, 1), end(0, 1, "F"), rq(0, 1, wire.Read, "/")}},
	{"watch relative path", []Op{
		rq(0, 0, wire.Watch, "a", "rel"), wr(1, 0, "/local/domain/0/a/b", "x"), rq(1, 0, wire.Rm, "/local/domain/0/a"),
		wr(1, 0, "a", "v"),
	}},
	{"watch on parent, rm of subtree", []Op{
		wr(0, 0, "/a/b/c", ""), rq(1, 0, wire.Watch, "/a/b/c", "deep"), rq(1, 0, wire.Watch, "/a", "top"),
		rq(1, 0, wire.Watch, "/a/b/c/d", "deeper"), rq(0, 0, wire.Rm, "/a"),
	}},
	{"set_perms fires watch", []Op{
		wr(0, 0, "/a", ""), rq(1, 0, wire.Watch, "/a", "w"), rq(0, 0, wire.SetPerms, "/a", "n0", "r5"),
		rq(0, 0, wire.GetPerms, "/a"),
	}},
	{"mkdir of existing node fires nothing", []Op{
		wr(0, 0, "/a", "v"), rq(1, 0, wire.Watch, "/a", "w"), rq(0, 0, wire.Mkdir, "/a"), rq(0, 0, wire.Read, "/a"),
	}},
	{"write creates parents with inherited perms", []Op{
		rq(0, 0, wire.Mkdir, "/p"), rq(0, 0, wire.SetPerms, "/p", "b5", "r7"), wr(0, 0, "/p/q/r", "x"),
		rq(0, 0, wire.GetPerms, "/p/q"), rq(0, 0, wire.GetPerms, "/p/q/r"),
	}},
	{"rm of missing node with missing parent", []Op{rq(0, 0, wire.Rm, "/nope/nope"), rq(0, 0, wire.Rm, "/nope")}},
	{"rm root", []Op{rq(0, 0, wire.Rm, "/")}},
	{"directory order after re-creation", []Op{
		wr(0, 0, "/d/b", ""), wr(0, 0, "/d/a", ""), wr(0, 0, "/d/c", ""), rq(0, 0, wire.Rm, "/d/b"),
		wr(0, 0, "/d/b", ""), rq(0, 0, wire.Directory, "/d"), rq(0, 0, wire.DirectoryPart, "/d", "0"),
		rq(0, 0, wire.DirectoryPart, "/d", "2"), rq(0, 0, wire.DirectoryPart, "/d", "4"),
	}},
	{"directory_part generation changes", []Op{
		wr(0, 0, "/d/a", ""), rq(0, 0, wire.DirectoryPart, "/d", "0"), wr(0, 0, "/d/a", "x"),
		rq(0, 0, wire.DirectoryPart, "/d", "0"), wr(0, 0, "/d", "v"), rq(0, 0, wire.DirectoryPart, "/d", "0"),
		wr(0, 0, "/d/b", ""), rq(0, 0, wire.DirectoryPart, "/d", "0"),
	}},
	{"directory_part generation after set_perms", []Op{
		wr(0, 0, "/d/a", ""), rq(0, 0, wire.DirectoryPart, "/d", "0"), rq(0, 0, wire.SetPerms, "/d", "b0", "r5"),
		rq(0, 0, wire.DirectoryPart, "/d", "0"),
	}},
	{"directory_part generation in a transaction", []Op{
		wr(0, 0, "/d/a", ""), start(0, 1), rq(0, 1, wire.DirectoryPart, "/d", "0"), rq(0, 1, wire.SetPerms, "/d", "b0", "r5"),
		rq(0, 1, wire.DirectoryPart, "/d", "0"), wr(0, 1, "/d/b", ""), rq(0, 1, wire.DirectoryPart, "/d", "0"),
		wr(0, 1, "/d", "v"), rq(0, 1, wire.DirectoryPart, "/d", "0"), end(0, 1, "T"), rq(0, 0, wire.DirectoryPart, "/d", "0"),
	}},
	{"special watches", []Op{
		rq(0, 0, wire.Watch, "@introduceDomain", "i"), rq(0, 0, wire.Watch, "@releaseDomain", "r"),
		rq(1, 0, wire.Introduce, "5", "0", "7"), rq(1, 0, wire.IsDomainIntroduced, "5"),
		rq(1, 0, wire.Release, "5"), rq(1, 0, wire.IsDomainIntroduced, "5"),
	}},
	{"release deletes a watched node of the domain; the releaser watches", []Op{
		rq(0, 0, wire.Watch, "@releaseDomain", "r"), rq(0, 0, wire.Watch, "/a", "w"),
		rq(0, 0, wire.Introduce, "5", "0", "7"), wr(0, 0, "/a/b", "x"),
		rq(0, 0, wire.SetPerms, "/a/b", "n5"), rq(0, 0, wire.Release, "5"),
	}},
	{"special watch with a domid suffix", []Op{
		rq(0, 0, wire.Watch, "@introduceDomain/1", "i1"), rq(0, 0, wire.Watch, "@releaseDomain/1", "r1"),
		rq(1, 0, wire.Introduce, "1", "0", "7"), rq(1, 0, wire.Release, "1"),
	}},
	{"introduce twice, resume, set_target", []Op{
		rq(1, 0, wire.Introduce, "5", "0", "7"), rq(1, 0, wire.Introduce, "5", "0", "8"),
		rq(1, 0, wire.Introduce, "6", "0", "9"), rq(1, 0, wire.SetTarget, "5", "6"),
		rq(1, 0, wire.Resume, "5"), rq(1, 0, wire.Release, "5"), rq(1, 0, wire.Release, "5"),
	}},
	{"introduce dom0 and bad ports", []Op{
		rq(1, 0, wire.Introduce, "0", "0", "7"), rq(1, 0, wire.Introduce, "5", "0", "0"),
		rq(1, 0, wire.Introduce, "5", "0", "-1"), rq(1, 0, wire.Introduce, "32752", "0", "7"),
	}},
	{"reset_watches ends transactions", []Op{
		start(0, 1), rq(0, 0, wire.Watch, "/a", "w"), raw(0, 0, wire.ResetWatches, ""),
		wr(0, 1, "/a", "x"), wr(1, 0, "/a", "y"),
	}},
	{"watch duplicate and unwatch", []Op{
		rq(0, 0, wire.Watch, "/a", "w"), rq(0, 0, wire.Watch, "/a", "w"), rq(0, 0, wire.Watch, "/a", "w2"),
		rq(0, 0, wire.Unwatch, "/a", "w"), rq(0, 0, wire.Unwatch, "/a", "w"), rq(0, 0, wire.Unwatch, "a", "w2"),
	}},
	{"unwatch of invalid paths", []Op{
		rq(0, 0, wire.Unwatch, "a/", "t"), rq(0, 0, wire.Unwatch, "/a b", "t"), rq(0, 0, wire.Unwatch, "@x", "t"),
		rq(0, 0, wire.Unwatch, "", "t"),
	}},
	{"watch relative and absolute twins", []Op{
		rq(0, 0, wire.Watch, "a", "w"), rq(0, 0, wire.Watch, "/local/domain/0/a", "w"),
		rq(0, 0, wire.Unwatch, "/local/domain/0/a", "w"), wr(1, 0, "a", "v"),
	}},
	{"values: empty, binary, NUL", []Op{
		wr(0, 0, "/v", ""), rq(0, 0, wire.Read, "/v"), wr(0, 0, "/v", "\x00\xff"), rq(0, 0, wire.Read, "/v"),
		raw(0, 0, wire.Write, "/v"), raw(0, 0, wire.Write, ""), rq(0, 0, wire.Read, "/v"),
	}},
	{"big value", []Op{wr(0, 0, "/v", string(make([]byte, 4000))), rq(0, 0, wire.Read, "/v")}},
	{"path limits", []Op{
		wr(0, 0, longPath(2048, false), "x"), wr(0, 0, longPath(2049, false), "x"),
		wr(0, 0, "/local/domain/0/"+longPath(2048, true), "x"), wr(0, 0, "/local/domain/0/"+longPath(2049, true), "x"),
		wr(0, 0, longPath(2048, true), "x"), wr(0, 0, longPath(2049, true), "x"),
		wr(0, 0, "/local/domain/7/"+longPath(2048, true), "x"), wr(0, 0, "/local/domain/123456/"+longPath(2040, true), "x"),
	}},
	{"set_perms parsing", []Op{
		rq(0, 0, wire.Mkdir, "/p"), rq(0, 0, wire.SetPerms, "/p", "n0x10"), rq(0, 0, wire.GetPerms, "/p"),
		rq(0, 0, wire.SetPerms, "/p", "b+1"), rq(0, 0, wire.GetPerms, "/p"),
		rq(0, 0, wire.SetPerms, "/p", "n 5"), rq(0, 0, wire.SetPerms, "/p", "n5", "r99999"), rq(0, 0, wire.GetPerms, "/p"),
		rq(0, 0, wire.SetPerms, "/p", "n5", "x"), rq(0, 0, wire.SetPerms, "/p", "n32752"), rq(0, 0, wire.SetPerms, "/p"),
		rq(0, 0, wire.SetPerms, "/p", "n0", "r1", "r2", "r3", "r4", "r5", "r6"), rq(0, 0, wire.GetPerms, "/p"),
	}},
	{"perm domid 2^32-1", []Op{
		rq(0, 0, wire.Mkdir, "/p"), rq(0, 0, wire.SetPerms, "/p", "b0", "n4294967295", "r2147483648"),
		rq(0, 0, wire.GetPerms, "/p"),
	}},
	{"order of a commit's events", []Op{
		rq(1, 0, wire.Watch, "/a", "w"), start(0, 1), wr(0, 1, "/a/x", "1"), wr(0, 1, "/a/b", "2"),
		wr(0, 1, "/a", "3"), end(0, 1, "T"),
	}},
	{"domid parsing", []Op{
		rq(0, 0, wire.GetDomainPath, "abc"), rq(0, 0, wire.GetDomainPath, "5abc"), rq(0, 0, wire.GetDomainPath, "-1"),
		rq(0, 0, wire.GetDomainPath, "65536"), rq(0, 0, wire.IsDomainIntroduced, "abc"), rq(0, 0, wire.IsDomainIntroduced, "32753"),
	}},
	{"unknown and reply-only types", []Op{
		rq(0, 0, 20, "/"), rq(0, 0, wire.WatchEvent, "/", "t"), rq(0, 0, wire.Error, "EINVAL"), rq(0, 0, 0xffff),
	}},
	{"dom0 has no watch quota", append(many(140, func(i int) Op { return rq(0, 0, wire.Watch, fmt.Sprintf("/w%d", i), "t") }),
		wr(1, 0, "/w139", "x"))},
	{"dom0 has no transaction quota", append(many(15, func(i int) Op { return start(0, i+1) }),
		wr(0, 15, "/t", "x"), end(0, 15, "T"), end(0, 1, "T"))},
	{"dom0 has no node quota", append(many(1100, func(i int) Op { return wr(0, 0, fmt.Sprintf("/n/%d", i), "") }),
		rq(0, 0, wire.Rm, "/n"))},
	{"2000 pipelined requests", []Op{
		// No watch on /p: how many identical events C drops depends on
		// when the watcher reads (C 4.17 send_event()).
		wr(0, 0, "/p", "v"), pipe(0, 2000, rq(0, 0, wire.Read, "/p")), pipe(0, 1500, wr(0, 0, "/p", "v2")),
		rq(1, 0, wire.Read, "/p"),
	}},
	{"one commit fires 1100 events at one watch", append(append([]Op{
		rq(1, 0, wire.Watch, "/e", "w"), start(0, 1)},
		many(1100, func(i int) Op { return wr(0, 1, fmt.Sprintf("/e/%d", i), "") })...),
		end(0, 1, "T"), rq(1, 0, wire.Read, "/e/0"))},
	{"oversize header closes the connection", []Op{
		rq(0, 0, wire.Watch, "/a", "w"), {Conn: 0, Act: actOversize}, wr(1, 0, "/a", "x"), {Conn: 0, Act: actReconnect},
		rq(0, 0, wire.Read, "/a"),
	}},
	{"closing a connection drops its watches and transactions", []Op{
		rq(0, 0, wire.Watch, "/a", "w"), start(0, 1), wr(0, 1, "/a", "tx"), {Conn: 0, Act: actReconnect},
		wr(1, 0, "/a", "x"), rq(1, 0, wire.Read, "/a"),
	}},
}

// TestCorners replays the hand-written sequences on ours and each C peer.
func TestCorners(t *testing.T) {
	forPeers(t, func(t *testing.T, p *peer) {
		for _, tc := range corners {
			t.Run(tc.name, func(t *testing.T) {
				ms, err := runSeqAll(p, tc.ops, true)
				if err != nil {
					t.Fatal(err)
				}
				for i, m := range ms {
					title := fmt.Sprintf("corner %q: %s", tc.name, m.signature(tc.ops))
					if i > 0 {
						title += " (after an earlier difference)"
					}
					report(t, p, title, tc.ops[:m.index+1], m)
				}
			})
		}
	})
}
