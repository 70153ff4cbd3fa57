package daemon

import (
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// dropWriter writes to a non-blocking descriptor and drops what does not
// fit: in a stub domain nothing may read the console (xenconsoled needs
// xenstore, i.e. us), and a blocking write would stop the store.
type dropWriter struct {
	mu      sync.Mutex
	fd      int
	dropped int
}

func (w *dropWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for off := 0; off < len(p); {
		n, err := unix.Write(w.fd, p[off:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			w.dropped += len(p) - off
			break
		}
		off += n
	}
	return len(p), nil
}

// ConsoleLog returns a writer for log lines that never blocks: its own
// non-blocking descriptor on /dev/console, or stderr if that cannot be
// opened.
func ConsoleLog() io.Writer {
	fd, err := unix.Open("/dev/console", unix.O_WRONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return os.Stderr
	}
	return &dropWriter{fd: fd}
}
