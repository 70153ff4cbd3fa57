package integration

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// pyPrelude is prepended to every pyxs script: it connects clients to the
// socket given as argv[1] and reports results as JSON on stdout.
const pyPrelude = `
import errno, json, sys
import pyxs
from pyxs.exceptions import PyXSError

SOCK = sys.argv[1]
ARGS = sys.argv[2:]

def client():
    c = pyxs.Client(unix_socket_path=SOCK)
    c.connect()
    return c

def errname(e):
    return errno.errorcode.get(e.args[0], str(e.args[0]))

def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()
`

// pyScript writes a pyxs script into a temporary directory.
func pyScript(t *testing.T, body string) string {
	t.Helper()
	needPyxs(t)
	p := filepath.Join(t.TempDir(), "script.py")
	if err := os.WriteFile(p, []byte(pyPrelude+body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// runPy runs a pyxs script against the daemon and decodes its last stdout
// line as JSON into v.
func (d *Daemon) runPy(t *testing.T, body string, v any, args ...string) {
	t.Helper()
	script := pyScript(t, body)
	r := d.run(t, python, append([]string{script, d.Sock}, args...)...)
	if r.Code != 0 {
		t.Fatalf("pyxs script exited %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), v); err != nil {
		t.Fatalf("pyxs script output %q: %v (stderr %s)", r.Stdout, err, r.Stderr)
	}
}

// TestPyxsBasic writes values (spaces, empty, embedded NUL and DEL bytes)
// with pyxs and checks them with xsclient, and the reverse.
func TestPyxsBasic(t *testing.T) {
	d := startDaemon(t)
	c := d.Client(t)
	values := []struct {
		path  string
		value string
	}{
		{"/py/plain", "hello"},
		{"/py/spaces", " a b  c "},
		{"/py/empty", ""},
		{"/py/binary", "a\x00b\x7fc\x00\x00d"},
		{"/py/leading-nul", "\x00x"},
		{"/py/deep/er", "v"},
		{"/py/deep/er/est", "nested"},
	}
	// pyxs writes; the script reads back with the same client.
	body := `
import binascii
c = client()
res = {}
for a in ARGS:
    p, v = a.split("=", 1)
    p, v = p.encode(), binascii.unhexlify(v)
    c.write(p, v)
    res[p.decode()] = c.read(p).hex()
c.write(b"/py/gone/x", b"")
res["list"] = sorted(x.decode() for x in c.list(b"/py"))
res["exists"] = [c.exists(b"/py/plain"), c.exists(b"/py/nope")]
try:
    c.read(b"/py/nope")
    res["missing"] = "no error"
except PyXSError as e:
    res["missing"] = errname(e)
c.mkdir(b"/py/made/dir")
c.delete(b"/py/gone")
res["after"] = sorted(x.decode() for x in c.list(b"/py"))
c.close()
out(res)
`
	var args []string
	for _, v := range values {
		args = append(args, v.path+"="+hex.EncodeToString([]byte(v.value)))
	}
	var res map[string]any
	d.runPy(t, body, &res, args...)
	for _, v := range values {
		t.Run("pyxs write "+v.path, func(t *testing.T) {
			got, err := c.Read(0, v.path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != v.value {
				t.Errorf("xsclient reads %q, want %q", got, v.value)
			}
			// pyxs strips trailing NULs from every reply; none of our values
			// ends in one, so pyxs must read back the exact bytes.
			if res[v.path] != hex.EncodeToString([]byte(v.value)) {
				t.Errorf("pyxs reads %v, want %x", res[v.path], v.value)
			}
		})
	}
	check := func(key string, want any) {
		t.Helper()
		b, _ := json.Marshal(want)
		var w any
		json.Unmarshal(b, &w)
		if !reflect.DeepEqual(res[key], w) {
			t.Errorf("%s: pyxs got %v, want %v", key, res[key], w)
		}
	}
	check("list", []string{"binary", "deep", "empty", "gone", "leading-nul", "plain", "spaces"})
	check("exists", []bool{true, false})
	check("missing", "ENOENT")
	check("after", []string{"binary", "deep", "empty", "leading-nul", "made", "plain", "spaces"})

	t.Run("xsclient writes, pyxs reads", func(t *testing.T) {
		want := "x\x00y z\x7f"
		if err := c.Write(0, "/py/fromgo", []byte(want)); err != nil {
			t.Fatal(err)
		}
		if err := c.SetPerms(0, "/py/fromgo", "b0", "r3"); err != nil {
			t.Fatal(err)
		}
		var r struct {
			Value string
			Perms []string
		}
		d.runPy(t, `
c = client()
out({"Value": c.read(b"/py/fromgo").hex(), "Perms": [p.decode() for p in c.get_perms(b"/py/fromgo")]})
c.close()
`, &r)
		if r.Value != hex.EncodeToString([]byte(want)) {
			t.Errorf("pyxs reads %s, want %x", r.Value, want)
		}
		if !reflect.DeepEqual(r.Perms, []string{"b0", "r3"}) {
			t.Errorf("pyxs get_perms = %q", r.Perms)
		}
	})
	t.Run("set_perms", func(t *testing.T) {
		var r []string
		d.runPy(t, `
c = client()
c.set_perms(b"/py/plain", [b"n0", b"r4", b"w5"])
out([p.decode() for p in c.get_perms(b"/py/plain")])
c.close()
`, &r)
		got, err := c.GetPerms(0, "/py/plain")
		if err != nil || !reflect.DeepEqual(got, []string{"n0", "r4", "w5"}) || !reflect.DeepEqual(r, got) {
			t.Errorf("perms: xsclient %q (%v), pyxs %q; want [n0 r4 w5]", got, err, r)
		}
	})
	t.Run("domain path", func(t *testing.T) {
		var r string
		d.runPy(t, `
c = client()
out(c.get_domain_path(0).decode())
c.close()
`, &r)
		if r != "/local/domain/0" {
			t.Errorf("get_domain_path(0) = %q", r)
		}
	})
}

// TestPyxsWatch uses pyxs's Monitor: the initial event, then one event per
// change below the watched path made by xsclient, with the watch's token.
func TestPyxsWatch(t *testing.T) {
	d := startDaemon(t)
	c := d.Client(t)
	script := pyScript(t, `
c = client()
m = c.monitor()
m.watch(b"/pw", b"tok-1")
events = m.wait()
p, tok = next(events)
out(["initial", p.decode(), tok.decode()])
got = []
for _ in range(int(ARGS[0])):
    p, tok = next(events)
    got.append([p.decode(), tok.decode()])
m.unwatch(b"/pw", b"tok-1")
c.close()
out(got)
`)
	w := startLines(t, exec.Command(python, script, d.Sock, "3"), "pyxs watcher")
	if l := w.next(); l != `["initial", "/pw", "tok-1"]` {
		t.Fatalf("initial event line %s", l)
	}
	if err := c.Write(0, "/pwx", []byte("no event")); err != nil {
		t.Fatal(err)
	}
	if err := c.Write(0, "/pw/a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mkdir(0, "/pw/b/c"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rm(0, "/pw"); err != nil {
		t.Fatal(err)
	}
	var got [][]string
	if err := json.Unmarshal([]byte(w.next()), &got); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"/pw/a", "tok-1"}, {"/pw/b/c", "tok-1"}, {"/pw", "tok-1"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	w.wait()
}

// TestPyxsTransactions: a committed transaction, an aborted one, and a
// conflicting commit between two pyxs connections, which gets EAGAIN.
func TestPyxsTransactions(t *testing.T) {
	d := startDaemon(t)
	c := d.Client(t)
	var r map[string]any
	d.runPy(t, `
a = client()
b = client()
res = {}

# Commit: both writes appear together.
a.transaction()
a.write(b"/tx/one", b"1")
a.write(b"/tx/two", b"2")
res["invisible-before-commit"] = b.exists(b"/tx/one")
res["commit"] = a.commit()
res["after-commit"] = [b.read(b"/tx/one").decode(), b.read(b"/tx/two").decode()]

# Abort: nothing changes.
a.transaction()
a.write(b"/tx/one", b"aborted")
a.rollback()
res["after-abort"] = b.read(b"/tx/one").decode()

# Conflict: a reads and writes /tx/one in a transaction, b writes it
# outside; a's commit fails with EAGAIN (pyxs returns False).
a.transaction()
a.read(b"/tx/one")
a.write(b"/tx/one", b"from-a")
b.write(b"/tx/one", b"from-b")
res["conflict-commit"] = a.commit()
res["after-conflict"] = b.read(b"/tx/one").decode()

# The same conflict seen as the raw error: TRANSACTION_END with T.
a.transaction()
a.read(b"/tx/two")
b.write(b"/tx/two", b"b-again")
a.write(b"/tx/two", b"a-again")
try:
    a.ack(pyxs._internal.Op.TRANSACTION_END, b"T\x00")
    res["raw-end"] = "OK"
except PyXSError as e:
    res["raw-end"] = errname(e)
a.tx_id = 0
res["after-raw"] = a.read(b"/tx/two").decode()

# A node only read in the transaction and changed outside conflicts too,
# as does a listed directory that gains a child; unrelated writes do not.
a.transaction()
a.read(b"/tx/one")
b.write(b"/tx/one", b"changed")
a.write(b"/tx/elsewhere", b"x")
res["read-only-conflict"] = a.commit()
a.transaction()
a.list(b"/tx")
b.write(b"/tx/added", b"1")
a.write(b"/tx2/x", b"x")
res["list-conflict"] = a.commit()
a.transaction()
a.write(b"/tx/mine", b"1")
b.write(b"/unrelated/zz", b"1")
res["unrelated"] = a.commit()

# Inside a transaction: its own new nodes are listed, others' are not yet.
a.transaction()
a.write(b"/tx/new/n", b"n")
res["tx-view"] = [sorted(x.decode() for x in a.list(b"/tx/new")), b.exists(b"/tx/new")]
a.rollback()
res["rolled-back"] = b.exists(b"/tx/new")

# Retry succeeds.
a.transaction()
a.write(b"/tx/one", b"retried")
res["retry"] = a.commit()
a.close()
b.close()
out(res)
`, &r)
	want := map[string]any{
		"invisible-before-commit": false,
		"commit":                  true,
		"after-commit":            []any{"1", "2"},
		"after-abort":             "1",
		"conflict-commit":         false,
		"after-conflict":          "from-b",
		"raw-end":                 "EAGAIN",
		"after-raw":               "b-again",
		"retry":                   true,
		"read-only-conflict":      false,
		"list-conflict":           false,
		"unrelated":               true,
		"tx-view":                 []any{[]any{"n"}, false},
		"rolled-back":             false,
	}
	for k, w := range want {
		if !reflect.DeepEqual(r[k], w) {
			t.Errorf("%s: got %v, want %v", k, r[k], w)
		}
	}
	if v, err := c.Read(0, "/tx/one"); err != nil || string(v) != "retried" {
		t.Errorf("xsclient reads /tx/one = %q, %v", v, err)
	}
}
