package daemon

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/store/handover"
	"github.com/xsstub/xenstored/store/migration"
	"github.com/xsstub/xenstored/wire"
)

// readGolden reads a stream real C xenstored wrote (difftest's
// TestLiveUpdateCGoldens captures them) as -U does, from a copy.
func readGolden(t *testing.T, rel string, quotas store.Quotas) (*store.State, *handover.Transports) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", rel))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "state_dump")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	saved := evtchnDevice
	evtchnDevice = "/nonexistent/evtchn" // no Xen: C's handle is no use
	defer func() { evtchnDevice = saved }()
	st, h, err := readCState(path, 0, quotas, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the stream is still there after reading (%v): a later -U would read it again", err)
	}
	return st, h
}

func TestReadCGoldens(t *testing.T) {
	base := store.DefaultQuotas()
	base.Set("nodes", 1234, false) // C 4.17's command line, in effect
	for _, tt := range []struct {
		rel        string
		wantNodes  int // of /golden's three
		wantQuotas int // nodes quota: from the command line (4.17) or the stream (4.22)
	}{
		{"c417/tree-watches-output.state", 2, 1234},
		{"c422/tree-watches-output.state", 2, 1000},
	} {
		t.Run(tt.rel, func(t *testing.T) {
			st, h := readGolden(t, tt.rel, base)
			if got := st.Quotas.Hard[0]; got != tt.wantQuotas {
				t.Errorf("nodes quota %d, want %d", got, tt.wantQuotas)
			}
			perms := map[string]string{}
			for _, n := range st.Nodes {
				perms[n.Path] = strings.Join(n.Perms.Strings(), " ") + "=" + string(n.Value)
			}
			if got := perms["/golden/a"]; got != "n0 r5 w7 b3=value" {
				t.Errorf("/golden/a: %q", got)
			}
			if got := perms["/local/domain/5/x"]; !strings.HasSuffix(got, "=in 5") {
				t.Errorf("/local/domain/5/x: %q", got)
			}
			doms := map[uint32]store.DomainState{}
			for _, d := range st.Domains {
				doms[d.ID] = d
			}
			if d := doms[5]; !d.Introduced || !d.HasTarget || d.Target != 3 || !doms[3].Introduced || !doms[0].Introduced {
				t.Errorf("domains %+v", st.Domains)
			}
			var watches []string
			var in, out, ok int
			for _, c := range st.Conns {
				for _, w := range c.Watches {
					watches = append(watches, w.Path[w.RelPrefix:]+"="+w.Path+" "+w.Token)
				}
				if c.Ring {
					continue
				}
				s := h.Sockets[c.ID]
				if s.FD <= 2 {
					t.Errorf("connection %d: socket descriptor %d", c.ID, s.FD)
				}
				if len(s.In) > 0 {
					in++
					if !bytes.HasPrefix(s.In[wire.HeaderSize:], []byte("/gol")) {
						t.Errorf("partial request %q", s.In)
					}
				}
				for _, m := range c.Output {
					if m[0] == byte(wire.WatchEvent) {
						out++
					}
					if bytes.HasSuffix(m, []byte("OK\x00")) && m[0] == byte(wire.Control) {
						ok++
					}
				}
			}
			slices.Sort(watches)
			want := []string{"/golden=/golden tok-abs", "/slow=/slow tok-slow", "@releaseDomain=@releaseDomain tok-rel-dom", "rel=/local/domain/0/rel tok-rel"}
			if !slices.Equal(watches, want) {
				t.Errorf("watches %q, want %q", watches, want)
			}
			if in != 1 || out < 10 || ok != 1 {
				t.Errorf("%d partial requests, %d queued events, %d live-update replies; want 1, many, 1", in, out, ok)
			}
			if h.ListenFD <= 2 || h.EvtchnFD != -1 {
				t.Errorf("listener %d, event channel handle %d (no Xen: -1)", h.ListenFD, h.EvtchnFD)
			}
			if _, err := store.Restore(store.Config{}, st); err != nil {
				t.Fatalf("restoring: %v", err)
			}
		})
	}
}

// TestReadCForcedTransaction: C's forced update (-F) writes no trace of
// an open transaction: its writes are gone, its id unknown to the next
// daemon (ENOENT on the next use, from C as from us).
func TestReadCForcedTransaction(t *testing.T) {
	for _, rel := range []string{"c417/forced-transaction.state", "c422/forced-transaction.state"} {
		t.Run(rel, func(t *testing.T) {
			st, _ := readGolden(t, rel, store.DefaultQuotas())
			paths := map[string]bool{}
			for _, n := range st.Nodes {
				paths[n.Path] = true
			}
			if !paths["/golden/committed"] || paths["/golden/in-tx"] {
				t.Errorf("committed node kept %v, the transaction's node dropped %v", paths["/golden/committed"], !paths["/golden/in-tx"])
			}
			for _, c := range st.Conns {
				if len(c.AbortedTxns) > 0 {
					t.Errorf("connection %d: transactions %v", c.ID, c.AbortedTxns)
				}
			}
		})
	}
}

func TestCArgv(t *testing.T) {
	for _, tt := range []struct {
		rel     int // index in cReleases
		args    []string
		want    string // "" for an error
		wantErr string
	}{
		{0, []string{"-N"}, "-N -U", ""},
		{0, []string{"-N", "-U"}, "-N -U", ""},
		{0, []string{"--pid-file", "/run/x.pid", "-T", "/t", "-E1000", "-Q", "nodes=5", "-D"}, "--pid-file /run/x.pid -T /t -E1000 -Q nodes=5 -D -U", ""},
		{0, []string{"--pid-file=/run/x.pid", "-NV", "--live-update"}, "--pid-file=/run/x.pid -NV --live-update", ""},
		{0, []string{"--socket", "/x"}, "", "unknown option --socket"},
		{0, []string{"--trace-control=1"}, "", "unknown option --trace-control"},
		{0, []string{"-e", "5"}, "", "unknown option -e"},
		{0, []string{"-F"}, "", "needs a value"},
		{0, []string{"extra"}, "", "no option"},
		{1, []string{"-N", "--trace-control=1", "--event", "5"}, "-N --trace-control=1 --event 5 -U", ""},
		{1, []string{"-D"}, "", "unknown option -D"},
		{1, []string{"--no-fork=1"}, "", "takes no value"},
		{2, []string{"--trace-file", "/t", "--pid-file", "/run/xenstore.pid"}, "--trace-file /t --pid-file /run/xenstore.pid -U", ""},
		{2, []string{"-V"}, "", "unknown option -V"},
		{2, []string{"-I"}, "", "unknown option -I"},
	} {
		c := cReleases[tt.rel]
		got, err := c.argv(tt.args)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s %q: %v, want an error with %q", c.name, tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != tt.want {
			t.Errorf("%s %q: %q, %v; want %q", c.name, tt.args, got, err, tt.want)
		}
	}
}

func TestCRefusal(t *testing.T) {
	base := store.DefaultQuotas()
	changed := base
	changed.Set("watches", 7, false)
	dom := func(id uint32, intro bool, q store.Quotas) store.DomainState {
		return store.DomainState{ID: id, Introduced: intro, Quotas: q}
	}
	node := store.NodeState{Path: "/a", Perms: store.Perms{{ID: 0}, {ID: 9}}}
	for _, tt := range []struct {
		name    string
		st      store.State
		refuse  []string // releases that refuse
		wantMsg string
	}{
		{"defaults", store.State{Quotas: base, Domains: []store.DomainState{dom(0, true, base)}}, nil, ""},
		{"watch depth", store.State{Quotas: base, Conns: []store.ConnState{{ID: 1, Watches: []store.WatchState{{Path: "/a", Depth: 1}}}}},
			[]string{"4.17", "4.22", "4.20"}, "with depth 1"},
		{"quotas set at run time", store.State{Quotas: changed}, []string{"4.17", "4.20"}, "changed at run time"},
		{"a domain's own quotas", store.State{Quotas: base, Domains: []store.DomainState{dom(5, true, changed)}}, []string{"4.17", "4.20"}, "domain 5 has quotas"},
		{"perm-only domain with quotas", store.State{Quotas: base, Nodes: []store.NodeState{node}, Domains: []store.DomainState{dom(9, false, changed)}},
			[]string{"4.17", "4.22", "4.20"}, "neither introduced nor owning"},
		{"perm-only domain, defaults", store.State{Quotas: base, Nodes: []store.NodeState{node}, Domains: []store.DomainState{dom(9, false, base)}}, nil, ""},
	} {
		for _, c := range cReleases {
			err := c.refusal(&tt.st, base)
			want := slices.Contains(tt.refuse, c.name)
			if (err != nil) != want || (err != nil && !strings.Contains(err.Error(), tt.wantMsg)) {
				t.Errorf("%s, C %s: %v; want refused %v (%q)", tt.name, c.name, err, want, tt.wantMsg)
			}
		}
	}
}

// TestWriteCState: what a C target gets is the stream version it reads,
// without the records 4.17 would skip or 4.22 would exit on.
func TestWriteCState(t *testing.T) {
	base := store.DefaultQuotas()
	st := &store.State{Quotas: base,
		Nodes:   []store.NodeState{{Path: "/"}, {Path: "/a", Perms: store.Perms{{ID: 0}, {ID: 9}}}},
		Domains: []store.DomainState{{ID: 0, Introduced: true, Quotas: base}, {ID: 9, Quotas: base}},
		Conns:   []store.ConnState{{ID: 7, Priv: true}},
	}
	for _, c := range cReleases {
		t.Run(c.name, func(t *testing.T) {
			h := &handover.Transports{ListenFD: 3, EvtchnFD: -1, Sockets: map[uint64]handover.Conn{7: {FD: 4}}, Rings: map[uint64]handover.Conn{}}
			path := filepath.Join(t.TempDir(), "state_dump")
			if err := writeCState(path, st, h, c); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rd, err := migration.NewReader(f, nil)
			if err != nil {
				t.Fatal(err)
			}
			var types []string
			for {
				rec, err := rd.Next()
				if err != nil {
					break
				}
				if d, ok := rec.(*migration.Domain); ok && d.DomID == 9 {
					t.Errorf("DOMAIN_DATA for domain 9, known to C only from a permission")
				}
				types = append(types, rec.Type().String())
			}
			if rd.Version() != c.version {
				t.Errorf("version %d, want %d", rd.Version(), c.version)
			}
			// The domain's ring record comes before the socket's: C 4.17
			// crashes on a socket read before dom0.
			i, j := slices.Index(types, "CONNECTION_DATA"), slices.Index(types, "NODE_DATA")
			if i < 0 || j < i || types[i+1] != "CONNECTION_DATA" {
				t.Errorf("records %v", types)
			}
			if has := slices.Contains(types, "GLOBAL_QUOTA_DATA"); has != (c.version == migration.Version2) {
				t.Errorf("records %v: quota records for version %d", types, c.version)
			}
		})
	}
}

func TestIdentifyC(t *testing.T) {
	dir := t.TempDir()
	pad := bytes.Repeat([]byte{0}, 300<<10) // markers across the reader's chunks
	opts := func(short string) string { return "\x00" + short + "\x00" }
	o417, o422 := opts(cReleases[0].short), opts(cReleases[1].short)
	cat := func(parts ...string) []byte { return []byte(strings.Join(parts, "")) }
	for _, tt := range []struct {
		name    string
		content []byte
		want    string // "" for not C, "error" for refused
	}{
		{"c417", append(append(slices.Clone(pad), "x"+cMarker+o417...), 0), "4.17"},
		{"c422", append(append([]byte(cV2Marker+o422), pad...), cMarker...), "4.22"},
		// Debian 13's 4.20.4: version 1 reader with 4.22's options.
		{"c420", cat(cMarker, string(pad), o422), "4.20"},
		{"v1 reader, unknown options", cat(cMarker, opts("DE:F:HI::KNS:t:U")), "error"},
		{"v2 reader with 4.17's options", cat(cMarker, cV2Marker, o417), "error"},
		{"options only as a longer string", cat(cMarker, "x"+cReleases[0].short), "error"},
		{"ours", []byte(cMarker + cV2Marker + checkOK + o422), ""},
		{"other", []byte("#!/bin/sh\n"), ""},
	} {
		p := filepath.Join(dir, tt.name)
		if err := os.WriteFile(p, tt.content, 0o755); err != nil {
			t.Fatal(err)
		}
		c, err := identifyC(p)
		if tt.want == "error" {
			if err == nil || !strings.Contains(err.Error(), "not known here") {
				t.Errorf("%s: %v, %v; want refused", tt.name, c, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if c != nil {
			got = c.name
		}
		if got != tt.want {
			t.Errorf("%s: identified as %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestCEvtchnFD: the handle C names must be the event channel device,
// still open; without Xen it is dropped.
func TestCEvtchnFD(t *testing.T) {
	dir := t.TempDir()
	dev := filepath.Join(dir, "evtchn")
	other := filepath.Join(dir, "other")
	for _, p := range []string{dev, other} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	open := func(p string) int32 {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return int32(f.Fd())
	}
	saved := evtchnDevice
	defer func() { evtchnDevice = saved }()
	for _, tt := range []struct {
		name   string
		device string
		fd     int32
		want   int32 // -2: an error
	}{
		{"the device", dev, open(dev), -3},
		{"another file", dev, open(other), -2},
		{"closed", dev, 1000, -2},
		{"none", dev, -1, -1},
		{"no Xen", "/nonexistent/evtchn", open(other), -1},
	} {
		evtchnDevice = tt.device
		got, err := cEvtchnFD(tt.fd)
		want := tt.want
		if want == -3 {
			want = tt.fd
		}
		if (err != nil) != (want == -2) || (err == nil && got != want) {
			t.Errorf("%s: %d, %v; want %d", tt.name, got, err, want)
		}
	}
}
