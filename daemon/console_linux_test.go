package daemon

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A full pipe stands in for a console ring nobody drains: writes must
// return at once and drop the excess.
func TestDropWriterNeverBlocks(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	w := &dropWriter{fd: p[1]}
	line := make([]byte, 1000)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 1000; i++ { // 1 MB into a 64 KiB pipe
			if n, err := w.Write(line); n != len(line) || err != nil {
				t.Errorf("write: %d, %v", n, err)
			}
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("writer blocked on a full console")
	}
	if w.dropped == 0 {
		t.Fatal("nothing was dropped: the pipe cannot have held 1 MB")
	}
}
