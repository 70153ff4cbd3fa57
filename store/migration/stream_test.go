package migration

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// validStream is a consistent dump in C xenstored's order: global data,
// global quota, each connection followed by its watches, transactions,
// nodes parents first (pending ones after their transaction), the
// @-nodes, domains.
func validStream() *Stream {
	req := wireMsg(2, 1, 0, "/local\x00")
	evt := wireMsg(15, 0, 0, "/local/domain/1\x00tok\x00")
	owner1 := []Perm{{Perm: PermNone, DomID: 1}}
	dom0 := []Perm{{Perm: PermNone, DomID: 0}}
	return &Stream{Version: Version2, Records: []Record{
		&Global{SocketFD: 3, EvtchnFD: 4},
		&GlobalQuota{PerDomain: []Quota{{"nodes", 1000}, {"soft-nodes", 800}}, Global: []Quota{{"transaction-nodes", 1024}}},
		&Connection{ID: 1, Kind: ConnSocket, Socket: 7, In: req[:20], OutResp: 5, Out: cat(evt[len(evt)-5:], evt)},
		&Watch{ConnID: 1, Path: "@releaseDomain", Token: "r"},
		&Connection{ID: 2, Kind: ConnRing, Ring: Ring{DomID: 1, TargetDomID: DomIDInvalid, Evtchn: 5},
			In: cat(req, req[:3]), HasUniqueID: true, UniqueID: 99},
		&WatchExtended{ConnID: 2, Path: "device", Token: "d", Depth: 1},
		&Watch{ConnID: 2, Path: "device", Token: "e"},
		&Transaction{ConnID: 2, TxID: 3},
		&Node{Path: "/", Perms: dom0},
		&Node{Path: "/local", Perms: []Perm{{Perm: PermRead, DomID: 0}}},
		&Node{Path: "/local/domain", Perms: []Perm{{Perm: PermRead, DomID: 0}}},
		&Node{Path: "/local/domain/1", Perms: owner1},
		&Node{Path: "/local/domain/1/device", Perms: owner1, Value: []byte("")},
		&Node{ConnID: 2, TxID: 3, Access: AccessWritten, Path: "/local/domain/1/device/x", Perms: owner1, Value: []byte("1")},
		&Node{ConnID: 2, TxID: 3, Path: "/local/domain/1/gone"},
		&Node{Path: "@releaseDomain", Perms: dom0},
		&Node{Path: "@introduceDomain", Perms: dom0},
		&Domain{DomID: 0, Features: 1},
		&Domain{DomID: 1, Features: 1, Quotas: []Quota{{"nodes", 10}}},
	}}
}

func TestStreamRoundTrip(t *testing.T) {
	s := validStream()
	if err := s.Validate(nil); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Write(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := ReadStream(bytes.NewReader(buf.Bytes()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != s.Version || len(got.Records) != len(s.Records) {
		t.Fatalf("version %d, %d records", got.Version, len(got.Records))
	}
	for i := range s.Records {
		// An empty value reads back nil.
		if n, ok := s.Records[i].(*Node); ok && len(n.Value) == 0 {
			n.Value = nil
		}
		if d := diff(s.Records[i], got.Records[i]); d != "" {
			t.Errorf("record %d: %s", i, d)
		}
	}
	if err := got.Validate(nil); err != nil {
		t.Error(err)
	}
	if _, err := ReadStream(bytes.NewReader(buf.Bytes()[:buf.Len()-1]), nil); !errors.Is(err, ErrTruncated) {
		t.Errorf("truncated ReadStream: %v", err)
	}
}

func TestValidate(t *testing.T) {
	type edit func(s *Stream)
	set := func(i int, r Record) edit { return func(s *Stream) { s.Records[i] = r } }
	ins := func(i int, r Record) edit {
		return func(s *Stream) { s.Records = append(s.Records[:i], append([]Record{r}, s.Records[i:]...)...) }
	}
	del := func(i int) edit { return func(s *Stream) { s.Records = append(s.Records[:i], s.Records[i+1:]...) } }
	swap := func(i, j int) edit {
		return func(s *Stream) { s.Records[i], s.Records[j] = s.Records[j], s.Records[i] }
	}
	owner := []Perm{{Perm: PermNone, DomID: 1}}
	cases := []struct {
		name  string
		edit  edit
		index int
		want  string
	}{
		{"second global", ins(1, &Global{SocketFD: -1}), 1, "second GLOBAL_DATA"},
		{"global fd", set(0, &Global{SocketFD: -2, EvtchnFD: 3}), 0, "descriptors"},
		{"second global quota", ins(2, &GlobalQuota{}), 2, "second GLOBAL_QUOTA_DATA"},
		{"quota name twice", set(1, &GlobalQuota{Global: []Quota{{"a", 1}, {"a", 2}}}), 1, `global quota "a" again`},
		{"watch before connection", swap(2, 3), 2, "before or without its CONNECTION_DATA"},
		{"watch without connection", set(3, &Watch{ConnID: 9, Path: "/", Token: "t"}), 3, "before or without its CONNECTION_DATA"},
		{"watch twice", ins(4, &Watch{ConnID: 1, Path: "@releaseDomain", Token: "r"}), 4, "again"},
		{"extended watch duplicates plain", set(6, &Watch{ConnID: 2, Path: "device", Token: "d"}), 6, "again"},
		{"watch empty path", set(3, &Watch{ConnID: 1, Path: "", Token: "t"}), 3, "empty path"},
		{"connection id twice", set(4, &Connection{ID: 1, Kind: ConnSocket, Socket: 8}), 4, "connection id 1 again"},
		{"ring domid reserved", set(4, &Connection{ID: 2, Kind: ConnRing, Ring: Ring{DomID: 0x7ff0, TargetDomID: DomIDInvalid}}), 4, "domid 0x7ff0 is reserved"},
		{"ring target self", set(4, &Connection{ID: 2, Kind: ConnRing, Ring: Ring{DomID: 1, TargetDomID: 1}}), 4, "tdomid"},
		{"socket fd", set(2, &Connection{ID: 1, Kind: ConnSocket, Socket: -1}), 2, "socket-fd -1"},
		{"in-data payload too long", set(2, &Connection{ID: 1, Kind: ConnSocket, Socket: 7, In: wireMsg(2, 1, 0, strings.Repeat("a", 4097))}), 2, "in-data"},
		{"out-data partial message", set(2, &Connection{ID: 1, Kind: ConnSocket, Socket: 7, Out: wireMsg(2, 1, 0, "abc")[:18]}), 2, "out-data"},
		{"out-data partial header", set(2, &Connection{ID: 1, Kind: ConnSocket, Socket: 7, Out: wireMsg(2, 1, 0, "abc")[:5]}), 2, "out-data"},
		{"out-resp past out", set(2, &Connection{ID: 1, Kind: ConnSocket, Socket: 7, OutResp: 9}), 2, "exceeds out-data-len"},
		{"transaction without connection", set(7, &Transaction{ConnID: 5, TxID: 3}), 7, "TRANSACTION_DATA"},
		{"transaction id 0", ins(8, &Transaction{ConnID: 2, TxID: 0}), 8, "transaction id 0"},
		{"transaction twice", ins(8, &Transaction{ConnID: 2, TxID: 3}), 8, "again"},
		{"pending node before transaction", swap(7, 13), 7, "before or without its TRANSACTION_DATA"},
		{"pending node twice", ins(14, &Node{ConnID: 2, TxID: 3, Path: "/local/domain/1/device/x", Access: AccessRead, Perms: owner}), 14, "again"},
		{"pending deleted with access", set(14, &Node{ConnID: 2, TxID: 3, Path: "/x", Access: AccessRead}), 14, "deleted in a transaction"},
		{"pending deleted with value", set(14, &Node{ConnID: 2, TxID: 3, Path: "/x", Value: []byte("v")}), 14, "deleted in a transaction"},
		{"pending with perms, access 0", set(14, &Node{ConnID: 2, TxID: 3, Path: "/x", Perms: owner}), 14, "access 0"},
		{"child before parent", swap(10, 11), 10, `before or without its parent "/local/domain"`},
		{"parent missing", del(9), 9, `parent "/local"`},
		{"committed twice", ins(10, &Node{Path: "/local", Perms: owner}), 10, "again"},
		{"committed no owner", set(11, &Node{Path: "/local/domain/1"}), 11, "no permissions"},
		{"relative node", set(11, &Node{Path: "local/domain/1", Perms: owner}), 11, "neither absolute"},
		{"trailing slash", set(11, &Node{Path: "/local/domain/1/", Perms: owner}), 11, "trailing"},
		{"empty component", set(11, &Node{Path: "/local//1", Perms: owner}), 11, "empty path component"},
		{"special with slash", set(15, &Node{Path: "@release/Domain", Perms: owner}), 15, "special"},
		{"empty node path", set(15, &Node{Path: "", Perms: owner}), 15, "empty path"},
		{"domain twice", set(18, &Domain{DomID: 0}), 18, "domain 0 again"},
		{"domain reserved", set(18, &Domain{DomID: DomIDInvalid}), 18, "reserved"},
		{"domain quota twice", set(18, &Domain{DomID: 1, Quotas: []Quota{{"n", 1}, {"n", 1}}}), 18, `domain 1 quota "n" again`},
		{"nil record", ins(0, nil), 0, "nil record"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := validStream()
			c.edit(s)
			err := s.Validate(nil)
			if !errors.Is(err, ErrInconsistent) {
				t.Fatalf("Validate = %v, want ErrInconsistent", err)
			}
			var re *RecordError
			if !errors.As(err, &re) || re.Index != c.index || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Validate = %v; want record %d and %q", err, c.index, c.want)
			}
		})
	}
}

// TestValidateExisting: a stream for migration holds one domain's nodes,
// whose parents the receiving store already has.
func TestValidateExisting(t *testing.T) {
	s := &Stream{Version: Version2, Records: []Record{
		&Node{Path: "/local/domain/7", Perms: []Perm{{Perm: PermNone, DomID: 7}}},
		&Node{Path: "/local/domain/7/name", Perms: []Perm{{Perm: PermNone, DomID: 7}}, Value: []byte("g")},
	}}
	if err := s.Validate(nil); err == nil || !strings.Contains(err.Error(), `parent "/local/domain"`) {
		t.Errorf("Validate(nil) = %v, want a missing parent", err)
	}
	if err := s.Validate(&ValidateOptions{Existing: []string{"/", "/local", "/local/domain"}}); err != nil {
		t.Errorf("Validate(existing) = %v", err)
	}
}

// TestValidateJoins: every problem is reported, in order.
func TestValidateJoins(t *testing.T) {
	s := &Stream{Version: Version2, Records: []Record{
		&Watch{ConnID: 1, Path: "/", Token: "t"},
		&Transaction{ConnID: 1, TxID: 1},
		&Node{Path: "/a/b", Perms: []Perm{{Perm: PermNone}}},
	}}
	err := s.Validate(nil)
	var j interface{ Unwrap() []error }
	if !errors.As(err, &j) || len(j.Unwrap()) != 3 {
		t.Fatalf("Validate = %v, want 3 errors", err)
	}
	for i, e := range j.Unwrap() {
		var re *RecordError
		if !errors.As(e, &re) || re.Index != i {
			t.Errorf("error %d: %v", i, e)
		}
	}
	if j.Unwrap()[1].(*RecordError).Offset != HeaderSize+24 {
		t.Errorf("offset of record 1: %d, want %d", j.Unwrap()[1].(*RecordError).Offset, HeaderSize+24)
	}
}

func TestStreamWriteVersion1(t *testing.T) {
	s := &Stream{Version: Version1, Records: []Record{&Domain{DomID: 1, Features: 1}}}
	if err := s.Write(&bytes.Buffer{}); !errors.Is(err, ErrNotInVersion) {
		t.Errorf("Write = %v, want ErrNotInVersion", err)
	}
	s.Records[0].(*Domain).Features = 0
	var buf bytes.Buffer
	if err := s.Write(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := ReadStream(&buf, nil)
	if err != nil || got.Version != Version1 || !reflect.DeepEqual(got.Records, s.Records) {
		t.Errorf("ReadStream = %+v, %v", got, err)
	}
}
