package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/xsstub/xenstored/wire"
)

// pollStats counts a poll loop's READs across live updates: every reply
// must carry the value the first READ returned.
type pollStats struct {
	Reads    int           // READs of the polled path answered with its value
	Errors   int           // ERROR replies or wrong values (a lost connection ends the loop)
	FirstErr string        // the first of them
	MaxGap   time.Duration // longest time one READ took (an update's pause shows here)
	Stopped  bool          // the stop path appeared
}

func (s pollStats) String() string {
	fe := ""
	if s.FirstErr != "" {
		fe = fmt.Sprintf(" first_error=%q", s.FirstErr)
	}
	return fmt.Sprintf("reads=%d errors=%d max_read_ms=%d stopped=%v%s", s.Reads, s.Errors, s.MaxGap.Milliseconds(), s.Stopped, fe)
}

// pollLoop READs path every interval until stop exists (looked at every
// 5th round) or until the deadline; report, when set, gets the stats about
// every 30 s. An I/O error on the device ends it with the error.
func pollLoop(c *conn, path, stop string, interval time.Duration, deadline time.Time, report func(pollStats)) (pollStats, error) {
	var s pollStats
	var want string
	lastReport := time.Now()
	for round := 0; time.Now().Before(deadline); round++ {
		t0 := time.Now()
		p, e, err := c.call(wire.Read, path)
		if err != nil {
			return s, fmt.Errorf("READ %s after %d reads: %w", path, s.Reads, err)
		}
		if d := time.Since(t0); d > s.MaxGap {
			s.MaxGap = d
		}
		v := strings.TrimRight(string(p), "\x00")
		switch {
		case e != "":
			s.Errors++
			if s.FirstErr == "" {
				s.FirstErr = "ERROR " + e
			}
		case round == 0:
			want = v
			s.Reads++
		case v != want:
			s.Errors++
			if s.FirstErr == "" {
				s.FirstErr = fmt.Sprintf("value %q, first read %q", v, want)
			}
		default:
			s.Reads++
		}
		if round%5 == 4 {
			_, e, err := c.call(wire.Read, stop)
			if err != nil {
				return s, fmt.Errorf("READ %s: %w", stop, err)
			}
			if e == "" {
				s.Stopped = true
				return s, nil
			}
		}
		if report != nil && time.Since(lastReport) >= 30*time.Second {
			report(s)
			lastReport = time.Now()
		}
		time.Sleep(interval)
	}
	return s, nil
}

// poll runs pollLoop every 200 ms for at most secs seconds and prints
// "POLL-DONE <stats>", or "POLL-LOST <stats> err=..." when the device
// failed (exit 1); exit 3 when any reply was wrong.
func poll(c *conn, w io.Writer, path, stop string, secs int) {
	s, err := pollLoop(c, path, stop, 200*time.Millisecond, time.Now().Add(time.Duration(secs)*time.Second),
		func(s pollStats) { fmt.Fprintf(w, "POLL %s\n", s) })
	if err != nil {
		fmt.Fprintf(w, "POLL-LOST %s err=%v\n", s, err)
		os.Exit(1)
	}
	fmt.Fprintf(w, "POLL-DONE %s\n", s)
	if s.Errors > 0 {
		os.Exit(3)
	}
}
