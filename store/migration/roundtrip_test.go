package migration

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

// rtCase is one record for the round-trip table. v1 says whether a
// version 1 stream can hold it too.
type rtCase struct {
	name string
	rec  Record
	v1   bool
}

// wireMsg builds a xenstore wire message: header and payload.
func wireMsg(typ, req, tx uint32, payload string) []byte {
	b := le.AppendUint32(nil, typ)
	b = le.AppendUint32(b, req)
	b = le.AppendUint32(b, tx)
	b = le.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

func rtCases() []rtCase {
	read := wireMsg(2, 7, 0, "/local/domain/1/name\x00")
	partial := wireMsg(11, 8, 3, "/a\x00value")[:20] // header and 4 octets of payload
	event := wireMsg(15, 0, 0, "/a\x00tok\x00")
	reply := wireMsg(2, 7, 0, "guest")
	many := make([]Perm, 300)
	for i := range many {
		many[i] = Perm{Perm: "nrwb"[i%4], Flags: uint8(i % 2), DomID: uint16(i)}
	}
	return []rtCase{
		{"global", &Global{SocketFD: 3, EvtchnFD: 4}, true},
		{"global no socket", &Global{SocketFD: -1, EvtchnFD: 7}, true},
		{"ring idle", &Connection{ID: 1, Kind: ConnRing,
			Ring: Ring{DomID: 1, TargetDomID: DomIDInvalid, Evtchn: 17}, HasUniqueID: true, UniqueID: 0xdeadbeefcafe}, true},
		{"ring target, no unique-id", &Connection{ID: 9, Kind: ConnRing,
			Ring: Ring{DomID: 5, TargetDomID: 4, Evtchn: 1}}, true},
		{"ring partial request", &Connection{ID: 2, Kind: ConnRing,
			Ring: Ring{DomID: 2, TargetDomID: DomIDInvalid, Evtchn: 9},
			In:   cat(read, partial), HasUniqueID: true, UniqueID: 1}, true},
		{"ring partial header only", &Connection{ID: 3, Kind: ConnRing,
			Ring: Ring{DomID: 3, TargetDomID: DomIDInvalid, Evtchn: 9},
			In:   read[:5], HasUniqueID: true, UniqueID: 2}, true},
		{"ring unsent output with partial reply", &Connection{ID: 4, Kind: ConnRing,
			Ring: Ring{DomID: 4, TargetDomID: DomIDInvalid, Evtchn: 10},
			In:   read, OutResp: 11, Out: cat(reply[10:], event, event), HasUniqueID: true, UniqueID: 3}, true},
		{"socket", &Connection{ID: 5, Kind: ConnSocket, Socket: 12}, true},
		{"socket with live-update reply", &Connection{ID: 6, Kind: ConnSocket, Socket: 13,
			Out: wireMsg(0, 1, 0, "OK\x00")}, true},
		{"socket unique-id, in and out aligned", &Connection{ID: 7, Kind: ConnSocket, Socket: 14,
			In: read[:8], Out: event[:16], HasUniqueID: true, UniqueID: ^uint64(0)}, true},
		{"watch", &Watch{ConnID: 1, Path: "/local/domain/1/device", Token: "backend"}, true},
		{"watch relative, empty token", &Watch{ConnID: 2, Path: "device/vif", Token: ""}, true},
		{"watch special", &Watch{ConnID: 2, Path: "@releaseDomain", Token: "0xffff8880"}, true},
		{"watch extended", &WatchExtended{ConnID: 1, Path: "/local", Token: "t", Depth: 2}, false},
		{"watch extended depth 0", &WatchExtended{ConnID: 3, Path: "/", Token: "root", Depth: 0}, false},
		{"watch extended unlimited", &WatchExtended{ConnID: 3, Path: "/x", Token: "12345678", Depth: DepthUnlimited}, false},
		{"transaction", &Transaction{ConnID: 4, TxID: 0x10}, true},
		{"node root", &Node{Path: "/", Perms: []Perm{{Perm: PermRead, DomID: 0}}}, true},
		{"node value", &Node{Path: "/local/domain/1/name", Value: []byte("guest1"),
			Perms: []Perm{{Perm: PermNone, DomID: 1}, {Perm: PermRead, DomID: 0}}}, true},
		{"node binary value", &Node{Path: "/bin", Value: []byte{0, 1, 0, 0xff, 0}, Perms: []Perm{{Perm: PermBoth, DomID: 7}}}, true},
		{"node stale perm", &Node{Path: "/a", Perms: []Perm{{Perm: PermWrite, DomID: 0}, {Perm: PermRead, Flags: PermFlagIgnore, DomID: 12}}}, true},
		{"node many perms", &Node{Path: "/p", Value: []byte("v"), Perms: many}, true},
		{"node max value", &Node{Path: "/big", Value: bytes.Repeat([]byte("x"), 65535), Perms: []Perm{{Perm: PermNone}}}, true},
		{"node special", &Node{Path: "@introduceDomain", Perms: []Perm{{Perm: PermNone}}}, true},
		{"node pending written", &Node{ConnID: 4, TxID: 0x10, Access: AccessRead | AccessWritten,
			Path: "/local/domain/4/x", Value: []byte("1"), Perms: []Perm{{Perm: PermNone, DomID: 4}}}, true},
		{"node pending read", &Node{ConnID: 4, TxID: 0x10, Access: AccessRead,
			Path: "/local/domain/4", Perms: []Perm{{Perm: PermNone, DomID: 4}}}, true},
		{"node pending deleted", &Node{ConnID: 4, TxID: 0x10, Path: "/local/domain/4/y"}, true},
		{"global quota", &GlobalQuota{
			PerDomain: []Quota{{"nodes", 1000}, {"watches", 128}, {"soft-memory", 0}},
			Global:    []Quota{{"transaction-nodes", 1024}}}, true},
		{"global quota per-domain only", &GlobalQuota{PerDomain: []Quota{{"nodes", 1}}}, true},
		{"global quota empty", &GlobalQuota{}, true},
		{"domain", &Domain{DomID: 1, Features: 1, Quotas: []Quota{{"nodes", 2000}, {"memory", 0}}}, false},
		{"domain v1", &Domain{DomID: 0x7ff0, Quotas: []Quota{{"x-impl-specific", 5}}}, true},
		{"domain bare", &Domain{DomID: 0}, true},
	}
}

// encode writes records into a version v stream with END.
func encode(t testing.TB, v uint32, recs ...Record) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, &WriterOptions{Version: v})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.WriteRecord(r); err != nil {
			t.Fatalf("WriteRecord(%+v): %v", r, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readAll reads a whole stream.
func readAll(b []byte, opts *ReaderOptions) (uint32, []Record, error) {
	r, err := NewReader(bytes.NewReader(b), opts)
	if err != nil {
		return 0, nil, err
	}
	var recs []Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return r.Version(), recs, nil
		}
		if err != nil {
			return r.Version(), recs, err
		}
		recs = append(recs, rec)
	}
}

// diff describes the first field that differs between two records.
func diff(want, got Record) string {
	if want == nil || got == nil || reflect.TypeOf(want) != reflect.TypeOf(got) {
		return fmt.Sprintf("record %T, want %T", got, want)
	}
	wv, gv := reflect.ValueOf(want).Elem(), reflect.ValueOf(got).Elem()
	for i := 0; i < wv.NumField(); i++ {
		if !reflect.DeepEqual(wv.Field(i).Interface(), gv.Field(i).Interface()) {
			return fmt.Sprintf("%T.%s = %#v, want %#v", got, wv.Type().Field(i).Name,
				gv.Field(i).Interface(), wv.Field(i).Interface())
		}
	}
	return ""
}

func TestRoundTrip(t *testing.T) {
	for _, v := range []uint32{Version1, Version2} {
		for _, c := range rtCases() {
			if v == Version1 && !c.v1 {
				continue
			}
			t.Run(fmt.Sprintf("v%d/%s", v, c.name), func(t *testing.T) {
				b := encode(t, v, c.rec)
				if len(b)%8 != 0 {
					t.Errorf("stream of %d octets, not a multiple of 8", len(b))
				}
				gotV, recs, err := readAll(b, nil)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if gotV != v || len(recs) != 1 {
					t.Fatalf("version %d, %d records; want %d, 1", gotV, len(recs), v)
				}
				if d := diff(c.rec, recs[0]); d != "" {
					t.Error(d)
				}
				// Lenient reading gives the same record.
				_, lrecs, err := readAll(b, &ReaderOptions{IgnoreReserved: true, SkipUnknown: true})
				if err != nil || len(lrecs) != 1 || !reflect.DeepEqual(lrecs[0], recs[0]) {
					t.Errorf("lenient read: %v, %+v", err, lrecs)
				}
			})
		}
	}
}

// TestRoundTripStream puts every record in one stream, in the order C
// xenstored dumps them, and reads them back in order.
func TestRoundTripStream(t *testing.T) {
	var all []Record
	for _, c := range rtCases() {
		all = append(all, c.rec)
	}
	b := encode(t, Version2, all...)
	_, recs, err := readAll(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(all) {
		t.Fatalf("%d records, want %d", len(recs), len(all))
	}
	for i := range all {
		if d := diff(all[i], recs[i]); d != "" {
			t.Errorf("record %d: %s", i, d)
		}
	}
}

func TestEmptyStream(t *testing.T) {
	b := encode(t, Version2)
	want := "xenstore\x00\x00\x00\x02\x00\x00\x00\x00" + strings.Repeat("\x00", 8)
	if string(b) != want {
		t.Errorf("empty stream % x, want % x", b, want)
	}
	r, err := NewReader(bytes.NewReader(b), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if rec, err := r.Next(); rec != nil || err != io.EOF {
			t.Fatalf("Next #%d = %v, %v; want nil, io.EOF", i, rec, err)
		}
	}
}

// TestRecordsIndependent: a record's slices do not alias another's.
func TestRecordsIndependent(t *testing.T) {
	b := encode(t, Version2,
		&Node{Path: "/a", Value: []byte("aaaa"), Perms: []Perm{{Perm: PermNone}}},
		&Node{Path: "/b", Value: []byte("bbbb"), Perms: []Perm{{Perm: PermNone}}})
	_, recs, err := readAll(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := recs[0].(*Node)
	a.Value[0] = 'X'
	if cap(a.Value) != len(a.Value) {
		t.Errorf("value has spare capacity %d: an append would write into the record's buffer", cap(a.Value)-len(a.Value))
	}
	if got := string(recs[1].(*Node).Value); got != "bbbb" {
		t.Errorf("second node's value %q after changing the first's", got)
	}
	b[len(b)-20] ^= 0xff // the reader copied what it returned
	if got := string(recs[1].(*Node).Value); got != "bbbb" {
		t.Errorf("node value %q after changing the input", got)
	}
}

func TestWriterRejects(t *testing.T) {
	cases := []struct {
		name string
		v    uint32
		rec  Record
		want error
	}{
		{"nil", Version2, nil, ErrInvalid},
		{"conn id 0", Version2, &Connection{Kind: ConnSocket, Socket: 1}, ErrInvalid},
		{"conn kind", Version2, &Connection{ID: 1, Kind: 2}, ErrInvalid},
		{"socket with ring", Version2, &Connection{ID: 1, Kind: ConnSocket, Ring: Ring{DomID: 1}}, ErrInvalid},
		{"ring with socket", Version2, &Connection{ID: 1, Kind: ConnRing, Socket: 3}, ErrInvalid},
		{"out-resp > out", Version2, &Connection{ID: 1, Kind: ConnSocket, OutResp: 3, Out: []byte("ab")}, ErrInvalid},
		{"in too long", Version2, &Connection{ID: 1, Kind: ConnSocket, In: make([]byte, 65536)}, ErrInvalid},
		{"unique-id without flag", Version2, &Connection{ID: 1, Kind: ConnRing, UniqueID: 4}, ErrInvalid},
		{"watch path NUL", Version2, &Watch{ConnID: 1, Path: "/a\x00b", Token: "t"}, ErrInvalid},
		{"watch token NUL", Version2, &Watch{ConnID: 1, Path: "/a", Token: "t\x00"}, ErrInvalid},
		{"watch path 65535", Version2, &Watch{ConnID: 1, Path: strings.Repeat("a", 65535), Token: "t"}, ErrInvalid},
		{"watch extended v1", Version1, &WatchExtended{ConnID: 1, Path: "/", Token: "t"}, ErrNotInVersion},
		{"node perm letter", Version2, &Node{Path: "/a", Perms: []Perm{{Perm: 'x'}}}, ErrInvalid},
		{"node perm flags", Version2, &Node{Path: "/a", Perms: []Perm{{Perm: 'r', Flags: 2}}}, ErrInvalid},
		{"node committed tx", Version2, &Node{Path: "/a", TxID: 3, Perms: []Perm{{Perm: 'r'}}}, ErrInvalid},
		{"node committed access", Version2, &Node{Path: "/a", Access: AccessRead, Perms: []Perm{{Perm: 'r'}}}, ErrInvalid},
		{"node access bits", Version2, &Node{ConnID: 1, TxID: 1, Path: "/a", Access: 4}, ErrInvalid},
		{"node value too long", Version2, &Node{Path: "/a", Value: make([]byte, 65536)}, ErrInvalid},
		{"node path NUL", Version2, &Node{Path: "/a\x00"}, ErrInvalid},
		{"quota empty name", Version2, &GlobalQuota{Global: []Quota{{"", 1}}}, ErrInvalid},
		{"quota name NUL", Version2, &Domain{Quotas: []Quota{{"a\x00b", 1}}}, ErrInvalid},
		{"domain features v1", Version1, &Domain{DomID: 1, Features: 1}, ErrNotInVersion},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, &WriterOptions{Version: c.v})
			if err != nil {
				t.Fatal(err)
			}
			err = w.WriteRecord(c.rec)
			var re *RecordError
			if !errors.Is(err, c.want) || !errors.As(err, &re) {
				t.Fatalf("WriteRecord = %v, want %v in a *RecordError", err, c.want)
			}
			if buf.Len() != HeaderSize {
				t.Errorf("%d octets written after a refused record", buf.Len())
			}
			// The writer goes on.
			if err := w.WriteRecord(&Transaction{ConnID: 1, TxID: 1}); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if _, recs, err := readAll(buf.Bytes(), nil); err != nil || len(recs) != 1 {
				t.Errorf("read back: %v, %d records", err, len(recs))
			}
		})
	}
}

func TestWriterCap(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, &WriterOptions{MaxRecordSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	err = w.WriteRecord(&Node{Path: "/a", Value: make([]byte, 100), Perms: []Perm{{Perm: 'n'}}})
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("WriteRecord = %v, want ErrTooLarge", err)
	}
	if _, err := NewWriter(&buf, &WriterOptions{Version: 3}); !errors.Is(err, ErrVersion) {
		t.Errorf("NewWriter(version 3) = %v, want ErrVersion", err)
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("disk full")
	}
	f.n--
	return len(p), nil
}

func TestWriterErrorsStick(t *testing.T) {
	if _, err := NewWriter(&failWriter{}, nil); err == nil {
		t.Fatal("NewWriter on a failing writer succeeded")
	}
	w, err := NewWriter(&failWriter{n: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err1 := w.WriteRecord(&Transaction{ConnID: 1, TxID: 1})
	if err1 == nil || !strings.Contains(err1.Error(), "disk full") {
		t.Fatalf("WriteRecord = %v, want disk full", err1)
	}
	if err := w.WriteRecord(&Transaction{ConnID: 1, TxID: 1}); err != err1 {
		t.Errorf("second WriteRecord = %v, want the first error", err)
	}
	if err := w.Close(); err != err1 {
		t.Errorf("Close = %v, want the first error", err)
	}
	var buf bytes.Buffer
	w, _ = NewWriter(&buf, nil)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRecord(&Transaction{ConnID: 1, TxID: 1}); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteRecord after Close = %v, want ErrClosed", err)
	}
}
