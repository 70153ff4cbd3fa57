package ringclient

import (
	"bytes"
	"errors"
	"syscall"
	"testing"

	"github.com/xsstub/xenstored/wire"
)

func enc(m wire.Msg) []byte { return m.Encode() }

func TestSplitMessages(t *testing.T) {
	a := enc(wire.Msg{Type: wire.Read, ReqID: 1, Payload: []byte("abc")})
	b := enc(wire.Msg{Type: wire.WatchEvent, Payload: []byte("p\x00t\x00")})
	huge := make([]byte, 16)
	wire.Header{Type: wire.Read, Len: 0xffffffff}.Put(huge)
	tests := []struct {
		name     string
		in       []byte
		wantN    int
		wantRest int
		wantErr  bool
	}{
		{"empty", nil, 0, 0, false},
		{"partial header", a[:10], 0, 10, false},
		{"header only", a[:16], 0, 16, false},
		{"one", a, 1, 0, false},
		{"one and a half", append(bytes.Clone(a), b[:10]...), 1, 10, false},
		{"two", append(bytes.Clone(a), b...), 2, 0, false},
		{"4 GiB length", huge, 0, 16, true},
		{"good then huge", append(bytes.Clone(a), huge...), 1, 16, true},
	}
	for _, tt := range tests {
		msgs, rest, err := splitMessages(tt.in)
		if len(msgs) != tt.wantN || len(rest) != tt.wantRest || (err != nil) != tt.wantErr {
			t.Errorf("%s: %d msgs, %d rest, err %v", tt.name, len(msgs), len(rest), err)
		}
	}
	msgs, _, _ := splitMessages(append(bytes.Clone(a), b...))
	if string(msgs[0].Payload) != "abc" || msgs[0].ReqID != 1 || msgs[1].Type != wire.WatchEvent {
		t.Errorf("decoded %+v", msgs)
	}
}

func TestParseWatchEvent(t *testing.T) {
	tests := []struct {
		in      string
		want    WatchEvent
		wantErr bool
	}{
		{"/a\x00tok\x00", WatchEvent{"/a", "tok"}, false},
		{"/a\x00tok", WatchEvent{"/a", "tok"}, false},
		{"/a\x00", WatchEvent{}, true},
		{"", WatchEvent{}, true},
	}
	for _, tt := range tests {
		got, err := parseWatchEvent([]byte(tt.in))
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%q: %+v, %v", tt.in, got, err)
		}
	}
}

func TestReplyError(t *testing.T) {
	tests := []struct {
		payload string
		errno   syscall.Errno
	}{
		{"ENOENT\x00", syscall.ENOENT},
		{"EACCES\x00", syscall.EACCES},
		{"EWHAT\x00", 0},
		{"", 0},
	}
	for _, tt := range tests {
		e := replyError(wire.Read, []byte(tt.payload))
		if e.Errno != tt.errno {
			t.Errorf("%q: errno %v, want %v", tt.payload, e.Errno, tt.errno)
		}
		if tt.errno != 0 && !errors.Is(e, tt.errno) {
			t.Errorf("%q: errors.Is fails", tt.payload)
		}
		if tt.errno == 0 && errors.Is(e, syscall.Errno(0)) {
			t.Errorf("%q: matches errno 0", tt.payload)
		}
	}
}
