package migration

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// FuzzReader feeds arbitrary streams to the Reader, strict and lenient. It
// must never panic, and what it accepts must survive a round trip: the
// Writer encodes the records it returned and a strict Reader reads the same
// records back. Whatever the strict Reader accepts, the lenient one accepts
// identically, and Validate does not panic on it. Seeds: every round-trip and golden stream, and the
// malformed table.
func FuzzReader(f *testing.F) {
	for _, v := range []uint32{Version1, Version2} {
		var all []Record
		for _, c := range rtCases() {
			if v == Version2 || c.v1 {
				f.Add(encode(f, v, c.rec))
				all = append(all, c.rec)
			}
		}
		f.Add(encode(f, v, all...))
	}
	for _, g := range goldens {
		f.Add(unhex(f, goldenHeaderV2+g.hex+goldenEnd))
	}
	for _, c := range malformedCases(f) {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		// A small cap keeps the fuzzer off the slow path of huge records;
		// the cap logic itself is the same.
		strict := &ReaderOptions{MaxRecordSize: 1 << 16}
		lenient := &ReaderOptions{MaxRecordSize: 1 << 16, IgnoreReserved: true, SkipUnknown: true}

		v, recs, err := readAll(in, strict)
		lv, lrecs, lerr := readAll(in, lenient)
		if err != nil {
			if !isOurs(err) {
				t.Fatalf("strict: error %v wraps no sentinel", err)
			}
		} else {
			if lerr != nil || lv != v || !reflect.DeepEqual(recs, lrecs) {
				t.Fatalf("strict read %d records, lenient disagrees: %v", len(recs), lerr)
			}
			roundTrip(t, v, recs)
			// Validation of any readable stream must not panic.
			if err := (&Stream{Version: v, Records: recs}).Validate(nil); err != nil && !errors.Is(err, ErrInconsistent) {
				t.Fatalf("Validate: %v", err)
			}
		}
		if lerr != nil {
			if !isOurs(lerr) {
				t.Fatalf("lenient: error %v wraps no sentinel", lerr)
			}
		} else {
			// Lenient records are canonical too: ignored fields are 0.
			roundTrip(t, lv, lrecs)
		}
	})
}

func roundTrip(t *testing.T, v uint32, recs []Record) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, &WriterOptions{Version: v, MaxRecordSize: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if err := w.WriteRecord(r); err != nil {
			t.Fatalf("record %d read but not writable: %v (%+v)", i, err, r)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	v2, recs2, err := readAll(buf.Bytes(), &ReaderOptions{MaxRecordSize: 1 << 16})
	if err != nil {
		t.Fatalf("re-encoded stream does not read: %v", err)
	}
	if v2 != v || len(recs2) != len(recs) {
		t.Fatalf("re-encoded: version %d, %d records; want %d, %d", v2, len(recs2), v, len(recs))
	}
	for i := range recs {
		if d := diff(recs[i], recs2[i]); d != "" {
			t.Fatalf("record %d after re-encoding: %s", i, d)
		}
	}
}

func isOurs(err error) bool {
	for _, s := range []error{ErrHeader, ErrVersion, ErrBigEndian, ErrTruncated, ErrTooLarge,
		ErrUnknownType, ErrNotInVersion, ErrMalformed, ErrNonZero, ErrTrailingData} {
		if errors.Is(err, s) {
			return true
		}
	}
	return errors.Is(err, io.ErrUnexpectedEOF)
}
