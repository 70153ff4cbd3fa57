package store

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/xsstub/xenstored/wire"
)

func TestBasicOps(t *testing.T) {
	e := newTestEngine(t, nil)
	d := dom0(t, e)
	d.write("/a/b/c", "v1")
	steps := []struct {
		typ     wire.Type
		args    []string
		want    string // payload, or
		wantErr string
	}{
		{typ: wire.Read, args: []string{"/a/b/c"}, want: "v1"},
		{typ: wire.Read, args: []string{"/a/b"}, want: ""},
		{typ: wire.Read, args: []string{"/nope"}, wantErr: "ENOENT"},
		{typ: wire.Read, args: []string{"/a/"}, wantErr: "EINVAL"},
		{typ: wire.Read, args: []string{"@releaseDomain"}, wantErr: "EINVAL"},
		{typ: wire.Read, args: []string{"/a", "extra"}, wantErr: "EINVAL"},
		{typ: wire.Read, args: nil, wantErr: "EINVAL"},
		{typ: wire.Directory, args: []string{"/"}, want: "tool\x00a\x00"},
		{typ: wire.Directory, args: []string{"/a/b/c"}, want: ""},
		{typ: wire.Directory, args: []string{"/x"}, wantErr: "ENOENT"},
		{typ: wire.Mkdir, args: []string{"/a/b"}, want: "OK\x00"},
		{typ: wire.Read, args: []string{"/a/b/c"}, want: "v1"},
		{typ: wire.Mkdir, args: []string{"/m/n/o"}, want: "OK\x00"},
		{typ: wire.Directory, args: []string{"/m/n"}, want: "o\x00"},
		{typ: wire.Rm, args: []string{"/m/n/o/p"}, want: "OK\x00"},  // absent, parent exists
		{typ: wire.Rm, args: []string{"/m/x/y"}, wantErr: "ENOENT"}, // parent absent too
		{typ: wire.Rm, args: []string{"/m"}, want: "OK\x00"},
		{typ: wire.Read, args: []string{"/m/n"}, wantErr: "ENOENT"},
		{typ: wire.Rm, args: []string{"/"}, wantErr: "EINVAL"},
		{typ: wire.GetPerms, args: []string{"/a"}, want: "n0\x00"},
		{typ: wire.GetPerms, args: []string{"@introduceDomain"}, want: "n0\x00"},
		{typ: wire.GetPerms, args: []string{"@releaseDomain"}, want: "n0\x00r32757\x00"},
		// Other @ names are nodes that do not exist, as in C 4.22.
		{typ: wire.GetPerms, args: []string{"@foo"}, wantErr: "ENOENT"},
		{typ: wire.GetPerms, args: []string{"@introduceDomain/1"}, wantErr: "ENOENT"},
		{typ: wire.SetPerms, args: []string{"@", "n0"}, wantErr: "ENOENT"},
		{typ: wire.GetPerms, args: []string{"@a b"}, wantErr: "EINVAL"},
		{typ: wire.GetPerms, args: []string{"@a/"}, wantErr: "EINVAL"},
		{typ: wire.GetDomainPath, args: []string{"7"}, want: "/local/domain/7\x00"},
		// C 4.22 refuses a domid that is not a whole number up to 65535.
		{typ: wire.GetDomainPath, args: []string{"x"}, wantErr: "EINVAL"},
		{typ: wire.GetDomainPath, args: []string{"70000"}, wantErr: "EINVAL"},
		{typ: wire.GetDomainPath, args: []string{""}, want: "/local/domain/0\x00"},
		{typ: wire.IsDomainIntroduced, args: []string{"0x0"}, wantErr: "EINVAL"},
		{typ: wire.Release, args: []string{"65536"}, wantErr: "EINVAL"},
		{typ: wire.Resume, args: []string{"5x"}, wantErr: "EINVAL"},
		{typ: wire.SetTarget, args: []string{"5", "-1"}, wantErr: "EINVAL"},
		{typ: wire.Introduce, args: []string{"abc", "0", "7"}, wantErr: "EINVAL"},
		{typ: wire.Write, args: []string{"/" + strings.Repeat("p", 2048)}, wantErr: "EINVAL"}, // path-max for dom0 too
		{typ: wire.IsDomainIntroduced, args: []string{"0"}, want: "T\x00"},
		{typ: wire.IsDomainIntroduced, args: []string{"9"}, want: "F\x00"},
		{typ: wire.Type(20), args: []string{"/a"}, wantErr: "ENOSYS"},
		{typ: wire.Type(99), args: []string{"/a"}, wantErr: "ENOSYS"},
		{typ: wire.WatchEvent, args: []string{"/a", "t"}, wantErr: "ENOSYS"},
		{typ: wire.Error, args: []string{"EINVAL"}, wantErr: "ENOSYS"},
		{typ: wire.TransactionEnd, args: []string{"T"}, wantErr: "ENOENT"},
		{typ: wire.Read, args: []string{"relative"}, wantErr: "ENOENT"},
	}
	for i, s := range steps {
		got, errName := d.call(s.typ, 0, s.args...)
		if errName != s.wantErr || (s.wantErr == "" && got != s.want) {
			t.Errorf("step %d %v %q: got %q err %q; want %q err %q", i, s.typ, s.args, got, errName, s.want, s.wantErr)
		}
	}
	checkConsistent(t, e)
}

func TestWriteValues(t *testing.T) {
	e := newTestEngine(t, nil)
	d := dom0(t, e)
	for _, v := range []string{"", "plain", "with spaces", "nul\x00inside\x00", strings.Repeat("x", 4000)} {
		d.write("/v", v)
		if got := d.read("/v"); got != v {
			t.Errorf("value %.20q read back as %.20q", v, got)
		}
	}
	// A WRITE needs at least the path's terminating NUL.
	if m := d.do(wire.Write, 0, []byte("/nonul")); m.Type != wire.Error {
		t.Errorf("write without NUL: %v %q", m.Type, m.Payload)
	}
	// Children keep insertion order, as C xenstored lists them.
	for _, n := range []string{"z", "a", "m"} {
		d.write("/order/"+n, "")
	}
	if got := list(d.must(wire.Directory, 0, "/order")); !reflect.DeepEqual(got, []string{"z", "a", "m"}) {
		t.Errorf("children %q", got)
	}
	d.must(wire.Rm, 0, "/order/a")
	d.write("/order/a", "")
	if got := list(d.must(wire.Directory, 0, "/order")); !reflect.DeepEqual(got, []string{"z", "m", "a"}) {
		t.Errorf("children after re-create %q", got)
	}
	checkConsistent(t, e)
}

// Seed fix 1 (XSA-72): a reply over 4096 bytes is an E2BIG error and the
// connection stays usable.
func TestOversizedReplyIsE2BIG(t *testing.T) {
	e := newTestEngine(t, nil)
	maker, lister := dom0(t, e), dom0(t, e)
	for i := 0; i < 300; i++ {
		maker.write("/big/child-with-a-long-name-"+strings.Repeat("x", 10)+"-"+strconv.Itoa(i), "")
	}
	lister.fails("E2BIG", wire.Directory, 0, "/big")
	maker.write("/big/ok", "fine")
	if got := lister.read("/big/ok"); got != "fine" {
		t.Fatalf("lister unusable after E2BIG: %q", got)
	}
	// A huge value read back is fine up to 4096 bytes of payload.
	maker.write("/v", strings.Repeat("y", 4096-len("/v")-1))
	if got := lister.read("/v"); len(got) != 4096-3 {
		t.Fatalf("read %d bytes", len(got))
	}
	// DIRECTORY_PART pages the same listing completely.
	var all []string
	off := 0
	var gen string
	for {
		p := lister.must(wire.DirectoryPart, 0, "/big", strconv.Itoa(off))
		if len(p) > wire.PayloadMax {
			t.Fatalf("directory part of %d bytes", len(p))
		}
		parts := strings.Split(p, "\x00")
		if gen == "" {
			gen = parts[0]
		} else if parts[0] != gen {
			t.Fatalf("generation changed %s -> %s", gen, parts[0])
		}
		body := p[len(parts[0])+1:]
		if strings.HasSuffix(body, "\x00\x00") || body == "\x00" {
			all = append(all, list(strings.TrimSuffix(body, "\x00"))...)
			break
		}
		all = append(all, list(body)...)
		off += len(body)
	}
	if len(all) != 301 {
		t.Fatalf("DIRECTORY_PART gave %d children, want 301", len(all))
	}
}
