package wire

import (
	"bytes"
	"errors"
	"syscall"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	m := Msg{Type: Write, ReqID: 0xdeadbeef, TxID: 7, Payload: []byte("/a\x00b")}
	b := m.Encode()
	if len(b) != HeaderSize+4 {
		t.Fatalf("encoded %d bytes", len(b))
	}
	// Little-endian layout of struct xsd_sockmsg.
	want := []byte{11, 0, 0, 0, 0xef, 0xbe, 0xad, 0xde, 7, 0, 0, 0, 4, 0, 0, 0}
	if !bytes.Equal(b[:HeaderSize], want) {
		t.Fatalf("header % x, want % x", b[:HeaderSize], want)
	}
	got, err := Decode(b)
	if err != nil || got.Type != m.Type || got.ReqID != m.ReqID || got.TxID != m.TxID || !bytes.Equal(got.Payload, m.Payload) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
}

func TestParseHeaderLimits(t *testing.T) {
	tests := []struct {
		len     uint32
		tooLong bool
	}{{0, false}, {4096, false}, {4097, true}, {0xffffffff, true}, {1 << 30, true}}
	for _, tt := range tests {
		b := make([]byte, HeaderSize)
		Header{Type: Read, Len: tt.len}.Put(b)
		_, err := ParseHeader(b)
		if tt.tooLong != errors.Is(err, ErrTooLong) {
			t.Errorf("len %d: err %v", tt.len, err)
		}
	}
	if _, err := ParseHeader(make([]byte, 15)); err == nil {
		t.Error("short header accepted")
	}
}

func TestErrnoNames(t *testing.T) {
	for _, e := range []syscall.Errno{syscall.EINVAL, syscall.EACCES, syscall.E2BIG, syscall.EPERM, syscall.EAGAIN} {
		back, ok := ParseErrno(ErrnoName(e))
		if !ok || back != e {
			t.Errorf("%v -> %s -> %v", e, ErrnoName(e), back)
		}
	}
	if ErrnoName(syscall.EXDEV) != "EINVAL" {
		t.Error("untranslatable errno must become EINVAL")
	}
	if m := ErrorMsg(3, 4, syscall.ENOENT); string(m.Payload) != "ENOENT\x00" || m.Type != Error || m.ReqID != 3 || m.TxID != 4 {
		t.Errorf("error message %+v", m)
	}
}

func TestSplitStrings(t *testing.T) {
	tests := []struct {
		in    string
		parts []string
		term  bool
	}{
		{"", nil, true},
		{"a\x00", []string{"a"}, true},
		{"a\x00b", []string{"a", "b"}, false},
		{"\x00\x00", []string{"", ""}, true},
	}
	for _, tt := range tests {
		parts, term := SplitStrings([]byte(tt.in))
		if term != tt.term || len(parts) != len(tt.parts) {
			t.Errorf("%q: %q %v", tt.in, parts, term)
			continue
		}
		for i := range parts {
			if parts[i] != tt.parts[i] {
				t.Errorf("%q: %q", tt.in, parts)
			}
		}
	}
}

// FuzzDecode: any bytes either decode to a message that re-encodes to the
// same bytes, or are rejected; nothing panics.
func FuzzDecode(f *testing.F) {
	f.Add((&Msg{Type: Read, ReqID: 1, Payload: []byte("/a\x00")}).Encode())
	f.Add((&Msg{Type: Write, Payload: []byte("/a\x00v")}).Encode())
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		if len(m.Payload) > PayloadMax {
			t.Fatalf("accepted %d-byte payload", len(m.Payload))
		}
		if !bytes.Equal(m.Encode(), b) {
			t.Fatal("re-encoding differs")
		}
		SplitStrings(m.Payload)
	})
}
