package migration

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// unhex decodes hex with spaces, newlines and "|" separators ignored.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	s = strings.NewReplacer(" ", "", "\n", "", "\t", "", "|", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex: %v", err)
	}
	return b
}

// Golden encodings, worked out by hand from docs/designs/xenstore-migration.md
// (RELEASE-4.22.0). Record headers and bodies are little endian; the record
// header is type (4 octets) then len (4 octets). len is written as the body
// length rounded up to 8, i.e. including the padding, as C xenstored writes
// it (see the package documentation).
var goldens = []struct {
	name string
	rec  Record
	hex  string
}{
	{
		// GLOBAL_DATA: type 1, len 8; rw-socket-fd 3, evtchn-fd -1.
		name: "global",
		rec:  &Global{SocketFD: 3, EvtchnFD: -1},
		hex: `01000000 08000000
		      03000000 ffffffff`,
	},
	{
		// TRANSACTION_DATA: type 4, len 8; conn-id 1, tx-id 7.
		name: "transaction",
		rec:  &Transaction{ConnID: 1, TxID: 7},
		hex: `04000000 08000000
		      01000000 07000000`,
	},
	{
		// WATCH_DATA: type 3. Body: conn-id 1 (4), wpath-len 3 ("/a" and
		// NUL), token-len 2 ("t" and NUL), then "/a\0" "t\0": 8+3+2 = 13
		// octets, padded to 16 with 3 zeros, so len 16.
		name: "watch",
		rec:  &Watch{ConnID: 1, Path: "/a", Token: "t"},
		hex: `03000000 10000000
		      01000000 0300 0200
		      2f6100 7400 000000`,
	},
	{
		// WATCH_DATA_EXTENDED: type 8. Body: conn-id 1, wpath-len 3,
		// token-len 2, depth 2, pad 0, "/a\0" "t\0": 12+5 = 17, padded to 24.
		name: "watch extended",
		rec:  &WatchExtended{ConnID: 1, Path: "/a", Token: "t", Depth: 2},
		hex: `08000000 18000000
		      01000000 0300 0200
		      0200 0000 2f6100 74
		      00 00000000000000`,
	},
	{
		// NODE_DATA, committed: type 5. Body: conn-id 0, tx-id 0,
		// path-len 3, value-len 1, access 0, perm-count 2, then the perms
		// ('n' 0x6e, flags 0, domid 1) and ('r' 0x72, flags 1 = stale,
		// domid 2), path "/a\0", value "x": 16+8+3+1 = 28, padded to 32.
		name: "node",
		rec: &Node{Path: "/a", Value: []byte("x"),
			Perms: []Perm{{Perm: PermNone, DomID: 1}, {Perm: PermRead, Flags: PermFlagIgnore, DomID: 2}}},
		hex: `05000000 20000000
		      00000000 00000000
		      0300 0100 0000 0200
		      6e00 0100 7201 0200
		      2f6100 78 00000000`,
	},
	{
		// NODE_DATA, deleted in transaction 5 of connection 2: access 0,
		// perm-count 0, value-len 0; path "/b\0": 16+3 = 19, padded to 24.
		name: "node deleted in transaction",
		rec:  &Node{ConnID: 2, TxID: 5, Path: "/b"},
		hex: `05000000 18000000
		      02000000 05000000
		      0300 0000 0000 0000
		      2f6200 0000000000`,
	},
	{
		// CONNECTION_DATA, shared ring: type 2. conn-id 1, conn-type 0,
		// fields 1 (unique-id present); conn-spec domid 5, tdomid 0x7ff4
		// (DOMID_INVALID), evtchn 17; in-data-len 2, out-resp-len 3,
		// out-data-len 3; data "ab" then "xyz": 24+5 = 29, padded to 32,
		// then unique-id 0x1122334455667788: len 40.
		name: "ring connection",
		rec: &Connection{ID: 1, Kind: ConnRing, Ring: Ring{DomID: 5, TargetDomID: DomIDInvalid, Evtchn: 17},
			In: []byte("ab"), OutResp: 3, Out: []byte("xyz"), HasUniqueID: true, UniqueID: 0x1122334455667788},
		hex: `02000000 28000000
		      01000000 0000 0100
		      0500 f47f 11000000
		      0200 0300 03000000
		      6162 78797a 000000
		      8877665544332211`,
	},
	{
		// CONNECTION_DATA, socket: conn-id 2, conn-type 1, fields 0;
		// socket-fd 9, pad 0; no data: len 24.
		name: "socket connection",
		rec:  &Connection{ID: 2, Kind: ConnSocket, Socket: 9},
		hex: `02000000 18000000
		      02000000 0100 0000
		      09000000 00000000
		      0000 0000 00000000`,
	},
	{
		// GLOBAL_QUOTA_DATA: type 6. n-dom-quota 1, n-glob-quota 1,
		// values 1000 (0x3e8) and 0, names "nodes\0" "x\0": 4+8+8 = 20,
		// padded to 24.
		name: "global quota",
		rec:  &GlobalQuota{PerDomain: []Quota{{"nodes", 1000}}, Global: []Quota{{"x", 0}}},
		hex: `06000000 18000000
		      0100 0100 e8030000
		      00000000 6e6f6465
		      7300 7800 00000000`,
	},
	{
		// DOMAIN_DATA: type 7. domain-id 3, n-quota 1, features 1, value
		// 1000, name "nodes\0": 8+4+6 = 18, padded to 24.
		name: "domain",
		rec:  &Domain{DomID: 3, Features: 1, Quotas: []Quota{{"nodes", 1000}}},
		hex: `07000000 18000000
		      0300 0100 01000000
		      e8030000 6e6f6465
		      7300 000000000000`,
	},
}

// Header: ident "xenstore", version 2 and flags 0 (little endian), both
// big endian whatever the flag says. END: type 0, len 0.
const (
	goldenHeaderV2 = `78656e73 746f7265 00000002 00000000`
	goldenEnd      = `00000000 00000000`
)

func TestGolden(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			want := unhex(t, goldenHeaderV2+g.hex+goldenEnd)
			got := encode(t, Version2, g.rec)
			if !bytes.Equal(got, want) {
				t.Errorf("encoded\n%s\nwant\n%s", hex.Dump(got), hex.Dump(want))
			}
			_, recs, err := readAll(want, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 {
				t.Fatalf("%d records", len(recs))
			}
			if d := diff(g.rec, recs[0]); d != "" {
				t.Error(d)
			}
		})
	}
}

// TestUnpaddedLen: the spec's table says len is "the length of body" with
// the padding after it; C xenstored writes len including the padding. A
// stream with the unpadded len reads the same.
func TestUnpaddedLen(t *testing.T) {
	// The watch golden with len 13 instead of 16.
	b := unhex(t, goldenHeaderV2+`03000000 0d000000
		01000000 0300 0200 2f6100 7400 000000`+goldenEnd)
	_, recs, err := readAll(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(&Watch{ConnID: 1, Path: "/a", Token: "t"}, recs[0]); d != "" {
		t.Error(d)
	}
}

// TestVersion1Header: version 1 reads; its header differs in one octet.
func TestVersion1Header(t *testing.T) {
	got := encode(t, Version1)
	want := unhex(t, `78656e73 746f7265 00000001 00000000`+goldenEnd)
	if !bytes.Equal(got, want) {
		t.Errorf("v1 empty stream % x, want % x", got, want)
	}
	v, _, err := readAll(want, nil)
	if err != nil || v != Version1 {
		t.Errorf("read: version %d, %v", v, err)
	}
}

// TestCWatchExtended: C xenstored 4.22 writes a depth-limited watch as
// fwrite(&swe, sizeof(sw)): only conn-id, wpath-len and token-len (8
// octets), then path and token, then padding; its len counts the 12-octet
// struct. For path "/a" and token "" both come to 16 octets, so the stream
// stays framed, but the octets where the spec has depth and pad hold the
// path. The Reader must refuse it rather than invent a watch.
func TestCWatchExtended(t *testing.T) {
	b := unhex(t, goldenHeaderV2+`08000000 10000000
		01000000 0300 0100 2f6100 00 00000000`+goldenEnd)
	for _, opts := range []*ReaderOptions{nil, {IgnoreReserved: true}} {
		_, recs, err := readAll(b, opts)
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNonZero) {
			t.Errorf("read %+v, %v; want a refusal", recs, err)
		}
	}
}

// TestCShapedStream: a stream laid out as C xenstored 4.22's lu_dump_state
// writes it (global, global quota with n-glob-quota 0 and "soft-" names,
// connections each followed by their watches, nodes from "/" down, the two
// @-nodes, domains), with the uninitialised tail padding C leaves in
// GLOBAL_QUOTA_DATA and DOMAIN_DATA, reads with IgnoreReserved.
func TestCShapedStream(t *testing.T) {
	quota := &GlobalQuota{PerDomain: []Quota{{"nodes", 1000}, {"soft-nodes", 900}, {"watches", 128}}}
	dom := &Domain{DomID: 1, Features: 1, Quotas: []Quota{{"nodes", 1000}}}
	recs := []Record{
		&Global{SocketFD: 5, EvtchnFD: 6},
		quota,
		&Connection{ID: 1, Kind: ConnSocket, Socket: 9, Out: wireMsg(0, 33, 0, "OK\x00")},
		&Connection{ID: 2, Kind: ConnRing, Ring: Ring{DomID: 1, TargetDomID: DomIDInvalid, Evtchn: 3},
			HasUniqueID: true, UniqueID: 0x1234},
		&Watch{ConnID: 2, Path: "domid", Token: "t"},
		&Node{Path: "/", Perms: []Perm{{Perm: PermRead}}},
		&Node{Path: "/local", Perms: []Perm{{Perm: PermRead}}},
		&Node{Path: "@releaseDomain", Perms: []Perm{{Perm: PermNone}}},
		&Node{Path: "@introduceDomain", Perms: []Perm{{Perm: PermNone}}},
		dom,
	}
	b := encode(t, Version2, recs...)
	// Dirty the padding of the quota and domain records: quota's body is
	// 4+12+25 = 41 octets padded to 48, the domain's 8+4+6 = 18 padded to 24.
	qOff := HeaderSize + 8 + 8 // after GLOBAL_DATA
	for i := qOff + 8 + 41; i < qOff+8+48; i++ {
		b[i] = 0xa5
	}
	dOff := len(b) - 8 - (8 + 24)
	for i := dOff + 8 + 18; i < dOff+8+24; i++ {
		b[i] = 0x5a
	}
	if _, _, err := readAll(b, nil); !errors.Is(err, ErrNonZero) {
		t.Fatalf("strict read: %v, want ErrNonZero", err)
	}
	_, got, err := readAll(b, &ReaderOptions{IgnoreReserved: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		if d := diff(recs[i], got[i]); d != "" {
			t.Errorf("record %d: %s", i, d)
		}
	}
	if err := (&Stream{Version: Version2, Records: got}).Validate(nil); err != nil {
		t.Error(err)
	}
}
