//go:build linux

package difftest

import (
	"bytes"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/xsstub/xenstored/store/wire"
)

// The intended differences between each C xenstored peer and ours
// (README.md lists them with their reasons). Anything else that differs
// fails the test.

const (
	replyENOSYS = `ERROR "ENOSYS\x00"`
	replyEINVAL = `ERROR "EINVAL\x00"`
	replyOK     = `"OK\x00"`
)

// oneArgTypes are the requests C 4.17 parses with onearg() and then
// canonicalize(), which leaves errno unset for a malformed payload.
var oneArgTypes = map[wire.Type]bool{
	wire.Read: true, wire.Mkdir: true, wire.Rm: true, wire.GetPerms: true, wire.Directory: true,
}

// isOneArg reports whether p is exactly one NUL-terminated string.
func isOneArg(p []byte) bool {
	return len(p) > 0 && bytes.IndexByte(p, 0) == len(p)-1
}

// countStrings is the number of NULs in p (C's get_strings/xs_count_strings).
func countStrings(p []byte) int { return bytes.Count(p, []byte{0}) }

// intended reports why a difference between peer p's outcome c and ours g
// for op is one of the deliberate differences, or "" if it is not. fixup,
// if not nil, must be run on our side afterwards to bring both daemons
// back to equivalent states.
func intended(p *peer, op Op, c, g outcome) (why string, fixup *Op) {
	if op.Act != actRequest || p.v != 417 {
		return "", nil
	}
	switch op.Type {
	case wire.GetFeature, wire.SetFeature, wire.GetQuota, wire.SetQuota:
		if c.reply == replyENOSYS {
			return "GET/SET_FEATURE and GET/SET_QUOTA are newer than C 4.17", nil
		}
	case wire.Watch:
		// Watch depth: C 4.17 accepts exactly two strings.
		if countStrings(op.Payload) == 3 && c.reply == replyEINVAL {
			if g.reply == "WATCH "+replyOK {
				parts, _ := wire.SplitStrings(op.Payload)
				return "WATCH <depth> is newer than C 4.17", &Op{
					Conn: op.Conn, Type: wire.Unwatch, Payload: wire.JoinStrings(parts[0], parts[1]),
				}
			}
			return "WATCH <depth> is newer than C 4.17", nil
		}
	}
	return "", nil
}

// knownSpecial are the special paths C 4.17 keeps permissions for.
var knownSpecial = map[string]bool{"@introduceDomain": true, "@releaseDomain": true}

// cUnsafe reports whether op would make C 4.17 answer with a stale errno
// (whatever an earlier system call left behind). When that errno happens to
// be 0, C sends no reply at all and aborts on the connection's next request
// (assertion `conn->in == NULL' in consider_message), so such ops are never
// sent to C: ours must give the answer upstream xenstored gives, returned
// here as C's outcome, with other acceptable replies in alt.
func cUnsafe(p *peer, op Op) (want outcome, alt []string, unsafe bool) {
	// The generator sends these ops outside transactions only (a stale
	// transaction would make the answers differ for other reasons).
	if p.v != 417 || op.Act != actRequest || op.Tx != txNone {
		return outcome{}, nil, false
	}
	want.events[op.Conn] = []string{"<reply>"}
	// READ, MKDIR, RM, GET_PERMS, DIRECTORY: onearg() fails, canonicalize()
	// returns NULL without setting errno. Upstream: EINVAL.
	if oneArgTypes[op.Type] && !isOneArg(op.Payload) {
		want.reply = replyEINVAL
		return want, nil, true
	}
	// SET_PERMS on an unknown @path: do_set_perms returns errno, not the
	// EINVAL set_perms_special returned. Upstream: ENOENT (no such node),
	// once the permissions parse; EINVAL (an invalid path) is accepted.
	// C counts only NUL-terminated strings (xs_count_strings): an
	// unterminated tail is ignored, not an error (seed 21073 of
	// DIFFTEST_SEED=20000 DIFFTEST_OPS=150 crashed C that way).
	if op.Type == wire.SetPerms && len(op.Payload) > 0 && op.Payload[0] == '@' {
		parts := strings.Split(string(op.Payload), "\x00")
		parts = parts[:len(parts)-1] // the unterminated tail, "" when terminated
		if len(parts) >= 2 && !knownSpecial[parts[0]] && permsParse(parts[1:]) {
			want.reply = `ERROR "ENOENT\x00"`
			return want, []string{replyEINVAL}, true
		}
	}
	return outcome{}, nil, false
}

// permsParse is C's xs_strings_to_perms plus the check that the owner
// exists (domids below 0x7ff0 do under the shim).
func permsParse(perms []string) bool {
	for i, p := range perms {
		if p == "" || !strings.ContainsRune("rwbn", rune(p[0])) {
			return false
		}
		num := strings.TrimLeft(p[1:], " \t\n\v\f\r") // strtol skips isspace()
		id, err := strconv.ParseInt(num, 0, 64)
		if err != nil || p[1:] == "" {
			return false
		}
		if i == 0 && (id < 0 || id >= 0x7ff0) {
			return false
		}
	}
	return true
}

// intendedMasks are the intended differences allowed() always masks, per
// peer release (difftest/README.md):
//
//	specialperms  GET_PERMS on @paths (C 4.17 EINVAL; ours like upstream)
//	txrm          C's EIO/EINVAL for RM in a transaction with a stale view
//	specialevents SET_PERMS on @introduceDomain/@releaseDomain fires in ours
//	specialdomid  @introduceDomain/<id>, @releaseDomain/<id> fire in ours
//	bigdomid      C prints permission domids of 2^31 and up negative
var intendedMasks = map[int][]string{
	417: {"specialperms", "txrm", "specialevents", "specialdomid", "bigdomid"},
}

// explore holds masks for *open* findings, switched on through
// $DIFFTEST_ALLOW (comma-separated) only to look past them while exploring
// or fixing; they are off by default, so those mismatches fail the test:
//
//	dupevents     C drops a watch event identical to one still queued
//	notintro      RELEASE/RESUME/SET_TARGET of a not introduced domain:
//	              C ENOENT, ours EINVAL
//
// Any name of intendedMasks may be given too, to apply it to every peer.
var explore = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range strings.Split(os.Getenv("DIFFTEST_ALLOW"), ",") {
		if c = strings.TrimSpace(c); c != "" {
			m[c] = true
		}
	}
	return m
}()

// diverges names the masked differences after which the two daemons hold
// different state that no fixup restores: the rest of the sequence is not
// compared. (txrm: C refused the RM in the transaction, ours removed the
// subtree in its view; the transaction's later reads then differ.)
var diverges = map[string]bool{"allowed: txrm": true}

// allowed applies p's intended masks and the $DIFFTEST_ALLOW ones.
func allowed(p *peer, op Op, c, g outcome) string {
	allow := func(name string) bool { return explore[name] || slices.Contains(intendedMasks[p.v], name) }
	if allow("specialperms") && op.Act == actRequest && op.Type == wire.GetPerms &&
		len(op.Payload) > 0 && op.Payload[0] == '@' && c.reply == replyEINVAL {
		return "allowed: specialperms"
	}
	if allow("txrm") && op.Act == actRequest && op.Type == wire.Rm && op.Tx != txNone &&
		(c.reply == `ERROR "EIO\x00"` || c.reply == replyEINVAL) && g.reply == "RM "+replyOK {
		return "allowed: txrm"
	}
	if allow("specialevents") && op.Act == actRequest && op.Type == wire.SetPerms && c.reply == g.reply {
		same := true
		for i := range c.events {
			var evs []string
			for _, e := range g.events[i] {
				if !strings.HasPrefix(e, `"@`) {
					evs = append(evs, e)
				}
			}
			if !slices.Equal(c.events[i], evs) {
				same = false
			}
		}
		if same {
			return "allowed: specialevents"
		}
	}
	if allow("specialdomid") && c.reply == g.reply {
		// Watches on @introduceDomain/<id> and @releaseDomain/<id>
		// (newer xenstored) never fire in 4.17.
		same := true
		for i := range c.events {
			var evs []string
			for _, e := range g.events[i] {
				if !strings.HasPrefix(e, `"@introduceDomain/`) && !strings.HasPrefix(e, `"@releaseDomain/`) {
					evs = append(evs, e)
				}
			}
			if !slices.Equal(c.events[i], evs) {
				same = false
			}
		}
		if same {
			return "allowed: specialdomid"
		}
	}
	if allow("bigdomid") && op.Act == actRequest && op.Type == wire.GetPerms && strings.Contains(c.reply, "-") {
		// C prints permission domids with %i: 2^31 and up come out negative.
		return "allowed: bigdomid"
	}
	if allow("notintro") && op.Act == actRequest && c.reply == `ERROR "ENOENT\x00"` && g.reply == replyEINVAL &&
		(op.Type == wire.Release || op.Type == wire.Resume || op.Type == wire.SetTarget) {
		return "allowed: notintro"
	}
	if allow("dupevents") && c.reply == g.reply {
		same := true
		for i := range c.events {
			if !slices.Equal(c.events[i], dedupEvents(g.events[i])) {
				same = false
			}
		}
		if same {
			return "allowed: dupevents"
		}
	}
	return ""
}

// dedupEvents drops repeated identical events (not @ ones) of one op.
func dedupEvents(evs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range evs {
		if e != "<reply>" && !strings.HasPrefix(e, `"@`) {
			if seen[e] {
				continue
			}
			seen[e] = true
		}
		out = append(out, e)
	}
	return out
}
