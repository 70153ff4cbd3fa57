package migration

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// hdr is a stream header with the given version and flags.
func hdr(v, flags uint32) []byte {
	b := []byte(Ident)
	b = binary.BigEndian.AppendUint32(b, v)
	return binary.BigEndian.AppendUint32(b, flags)
}

// rawRec is a record header with an explicit len, then body as given
// (hex, padding included or not).
func rawRec(t testing.TB, typ RecordType, n uint32, bodyHex string) []byte {
	b := le.AppendUint32(nil, uint32(typ))
	b = le.AppendUint32(b, n)
	return append(b, unhex(t, bodyHex)...)
}

var endRec = make([]byte, 8)

type malformedCase struct {
	name string
	in   []byte
	want error
	// index of the failing record, -1 for the header
	index int
	// lenient: with IgnoreReserved and SkipUnknown the stream reads
	lenient bool
}

func malformedCases(t testing.TB) []malformedCase {
	v2 := hdr(2, 0)
	s := func(parts ...[]byte) []byte { return cat(append([][]byte{v2}, parts...)...) }
	r := func(typ RecordType, n uint32, body string) []byte { return rawRec(t, typ, n, body) }
	goodWatch := r(TypeWatch, 16, `01000000 0300 0200 2f6100 7400 000000`)
	return []malformedCase{
		// Header.
		{name: "empty", in: nil, want: ErrTruncated, index: -1},
		{name: "short header", in: v2[:10], want: ErrTruncated, index: -1},
		{name: "bad ident", in: cat([]byte("xenstorf"), v2[8:], endRec), want: ErrHeader, index: -1},
		{name: "ident with NUL", in: cat([]byte("xenstor\x00"), v2[8:], endRec), want: ErrHeader, index: -1},
		{name: "version 0", in: cat(hdr(0, 0), endRec), want: ErrVersion, index: -1},
		{name: "version 3", in: cat(hdr(3, 0), endRec), want: ErrVersion, index: -1},
		{name: "version little endian", in: cat([]byte(Ident), unhex(t, `02000000 00000000`), endRec), want: ErrVersion, index: -1},
		{name: "big endian", in: cat(hdr(2, 1), endRec), want: ErrBigEndian, index: -1},
		{name: "reserved flag", in: cat(hdr(2, 2), endRec), want: ErrHeader, index: -1},
		{name: "flags little endian", in: cat(hdr(2, 0x01000000), endRec), want: ErrHeader, index: -1},

		// Framing.
		{name: "no END", in: s(goodWatch), want: ErrTruncated, index: 1},
		{name: "no records", in: v2, want: ErrTruncated, index: 0},
		{name: "short record header", in: s(goodWatch, endRec[:4]), want: ErrTruncated, index: 1},
		{name: "short body", in: s(goodWatch[:20]), want: ErrTruncated, index: 0},
		{name: "missing padding", in: s(r(TypeWatch, 13, `01000000 0300 0200 2f6100 7400`)), want: ErrTruncated, index: 0},
		{name: "len over cap", in: s(r(TypeNode, 0xffffffff, ``)), want: ErrTooLarge, index: 0},
		{name: "len over cap, unknown type", in: s(r(9, DefaultMaxRecordSize+1, ``)), want: ErrTooLarge, index: 0},
		{name: "unknown type", in: s(r(9, 8, `0102030405060708`), endRec), want: ErrUnknownType, index: 0, lenient: true},
		{name: "unknown type 0xffffffff", in: s(goodWatch, r(0xffffffff, 3, `010203 0000000000`), endRec), want: ErrUnknownType, index: 1, lenient: true},
		{name: "unknown type truncated", in: s(r(9, 16, `0102030405060708`)), want: ErrUnknownType, index: 0},
		{name: "END with len", in: s(r(TypeEnd, 8, `0000000000000000`)), want: ErrMalformed, index: 0},
		{name: "trailing garbage", in: s(endRec, []byte{0}), want: ErrTrailingData, index: 0},
		{name: "trailing record", in: s(endRec, goodWatch), want: ErrTrailingData, index: 0},
		{name: "extended watch in version 1", in: cat(hdr(1, 0),
			r(TypeWatchExtended, 24, `01000000 0300 0200 0200 0000 2f6100 7400 00000000000000`), endRec),
			want: ErrNotInVersion, index: 0},

		// Padding and lengths.
		{name: "non-zero padding", in: s(r(TypeWatch, 16, `01000000 0300 0200 2f6100 7400 000100`), endRec),
			want: ErrNonZero, index: 0, lenient: true},
		{name: "non-zero padding after unpadded len", in: s(r(TypeWatch, 13, `01000000 0300 0200 2f6100 7400 000001`), endRec),
			want: ErrNonZero, index: 0, lenient: true},
		{name: "len 8 octets too long", in: s(r(TypeWatch, 24, `01000000 0300 0200 2f6100 7400 000000 0000000000000000`), endRec),
			want: ErrMalformed, index: 0},
		{name: "len shorter than the fields", in: s(r(TypeWatch, 8, `01000000 0300 0200`), endRec), want: ErrMalformed, index: 0},
		{name: "global short", in: s(r(TypeGlobal, 4, `03000000 00000000`), endRec), want: ErrMalformed, index: 0},
		{name: "global long", in: s(r(TypeGlobal, 16, `03000000 04000000 0000000000000000`), endRec), want: ErrMalformed, index: 0},
		{name: "transaction short", in: s(r(TypeTransaction, 0, ``), endRec), want: ErrMalformed, index: 0},

		// Strings.
		{name: "watch path without NUL", in: s(r(TypeWatch, 16, `01000000 0300 0200 2f6161 7400 000000`), endRec), want: ErrMalformed, index: 0},
		{name: "watch path with NUL inside", in: s(r(TypeWatch, 16, `01000000 0300 0200 2f0000 7400 000000`), endRec), want: ErrMalformed, index: 0},
		{name: "watch path-len 0", in: s(r(TypeWatch, 16, `01000000 0000 0200 7400 000000000000`), endRec), want: ErrMalformed, index: 0},
		{name: "watch token without NUL", in: s(r(TypeWatch, 16, `01000000 0300 0200 2f6100 7474 000000`), endRec), want: ErrMalformed, index: 0},
		{name: "watch lengths past the body", in: s(r(TypeWatch, 16, `01000000 0300 0900 2f6100 7400 000000`), endRec), want: ErrMalformed, index: 0},
		{name: "extended watch non-zero pad", in: s(r(TypeWatchExtended, 24, `01000000 0300 0200 0200 0100 2f6100 7400 00000000000000`), endRec),
			want: ErrNonZero, index: 0, lenient: true},

		// CONNECTION_DATA.
		{name: "conn short", in: s(r(TypeConnection, 16, `01000000 0100 0000 09000000 00000000`), endRec), want: ErrMalformed, index: 0},
		{name: "conn id 0", in: s(r(TypeConnection, 24, `00000000 0100 0000 09000000 00000000 0000 0000 00000000`), endRec), want: ErrMalformed, index: 0},
		{name: "conn type 2", in: s(r(TypeConnection, 24, `01000000 0200 0000 09000000 00000000 0000 0000 00000000`), endRec), want: ErrMalformed, index: 0},
		{name: "conn unknown fields", in: s(r(TypeConnection, 24, `01000000 0100 0200 09000000 00000000 0000 0000 00000000`), endRec), want: ErrMalformed, index: 0},
		{name: "socket pad", in: s(r(TypeConnection, 24, `01000000 0100 0000 09000000 00000100 0000 0000 00000000`), endRec),
			want: ErrNonZero, index: 0, lenient: true},
		{name: "conn out-resp over out", in: s(r(TypeConnection, 24, `01000000 0100 0000 09000000 00000000 0000 0100 00000000`), endRec), want: ErrMalformed, index: 0},
		{name: "conn out-data-len huge", in: s(r(TypeConnection, 24, `01000000 0100 0000 09000000 00000000 0000 0000 ffffffff`), endRec), want: ErrMalformed, index: 0},
		{name: "conn in-data past body", in: s(r(TypeConnection, 32, `01000000 0100 0000 09000000 00000000 0900 0000 00000000 0000000000000000`), endRec), want: ErrMalformed, index: 0},
		{name: "conn data in padding", in: s(r(TypeConnection, 25, `01000000 0100 0000 09000000 00000000 0000 0000 02000000 61 62000000000000`), endRec), want: ErrMalformed, index: 0},
		{name: "conn unique-id missing", in: s(r(TypeConnection, 24, `01000000 0000 0100 0100 f47f 01000000 0000 0000 00000000`), endRec), want: ErrMalformed, index: 0},
		{name: "conn unique-id pad non-zero", in: s(r(TypeConnection, 40, `01000000 0000 0100 0100 f47f 01000000 0100 0000 00000000 61 01000000000000 0100000000000000`), endRec),
			want: ErrNonZero, index: 0, lenient: true},

		// NODE_DATA.
		{name: "node short", in: s(r(TypeNode, 8, `00000000 00000000`), endRec), want: ErrMalformed, index: 0},
		{name: "node perm-count past body", in: s(r(TypeNode, 24, `00000000 00000000 0300 0000 0000 0900 2f6100 0000000000`), endRec), want: ErrMalformed, index: 0},
		{name: "node value-len past body", in: s(r(TypeNode, 24, `00000000 00000000 0300 0900 0000 0000 2f6100 0000000000`), endRec), want: ErrMalformed, index: 0},
		{name: "node path without NUL", in: s(r(TypeNode, 24, `00000000 00000000 0300 0000 0000 0000 2f6161 0000000000`), endRec), want: ErrMalformed, index: 0},
		{name: "node path-len 0", in: s(r(TypeNode, 16, `00000000 00000000 0000 0000 0000 0000`), endRec), want: ErrMalformed, index: 0},
		{name: "node perm letter", in: s(r(TypeNode, 24, `00000000 00000000 0300 0000 0000 0100 7800 0000 2f6100 00`), endRec), want: ErrMalformed, index: 0},
		{name: "node perm flags", in: s(r(TypeNode, 24, `00000000 00000000 0300 0000 0000 0100 7202 0000 2f6100 00`), endRec), want: ErrMalformed, index: 0},
		{name: "node committed tx-id", in: s(r(TypeNode, 24, `00000000 05000000 0300 0000 0000 0100 7200 0000 2f6100 00`), endRec),
			want: ErrNonZero, index: 0, lenient: true},
		{name: "node committed access", in: s(r(TypeNode, 24, `00000000 00000000 0300 0000 0100 0100 7200 0000 2f6100 00`), endRec),
			want: ErrNonZero, index: 0, lenient: true},
		{name: "node pending access bits", in: s(r(TypeNode, 24, `01000000 01000000 0300 0000 0400 0100 7200 0000 2f6100 00`), endRec), want: ErrMalformed, index: 0},

		// Quotas.
		{name: "quota values past body", in: s(r(TypeGlobalQuota, 8, `0200 0000 01000000`), endRec), want: ErrMalformed, index: 0},
		{name: "quota names missing", in: s(r(TypeGlobalQuota, 16, `0100 0100 01000000 02000000`), endRec), want: ErrMalformed, index: 0},
		{name: "quota one name of two", in: s(r(TypeGlobalQuota, 16, `0100 0100 01000000 02000000 6100 000000000000`), endRec), want: ErrMalformed, index: 0},
		{name: "quota name unterminated", in: s(r(TypeGlobalQuota, 16, `0100 0000 01000000 6161616161616161`), endRec), want: ErrMalformed, index: 0},
		{name: "quota name empty", in: s(r(TypeGlobalQuota, 16, `0100 0000 01000000 00 00000000000000`), endRec), want: ErrMalformed, index: 0},
		{name: "quota extra name", in: s(r(TypeGlobalQuota, 16, `0100 0000 01000000 6100 6200 00000000`), endRec), want: ErrNonZero, index: 0, lenient: true},
		{name: "domain short", in: s(r(TypeDomain, 4, `01000000 00000000`), endRec), want: ErrMalformed, index: 0},
		{name: "domain n-quota past body", in: s(r(TypeDomain, 8, `0100 0300 00000000`), endRec), want: ErrMalformed, index: 0},
		{name: "domain features in version 1", in: cat(hdr(1, 0), r(TypeDomain, 8, `0100 0000 01000000`), endRec),
			want: ErrNonZero, index: 0, lenient: true},
		// C xenstored's DOMAIN_DATA: talloc'ed, never cleared, padding.
		{name: "domain garbage padding", in: s(r(TypeDomain, 24, `0100 0100 01000000 e8030000 6e6f646573 00 a5a5a5a5a5a5`), endRec),
			want: ErrNonZero, index: 0, lenient: true},
	}
}

func TestMalformed(t *testing.T) {
	for _, c := range malformedCases(t) {
		t.Run(c.name, func(t *testing.T) {
			_, recs, err := readAll(c.in, nil)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			t.Log(err)
			var re *RecordError
			switch {
			case c.index < 0 && errors.As(err, &re):
				t.Errorf("header error %v is a RecordError", err)
			case c.index >= 0 && len(recs) != c.index:
				t.Errorf("%d records before the error, want %d", len(recs), c.index)
			case c.index >= 0 && !strings.Contains(err.Error(), "record "):
				t.Errorf("error %q does not name the record", err)
			}
			if errors.Is(err, ErrTruncated) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("truncation %v does not wrap io.ErrUnexpectedEOF", err)
			}
			_, _, err = readAll(c.in, &ReaderOptions{IgnoreReserved: true, SkipUnknown: true})
			if c.lenient && err != nil {
				t.Errorf("lenient read: %v", err)
			} else if !c.lenient && err == nil {
				t.Errorf("lenient read succeeded")
			}
		})
	}
}

// TestLenientZeroes: fields the spec says to ignore read back as zero.
func TestLenientZeroes(t *testing.T) {
	in := cat(hdr(1, 0),
		rawRec(t, TypeNode, 24, `00000000 05000000 0300 0000 0300 0100 7200 0000 2f6100 00`),
		rawRec(t, TypeDomain, 8, `0100 0000 01000000`), endRec)
	_, recs, err := readAll(in, &ReaderOptions{IgnoreReserved: true})
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(&Node{Path: "/a", Perms: []Perm{{Perm: PermRead}}}, recs[0]); d != "" {
		t.Error(d)
	}
	if d := diff(&Domain{DomID: 1}, recs[1]); d != "" {
		t.Error(d)
	}
}

func TestSkipUnknownCounts(t *testing.T) {
	in := cat(hdr(2, 0), rawRec(t, 9, 3, `010203 0000000000`), rawRec(t, 0x100, 0, ``),
		rawRec(t, TypeTransaction, 8, `01000000 02000000`), endRec)
	r, err := NewReader(bytes.NewReader(in), &ReaderOptions{SkipUnknown: true})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(&Transaction{ConnID: 1, TxID: 2}, rec); d != "" {
		t.Error(d)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("Next = %v, want io.EOF", err)
	}
	if r.Skipped() != 2 {
		t.Errorf("Skipped = %d, want 2", r.Skipped())
	}
}

func TestReaderErrorSticks(t *testing.T) {
	in := cat(hdr(2, 0), rawRec(t, TypeGlobal, 4, `00000000 00000000`), endRec)
	r, err := NewReader(bytes.NewReader(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err1 := r.Next()
	var re *RecordError
	if !errors.As(err1, &re) || re.Index != 0 || re.Offset != HeaderSize || re.Type != TypeGlobal {
		t.Fatalf("error %#v, want a RecordError for record 0 at 16", err1)
	}
	if _, err := r.Next(); err != err1 {
		t.Errorf("second Next = %v, want the first error", err)
	}
}

// TestRecordErrorOffset: the offset counts the records before.
func TestRecordErrorOffset(t *testing.T) {
	in := cat(hdr(2, 0), rawRec(t, TypeTransaction, 8, `01000000 02000000`),
		rawRec(t, TypeGlobal, 16, `01000000 02000000 0000000000000000`), endRec)
	_, _, err := readAll(in, nil)
	var re *RecordError
	if !errors.As(err, &re) || re.Index != 1 || re.Offset != 32 {
		t.Fatalf("error %v, want record 1 at offset 32", err)
	}
}

// TestReaderCap: a record over a small cap is refused before its body is read.
func TestReaderCap(t *testing.T) {
	b := encode(t, Version2, &Node{Path: "/a", Value: make([]byte, 100), Perms: []Perm{{Perm: 'n'}}})
	if _, _, err := readAll(b, &ReaderOptions{MaxRecordSize: 64}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("err = %v, want ErrTooLarge", err)
	}
}

// TestHugeLenSmallInput: a record claiming the whole cap on a short input
// costs an allocation in proportion to the input, not to the claim.
func TestHugeLenSmallInput(t *testing.T) {
	in := cat(hdr(2, 0), rawRec(t, TypeConnection, DefaultMaxRecordSize, `01000000 0100 0000`))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < 10; i++ {
		if _, _, err := readAll(in, nil); !errors.Is(err, ErrTruncated) {
			t.Fatalf("err = %v, want ErrTruncated", err)
		}
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 10*(1<<20) {
		t.Errorf("10 reads of a %d-octet stream claiming %d allocated %d octets", len(in), DefaultMaxRecordSize, got)
	}
}

// TestOneByteReader: reading through a reader that returns one octet at a
// time, or errors with the data, gives the same records.
func TestOneByteReader(t *testing.T) {
	var all []Record
	for _, c := range rtCases() {
		all = append(all, c.rec)
	}
	b := encode(t, Version2, all...)
	for name, rd := range map[string]io.Reader{
		"one byte":  iotest.OneByteReader(bytes.NewReader(b)),
		"data err":  iotest.DataErrReader(bytes.NewReader(b)),
		"half read": iotest.HalfReader(bytes.NewReader(b)),
	} {
		r, err := NewReader(rd, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i := 0; ; i++ {
			rec, err := r.Next()
			if err == io.EOF {
				if i != len(all) {
					t.Errorf("%s: %d records, want %d", name, i, len(all))
				}
				break
			}
			if err != nil {
				t.Fatalf("%s: record %d: %v", name, i, err)
			}
			if d := diff(all[i], rec); d != "" {
				t.Errorf("%s: record %d: %s", name, i, d)
			}
		}
	}
}

// TestReaderIOError: an I/O error is reported as such, not as truncation.
func TestReaderIOError(t *testing.T) {
	b := encode(t, Version2, &Transaction{ConnID: 1, TxID: 1})
	boom := errors.New("boom")
	r, err := NewReader(io.MultiReader(bytes.NewReader(b[:20]), iotest.ErrReader(boom)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, boom) || errors.Is(err, ErrTruncated) {
		t.Errorf("err = %v, want boom", err)
	}
	if _, err := NewReader(iotest.ErrReader(boom), nil); !errors.Is(err, boom) {
		t.Errorf("NewReader err = %v, want boom", err)
	}
}
