package daemon

import (
	"bytes"
	"io"
	"os"
	"testing"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/store/handover"
	"github.com/xsstub/xenstored/wire"
)

// TestCheckStream: the state written before exec is read back as the next
// daemon reads it; a stream it cannot read stops the update, and a good
// one is left at its start.
func TestCheckStream(t *testing.T) {
	e := store.New(store.Config{})
	e.NewConn(0, true, nil).Handle(wire.Msg{Type: wire.Write, ReqID: 1, Payload: wire.JoinStrings("/a", "1")})
	var good bytes.Buffer
	h := handover.NewTransports()
	if err := handover.Encode(&good, e.Export(), h); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		stream  []byte
		wantErr bool
	}{
		{"whole", good.Bytes(), false},
		{"truncated", good.Bytes()[:good.Len()-9], true},
		{"empty", nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := os.CreateTemp(t.TempDir(), "state")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			f.Write(tt.stream)
			err = checkStream(f)
			if (err != nil) != tt.wantErr {
				t.Fatalf("checkStream: %v, want error %v", err, tt.wantErr)
			}
			if pos, _ := f.Seek(0, io.SeekCurrent); err == nil && pos != 0 {
				t.Errorf("left at %d, want 0", pos)
			}
		})
	}
}
