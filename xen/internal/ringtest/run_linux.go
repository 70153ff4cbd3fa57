package ringtest

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// Runner drives a Server from one goroutine: poll on the event channel's
// Fd and a stop eventfd, then HandleEvents.
type Runner struct {
	s    *Server
	stop int
	done chan error
}

// Start runs s until Stop.
func Start(s *Server) (*Runner, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("ringtest: eventfd: %w", err)
	}
	r := &Runner{s: s, stop: fd, done: make(chan error, 1)}
	go func() { r.done <- r.loop() }()
	return r, nil
}

func (r *Runner) loop() error {
	fds := []unix.PollFd{{Fd: int32(r.s.ec.Fd()), Events: unix.POLLIN}, {Fd: int32(r.stop), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
			return fmt.Errorf("ringtest: poll: %w", err)
		}
		if fds[1].Revents != 0 {
			return nil
		}
		if fds[0].Revents != 0 {
			if err := r.s.HandleEvents(); err != nil {
				return fmt.Errorf("ringtest: %w", err)
			}
		}
	}
}

// Stop ends the loop and returns its error.
func (r *Runner) Stop() error {
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], 1)
	unix.Write(r.stop, b[:])
	err := <-r.done
	unix.Close(r.stop)
	return err
}
