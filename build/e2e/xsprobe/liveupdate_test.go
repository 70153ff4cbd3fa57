package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/wire"
)

// imageUpdater is a LiveUpdater that keeps the image it is sent and
// whose Exec fails (a real one does not return).
type imageUpdater struct {
	got    bytes.Buffer
	execed bool
}

func (u *imageUpdater) CheckBinary(string) error { return errors.New("not here") }
func (u *imageUpdater) NewImage(int) (io.WriteCloser, error) {
	u.got.Reset()
	return nopCloser{&u.got}, nil
}
func (u *imageUpdater) Exec(*store.State, string, string) error {
	u.execed = true
	return errors.New("test: no exec")
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// TestLiveUpdate: the image, with NUL bytes and a partial last chunk,
// reaches the store whole through -b/-d, and -s's answer is returned.
func TestLiveUpdate(t *testing.T) {
	img := bytes.Repeat([]byte("\x7fELF\x00\x01"), 2*luChunk/6+7)
	file := filepath.Join(t.TempDir(), "xenstored")
	if err := os.WriteFile(file, img, 0o755); err != nil {
		t.Fatal(err)
	}
	u := &imageUpdater{}
	e := store.New(store.Config{LiveUpdate: u})
	sc := e.NewConn(0, true, nil)
	dev := &fakeDev{answer: func(m wire.Msg) wire.Msg {
		if len(m.Encode()) > wire.HeaderSize+4096 {
			t.Errorf("request of %d bytes", len(m.Payload))
		}
		sc.Handle(m)
		var r wire.Msg
		sc.Take(func(b []byte) bool { r, _ = wire.Decode(b); return true })
		return r
	}}
	reply, err := liveUpdate(&conn{f: dev}, file, false)
	if err != nil || !strings.HasPrefix(reply, "Error activating new binary: test: no exec") {
		t.Fatalf("liveUpdate = %q, %v", reply, err)
	}
	if !u.execed || !bytes.Equal(u.got.Bytes(), img) {
		t.Errorf("exec %v, image %d bytes, want %d the same", u.execed, u.got.Len(), len(img))
	}
	if want := 2 + (len(img)+luChunk-1)/luChunk; dev.requests != want {
		t.Errorf("%d requests, want %d (-b, -d chunks, -s)", dev.requests, want)
	}
}
