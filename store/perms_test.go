package store

import (
	"testing"

	"github.com/xsstub/xenstored/wire"
)

func TestPermissions(t *testing.T) {
	e := newTestEngine(t, nil)
	d := dom0(t, e)
	g5, g6 := guest(t, e, 5), guest(t, e, 6)
	d.write("/local/domain/5/x", "mine")
	d.must(wire.SetPerms, 0, "/local/domain/5", "n0", "b5")
	d.must(wire.SetPerms, 0, "/local/domain/5/x", "n0", "b5")
	d.write("/secret/inner", "s")
	d.write("/pub/v", "p")
	d.must(wire.SetPerms, 0, "/pub", "r0")
	d.must(wire.SetPerms, 0, "/pub/v", "n0", "r6")

	tests := []struct {
		who     *tconn
		typ     wire.Type
		args    []string
		want    string
		wantErr string
	}{
		{g5, wire.Read, []string{"x"}, "mine", ""}, // relative to /local/domain/5
		{g5, wire.Read, []string{"/local/domain/5/x"}, "mine", ""},
		{g6, wire.Read, []string{"/local/domain/5/x"}, "", "EACCES"},
		// No leak: an absent node under an unreadable parent is EACCES too.
		{g6, wire.Read, []string{"/local/domain/5/absent"}, "", "EACCES"},
		{g5, wire.Read, []string{"/local/domain/5/absent"}, "", "ENOENT"},
		{g6, wire.Read, []string{"/secret/inner"}, "", "EACCES"},
		{g6, wire.Read, []string{"/secret/none"}, "", "EACCES"},
		{g6, wire.Directory, []string{"/secret"}, "", "EACCES"},
		{g6, wire.Read, []string{"/pub/v"}, "p", ""},
		{g5, wire.Read, []string{"/pub/v"}, "", "EACCES"},
		{g5, wire.Read, []string{"/pub/none"}, "", "ENOENT"}, // parent readable
		{g6, wire.Write, []string{"/pub/v", "x"}, "", "EACCES"},
		{g6, wire.Directory, []string{"/"}, "", "EACCES"}, // XSA-353: root is checked
		{g6, wire.Rm, []string{"/secret"}, "", "EACCES"},
		{g6, wire.SetPerms, []string{"/", "b6"}, "", "EACCES"},
		{g6, wire.GetPerms, []string{"/local/domain/5/x"}, "", "EACCES"},
		{g5, wire.GetPerms, []string{"x"}, "n0\x00b5\x00", ""},
		{g5, wire.Write, []string{"new/node", ""}, "OK\x00", ""},
		{g5, wire.GetPerms, []string{"new/node"}, "n5\x00b5\x00", ""}, // guest owns what it creates
		{g5, wire.SetPerms, []string{"new/node", "n5", "r6"}, "OK\x00", ""},
		{g6, wire.Read, []string{"/local/domain/5/new/node"}, "", ""},
		{g5, wire.SetPerms, []string{"new/node", "n6"}, "", "EPERM"}, // XSA-352
		{g5, wire.SetPerms, []string{"x", "n6"}, "", "EACCES"},       // not the owner
		{g5, wire.SetPerms, []string{"new/node", "q5"}, "", "EINVAL"},
		{g5, wire.SetPerms, []string{"new/node"}, "", "EINVAL"},
		{g6, wire.Write, []string{"/local/domain/6/a", "v"}, "", "EACCES"}, // home not writable yet
		{g5, wire.Control, []string{"help"}, "", "EACCES"},
		{g5, wire.Introduce, []string{"9", "1", "1"}, "", "EACCES"},
		{g5, wire.IsDomainIntroduced, []string{"0"}, "", "EACCES"},
		{g5, wire.SetTarget, []string{"5", "6"}, "", "EACCES"},
		{g5, wire.GetQuota, nil, "", "EACCES"},
		{g5, wire.SetFeature, []string{"5", "1"}, "", "EACCES"},
		{g5, wire.GetFeature, []string{"5"}, "", "EACCES"},
		{g5, wire.Watch, []string{"@introduceDomain", "t"}, "OK\x00", ""}, // allowed, but no events
		{g5, wire.GetPerms, []string{"@nonsense"}, "", "EACCES"},          // "/" is not readable (C 4.22)
		{g5, wire.GetPerms, []string{"@releaseDomain/1"}, "", "ENOENT"},   // @releaseDomain is
	}
	for i, tt := range tests {
		var got, errName string
		if tt.typ == wire.Write {
			m := tt.who.do(wire.Write, 0, append(append([]byte(tt.args[0]), 0), tt.args[1]...))
			if m.Type == wire.Error {
				errName = string(m.Payload[:len(m.Payload)-1])
			} else {
				got = string(m.Payload)
			}
		} else {
			got, errName = tt.who.call(tt.typ, 0, tt.args...)
		}
		if errName != tt.wantErr || (tt.wantErr == "" && tt.want != "" && got != tt.want) {
			t.Errorf("case %d: dom%d %v %q = %q, %q; want %q, %q", i, tt.who.c.domid, tt.typ, tt.args, got, errName, tt.want, tt.wantErr)
		}
	}
	checkConsistent(t, e)
}

func TestSetTargetGrantsTargetsRights(t *testing.T) {
	e := newTestEngine(t, nil)
	d := dom0(t, e)
	dm := guest(t, e, 9) // a device model acting for domain 5
	d.must(wire.Introduce, 0, "5", "1", "1")
	d.must(wire.Introduce, 0, "9", "1", "1")
	d.write("/local/domain/5/dev", "x")
	d.must(wire.SetPerms, 0, "/local/domain/5/dev", "n5")
	dm.fails("EACCES", wire.Read, 0, "/local/domain/5/dev")
	d.must(wire.SetTarget, 0, "9", "5")
	if got := dm.read("/local/domain/5/dev"); got != "x" {
		t.Fatalf("target read %q", got)
	}
	d.fails("ENOENT", wire.SetTarget, 0, "9", "77")
	checkConsistent(t, e)
}
