package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/xsstub/xenstored/wire"
)

// luChunk is how many bytes of the new daemon go in one "live-update -d"
// request: the payload, with its "live-update\0-d\0N\0" prefix, must fit
// the protocol's 4096 bytes.
const luChunk = 4000

// liveUpdate asks the store for a live update to the daemon in file, as
// xenstore-control does for a xenstore domain: "-b SIZE", the file in
// "-d" chunks, then "-s" (plus "-F" when force), whose answer comes from
// the new daemon. It returns that answer ("OK" when the update happened)
// or the first refusal.
func liveUpdate(c *conn, file string, force bool) (string, error) {
	img, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	ctl := func(req []byte) (string, error) {
		p, e, err := c.callRaw(wire.Control, req)
		if err != nil {
			return "", err
		}
		if e != "" {
			return "", errors.New(e)
		}
		return strings.TrimRight(string(p), "\x00"), nil
	}
	reply, err := ctl(wire.JoinStrings("live-update", "-b", strconv.Itoa(len(img))))
	if err != nil || reply != "OK" {
		return reply, err
	}
	for off := 0; off < len(img); off += luChunk {
		part := img[off:min(off+luChunk, len(img))]
		req := append(wire.JoinStrings("live-update", "-d", strconv.Itoa(len(part))), part...)
		if reply, err = ctl(req); err != nil || reply != "OK" {
			return reply, fmt.Errorf("at byte %d: %q %v", off, reply, err)
		}
	}
	args := []string{"live-update", "-s"}
	if force {
		args = append(args, "-F")
	}
	return ctl(wire.JoinStrings(args...))
}
