//go:build linux

package difftest

import (
	"bytes"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/xsstub/xenstored/wire"
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
//	domid         a domid argument that is not a whole number up to 65535:
//	              C 4.17 reads it with atoi, ours refuses it as 4.22 does
//	unwatchpath   UNWATCH of an invalid path: C 4.17 ENOENT, ours EINVAL
//	              as 4.22
//	sockpath      paths over XENSTORE_ABS_PATH_MAX / _REL_PATH_MAX: C 4.22
//	              has no length limit for socket connections, ours EINVAL
//	features      GET_FEATURE: ours also has XENSTORE_SERVER_FEATURE_
//	              RECONNECTION (1), which C 4.22 does not implement
//	quotanames    GET_QUOTA's list: C 4.22's "outstanding" is not ours,
//	              our maxoutstanding and maxwatchevents are not C's
//	releaseperms  GET_PERMS after a RELEASE: C 4.17 still lists (ignored)
//	              entries naming the released domain, ours drops them as
//	              C 4.22 does (domain_tree_remove_sub)
var intendedMasks = map[int][]string{
	417: {"specialperms", "txrm", "specialevents", "specialdomid", "bigdomid", "domid", "unwatchpath", "releaseperms"},
	422: {"txrm", "bigdomid", "sockpath", "features", "quotanames"},
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
// subtree in its view; the transaction's later reads then differ. The
// others: C did what ours refused.)
var diverges = map[string]bool{
	"allowed: txrm": true, "allowed: sockpath, C went on": true, "allowed: domid, C went on": true,
	"allowed: specialperms, in a transaction": true,
}

// cFixup returns what must be run on C after the masked difference why for
// op to bring both daemons back to equivalent states: an absolute path
// over the length limits that C 4.22 created (sockpath) and ours refused
// goes again. Its first component is new: ours refuses every such path,
// so only C holds nodes under it. That cannot undo the change of "/" for
// a transaction that may be open (C's commit would then fail where ours
// does not): with txSeen (a transaction was started in the sequence), the
// stores are taken to differ from here on (diverge).
func cFixup(op Op, why string, c outcome, txSeen bool) (fix *Op, diverge bool) {
	if why != "allowed: sockpath" || strings.HasPrefix(c.reply, "ERROR ") ||
		(op.Type != wire.Write && op.Type != wire.Mkdir) {
		return nil, false
	}
	if txSeen {
		return nil, true
	}
	top, _, _ := strings.Cut(strings.TrimPrefix(firstArgs(op, 1)[0], "/"), "/")
	return &Op{Conn: op.Conn, Type: wire.Rm, Payload: wire.JoinStrings("/" + top)}, false
}

// domidTypes are the requests whose first argument (both, for SET_TARGET)
// is a domid.
var domidTypes = map[wire.Type]bool{
	wire.GetDomainPath: true, wire.IsDomainIntroduced: true, wire.Introduce: true,
	wire.Release: true, wire.Resume: true, wire.SetTarget: true,
}

// badDomid reports whether s is refused by C 4.22's parse_domid (strtoul
// in base 10 over the whole string, at most 65535; "" is 0).
func badDomid(s string) bool {
	if s == "" {
		return false
	}
	t := strings.TrimLeft(s, " \t\n\v\f\r")
	neg := strings.HasPrefix(t, "-")
	if neg || strings.HasPrefix(t, "+") {
		t = t[1:]
	}
	v, err := strconv.ParseUint(t, 10, 64) // refuses a second sign, "", garbage
	return err != nil || v > 65535 || neg && v != 0
}

// firstArgs is op's payload's first n NUL-terminated strings (fewer if
// it has fewer).
func firstArgs(op Op, n int) []string {
	parts := strings.Split(string(op.Payload), "\x00")
	return parts[:min(n, len(parts)-1)]
}

// wentOn names a masked difference, noting when C succeeded where ours
// refused (the states then differ).
func wentOn(name string, c outcome) string {
	if strings.HasPrefix(c.reply, "ERROR ") {
		return "allowed: " + name
	}
	return "allowed: " + name + ", C went on"
}

// allowed applies p's intended masks and the $DIFFTEST_ALLOW ones.
func allowed(p *peer, op Op, c, g outcome) string {
	allow := func(name string) bool { return explore[name] || slices.Contains(intendedMasks[p.v], name) }
	if allow("specialperms") && op.Act == actRequest && op.Type == wire.GetPerms &&
		len(op.Payload) > 0 && op.Payload[0] == '@' && c.reply == replyEINVAL {
		if op.Tx != txNone {
			// Ours looked the name up in the transaction (reading "/" for
			// a missing one, as C 4.22): its commit may fail where C's
			// does not.
			return "allowed: specialperms, in a transaction"
		}
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
	if allow("domid") && op.Act == actRequest && domidTypes[op.Type] && g.reply == replyEINVAL && c.reply != g.reply {
		n := 1
		if op.Type == wire.SetTarget {
			n = 2
		}
		for _, a := range firstArgs(op, n) {
			if !badDomid(a) {
				continue
			}
			if op.Type == wire.GetDomainPath || op.Type == wire.IsDomainIntroduced {
				return "allowed: domid" // C's answer changed nothing
			}
			return wentOn("domid", c)
		}
	}
	if allow("releaseperms") && op.Act == actRequest && op.Type == wire.GetPerms && droppedEntries(c.reply, g.reply) {
		return "allowed: releaseperms"
	}
	if allow("unwatchpath") && op.Act == actRequest && op.Type == wire.Unwatch &&
		c.reply == `ERROR "ENOENT\x00"` && g.reply == replyEINVAL {
		return "allowed: unwatchpath"
	}
	if allow("sockpath") && op.Act == actRequest && g.reply == replyEINVAL && c.reply != g.reply {
		// Every path the generator makes over 2048 bytes is a long one.
		if a := firstArgs(op, 1); len(a) == 1 && len(a[0]) > 2048 {
			// Outside transactions cFixup removes what C created; in one,
			// C's transaction has touched nodes ours has not (it may fail
			// to commit where ours does not).
			switch {
			case op.Tx != txNone:
				// Even a failed lookup puts the path's ancestors into C's
				// transaction, which ours never saw.
				return "allowed: sockpath, C went on"
			case strings.HasPrefix(a[0], "/") && (op.Type == wire.Write || op.Type == wire.Mkdir):
				return "allowed: sockpath"
			}
			return wentOn("sockpath", c)
		}
	}
	if allow("features") && op.Act == actRequest && op.Type == wire.GetFeature {
		cf, cerr := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(c.reply, `GET_FEATURE "`), `\x00"`), 10, 32)
		gf, gerr := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(g.reply, `GET_FEATURE "`), `\x00"`), 10, 32)
		if cerr == nil && gerr == nil && gf == cf|1 {
			return "allowed: features"
		}
	}
	if allow("quotanames") && op.Act == actRequest && op.Type == wire.GetQuota && strings.Contains(c.reply, " ") {
		// The list (no argument, or none NUL-terminated).
		names := func(r, typ string) []string {
			r = strings.TrimSuffix(strings.TrimPrefix(r, typ+` "`), `\x00"`)
			return slices.Sorted(slices.Values(strings.Fields(r)))
		}
		cn := slices.DeleteFunc(names(c.reply, "GET_QUOTA"), func(n string) bool { return n == "outstanding" })
		want := slices.Sorted(slices.Values(append(cn, "maxoutstanding", "maxwatchevents")))
		if slices.Equal(want, names(g.reply, "GET_QUOTA")) {
			return "allowed: quotanames"
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

// droppedEntries reports whether two GET_PERMS replies name the same owner
// and ours lists C's other entries less some (those C 4.17 keeps, ignored,
// for a released domain).
func droppedEntries(c, ours string) bool {
	list := func(r string) []string {
		q, ok := strings.CutPrefix(r, "GET_PERMS ")
		if !ok {
			return nil
		}
		v, err := strconv.Unquote(q)
		if err != nil {
			return nil
		}
		return strings.Split(strings.TrimSuffix(v, "\x00"), "\x00")
	}
	cl, gl := list(c), list(ours)
	if len(cl) == 0 || len(gl) == 0 || len(gl) >= len(cl) || cl[0] != gl[0] {
		return false
	}
	i := 1
	for _, e := range cl[1:] {
		if i < len(gl) && gl[i] == e {
			i++
		}
	}
	return i == len(gl)
}
