package daemon

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/store/handover"
	"github.com/xsstub/xenstored/store/migration"
)

// Live update to and from Xen's C xenstored. C passes its state in a file,
// $XENSTORED_RUNDIR/state_dump (4.17: the run directory; 4.22: lu.c,
// xenstore_rundir), and marks the new daemon with -U; it keeps its
// listener, its clients' sockets and its event channel handle open across
// the exec, and names them in the stream's GLOBAL_DATA and CONNECTION_DATA.

// cStateFile is where C xenstored writes its stream before the exec and
// reads it after.
func cStateFile() string {
	dir := os.Getenv("XENSTORED_RUNDIR")
	if dir == "" {
		dir = "/var/run/xenstored"
	}
	return filepath.Join(dir, "state_dump")
}

// cReaderOptions read a C stream: 4.22 builds DOMAIN_DATA and
// GLOBAL_QUOTA_DATA in uncleared memory, so their padding is garbage.
// Unknown records stay errors: skipping one would lose state silently.
var cReaderOptions = &migration.ReaderOptions{IgnoreReserved: true}

// readCState reads the stream C xenstored left for us (-U) and removes
// it, as C does once it has read it: a later -U must not find it again.
func readCState(path string, priv uint32, quotas store.Quotas, warn func(string, ...any)) (*store.State, *handover.Transports, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("-U: no state from the last xenstored: %w", err)
	}
	defer f.Close()
	st, h, err := handover.DecodeWith(bufio.NewReaderSize(f, 64<<10),
		handover.DecodeOptions{Priv: priv, Quotas: &quotas, Reader: cReaderOptions, Warn: warn}) // C 4.17 carries no quotas: they are its command line's, which we got
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	fd, err := cEvtchnFD(h.EvtchnFD)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	h.EvtchnFD = fd
	if err := os.Remove(path); err != nil {
		return nil, nil, fmt.Errorf("-U: %w", err)
	}
	return st, h, nil
}

// evtchnDevice is the device whose open handle holds a daemon's bound
// ports; C opens it without close-on-exec (domain.c domain_init).
var evtchnDevice = "/dev/xen/evtchn"

// cEvtchnFD checks the event channel handle C's GLOBAL_DATA names: on Xen
// it must be the device, still open, or every ring's port is gone. Without
// Xen (C on a test shim) it names nothing we can use: -1.
func cEvtchnFD(fd int32) (int32, error) {
	if fd < 0 {
		return -1, nil
	}
	target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err == nil && target == evtchnDevice {
		return fd, nil
	}
	if _, serr := os.Stat(filepath.Dir(evtchnDevice)); errors.Is(serr, os.ErrNotExist) {
		return -1, nil
	}
	return -1, fmt.Errorf("the event channel handle C xenstored named (descriptor %d) is not open on %s (%q, %v): its rings' ports are lost", fd, evtchnDevice, target, err)
}

// cRelease is what a C xenstored release takes from a live update: the
// stream version it reads and the command line it accepts (getopt_long).
type cRelease struct {
	name    string
	version uint32
	short   string          // getopt's option string
	long    map[string]bool // long option: whether it takes a value
}

// Markers in the binaries: ours prints checkOK; C logs its reading of the
// state; only C releases with version 2 streams refuse a version by name.
const (
	cMarker   = "live-update: read state"
	cV2Marker = "Migration stream version not supported."
)

// cReleases, read in tools/xenstore(d) of 4.17 (xenstored_core.c, Debian's
// 4.17.7 binary) and 4.22 (core.c): 4.17 reads version 1 only and knows
// no quota, domain or watch-depth records; 4.22 reads both versions.
// Debian 13's 4.20.4 binary reads version 1 only (no version check, no
// quota records) but takes 4.22's options: found on real Xen, where it was
// taken for 4.17 and would have been handed 4.17's -D, -P, -R, -I or -V
// (its getopt exits on them, the store lost). Each release is known by its
// getopt string as well.
var cReleases = []*cRelease{
	{name: "4.17", version: migration.Version1, short: "DE:F:HI::KNPS:t:A:M:Q:q:T:RVW:w:U",
		long: map[string]bool{"no-domain-init": false, "entry-nb": true, "pid-file": true, "event": true,
			"master-domid": true, "help": false, "no-fork": false, "priv-domid": true, "output-pid": false,
			"entry-size": true, "trace-file": true, "transaction": true, "perm-nb": true, "path-max": true,
			"quota": true, "quota-soft": true, "timeout": true, "no-recovery": false, "internal-db": false,
			"keep-orphans": false, "verbose": false, "watch-nb": true, "live-update": false}},
	{name: "4.22", version: migration.Version2, short: "E:F:H::KNS:t:A:M:Q:q:T:W:w:U",
		long: map[string]bool{"entry-nb": true, "pid-file": true, "event": true, "master-domid": true,
			"help": false, "no-fork": false, "priv-domid": true, "entry-size": true, "trace-file": true,
			"trace-control": true, "transaction": true, "perm-nb": true, "path-max": true, "quota": true,
			"quota-soft": true, "timeout": true, "keep-orphans": false, "watch-nb": true, "live-update": false}},
	{name: "4.20", version: migration.Version1, short: "E:F:H::KNS:t:A:M:Q:q:T:W:w:U",
		long: map[string]bool{"entry-nb": true, "pid-file": true, "event": true, "master-domid": true,
			"help": false, "no-fork": false, "priv-domid": true, "entry-size": true, "trace-file": true,
			"trace-control": true, "transaction": true, "perm-nb": true, "path-max": true, "quota": true,
			"quota-soft": true, "timeout": true, "keep-orphans": false, "watch-nb": true, "live-update": false}},
}

// identifyC tells a C xenstored binary apart by the strings it holds:
// nil for our daemon or anything else (the --live-update-check run vets
// those). A C binary whose stream version and getopt string match no
// known release is refused: what it takes cannot be known.
func identifyC(path string) (*cRelease, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the new binary: %w", err)
	}
	defer f.Close()
	markers := []string{checkOK, cMarker, cV2Marker}
	for _, c := range cReleases {
		markers = append(markers, "\x00"+c.short+"\x00")
	}
	found, err := containsAny(f, markers)
	if err != nil {
		return nil, fmt.Errorf("reading the new binary: %w", err)
	}
	if found[0] || !found[1] {
		return nil, nil
	}
	v := migration.Version1
	if found[2] {
		v = migration.Version2
	}
	for i, c := range cReleases {
		if found[3+i] && c.version == v {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%s is C xenstored of a release not known here (stream version %d, none of the known option strings): refused, the running daemon serves on", path, v)
}

// containsAny reports which of the markers r holds, reading it in chunks
// (a stub must not hold a binary in its heap).
func containsAny(r io.Reader, markers []string) ([]bool, error) {
	found := make([]bool, len(markers))
	longest := 0
	for _, m := range markers {
		longest = max(longest, len(m))
	}
	buf := make([]byte, 0, 256<<10)
	for {
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		for i, m := range markers {
			found[i] = found[i] || bytes.Contains(buf, []byte(m))
		}
		if err == io.EOF {
			return found, nil
		}
		if err != nil {
			return nil, err
		}
		if keep := longest - 1; len(buf) > keep && len(buf) == cap(buf) {
			buf = buf[:copy(buf, buf[len(buf)-keep:])] // a marker may straddle chunks
		}
	}
}

// argv is the command line the release gets: args plus -U, refused if
// that release's getopt would stop on any of it (C exits then, and
// nothing could go back after the exec).
func (c *cRelease) argv(args []string) ([]string, error) {
	// Checked before -U is added: a trailing option would take it as its value.
	for i := 0; i < len(args); i++ {
		skip, err := c.option(args[i])
		if err != nil {
			return nil, fmt.Errorf("C xenstored %s would not start with %q: %w (give it a command line with live-update -c)", c.name, strings.Join(args, " "), err)
		}
		if skip && i+1 == len(args) {
			return nil, fmt.Errorf("C xenstored %s: option %s needs a value", c.name, args[i])
		}
		if skip {
			i++
		}
	}
	if !slices.Contains(args, "-U") && !slices.Contains(args, "--live-update") {
		args = append(slices.Clone(args), "-U")
	}
	return args, nil
}

// option checks one argument; skip says the next one is its value.
func (c *cRelease) option(a string) (skip bool, err error) {
	switch {
	case strings.HasPrefix(a, "--"):
		name, _, hasVal := strings.Cut(a[2:], "=")
		takes, ok := c.long[name]
		if !ok {
			return false, fmt.Errorf("unknown option %s", a)
		}
		if hasVal && !takes {
			return false, fmt.Errorf("option %s takes no value", a)
		}
		return takes && !hasVal, nil
	case len(a) >= 2 && a[0] == '-':
		for j := 1; j < len(a); j++ {
			k := strings.IndexByte(c.short, a[j])
			if k < 0 || a[j] == ':' {
				return false, fmt.Errorf("unknown option -%c", a[j])
			}
			colons := len(c.short[k+1:]) - len(strings.TrimLeft(c.short[k+1:], ":"))
			switch {
			case colons == 0:
				continue
			case colons == 1 && j+1 == len(a):
				return true, nil
			}
			return false, nil // the rest of a is the value
		}
		return false, nil
	}
	return false, fmt.Errorf("argument %q is no option", a)
}

// refusal is why the release would lose part of st, or nil. base is the
// quotas its command line gives it, which is all 4.17 gets.
func (c *cRelease) refusal(st *store.State, base store.Quotas) error {
	var why []string
	for _, cs := range st.Conns {
		for _, w := range cs.Watches {
			if w.Depth >= 0 {
				// 4.17 has no depth; 4.22 reads the record's path two
				// octets early (it writes them so as well).
				why = append(why, fmt.Sprintf("connection %d watches %s with depth %d", cs.ID, w.Path, w.Depth))
			}
		}
	}
	if c.version == migration.Version1 {
		if st.Quotas != base {
			why = append(why, "quotas were changed at run time (xenstore-control quota set)")
		}
		for _, d := range st.Domains {
			if d.Quotas != st.Quotas {
				why = append(why, fmt.Sprintf("domain %d has quotas of its own", d.ID))
			}
		}
	}
	for _, d := range unknownToC(st) {
		if d.Quotas != st.Quotas {
			why = append(why, fmt.Sprintf("domain %d, neither introduced nor owning a node, has quotas of its own", d.ID))
		}
	}
	if len(why) == 0 {
		return nil
	}
	return fmt.Errorf("C xenstored %s cannot take over: its stream would lose that %s", c.name, strings.Join(why, "; "))
}

// unknownToC are the domains C will have no record of when it reads the
// domains (4.22 domain.c read_state_domain): neither introduced (a ring
// record) nor owning a node. It exits on a DOMAIN_DATA for one, its own
// stream too (a domain only named in a node's permissions).
func unknownToC(st *store.State) []store.DomainState {
	owners := map[uint32]bool{}
	for _, n := range st.Nodes {
		if len(n.Perms) > 0 {
			owners[n.Perms[0].ID] = true
		}
	}
	var out []store.DomainState
	for _, d := range st.Domains {
		if !d.Introduced && !owners[d.ID] {
			out = append(out, d)
		}
	}
	return out
}

// forC is st without the domains C cannot take (refusal checked that
// they carry nothing but defaults).
func forC(st *store.State) *store.State {
	unknown := unknownToC(st)
	if len(unknown) == 0 {
		return st
	}
	c := *st
	c.Domains = slices.DeleteFunc(slices.Clone(st.Domains), func(d store.DomainState) bool {
		return slices.ContainsFunc(unknown, func(u store.DomainState) bool { return u.ID == d.ID })
	})
	return &c
}

// writeCState writes the state to path for release c, so that a failed
// write never leaves a partial stream where C looks for one.
func writeCState(path string, st *store.State, h *handover.Transports, c *cRelease) error {
	h.Version = c.version
	st = forC(st)
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("state for C xenstored: %w", err)
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	err = handover.Encode(bw, st, h)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err == nil {
		err = checkCStream(f, c)
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("state for C xenstored: %w", err)
	}
	return nil
}

// checkCStream reads f back as the release will: its version, and every
// record one it knows.
func checkCStream(f io.Reader, c *cRelease) error {
	rd, err := migration.NewReader(bufio.NewReader(f), nil)
	if err != nil {
		return err
	}
	if rd.Version() != c.version {
		return fmt.Errorf("stream version %d, C xenstored %s reads %d", rd.Version(), c.name, c.version)
	}
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch rec.(type) {
		case *migration.GlobalQuota, *migration.Domain, *migration.WatchExtended:
			if c.version == migration.Version1 {
				return fmt.Errorf("a %s record, which C xenstored %s skips", rec.Type(), c.name)
			}
		}
	}
}
