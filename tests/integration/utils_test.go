package integration

import (
	"bufio"
	"os"
	"os/exec"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// TestXenstoreUtilsReadWrite writes with xenstore-write and reads back with
// xenstore-read and with xsclient (the exact bytes on the store).
func TestXenstoreUtilsReadWrite(t *testing.T) {
	d := startDaemon(t)
	write, read := needTool(t, "xenstore-write"), needTool(t, "xenstore-read")
	c := d.Client(t)
	cases := []struct {
		name, path, arg string
		stored          string // bytes in the store
		printed         string // xenstore-read's output line (sanitised)
	}{
		{"plain", "/u/plain", "hello", "hello", "hello"},
		{"spaces", "/u/spaces", "hello  big world ", "hello  big world ", "hello  big world "},
		{"empty", "/u/empty", "", "", ""},
		{"escaped control bytes", "/u/esc", `a\x1bb\tc\\d`, "a\x1bb\tc\\d", `a\x1bb\tc\\d`},
		{"low control byte", "/u/low", `a\x01b`, "a\x01b", `a\001b`},
		{"octal NUL inside", "/u/nul", `x\000y`, "x\x00y", `x\000y`},
		{"deep new path", "/u/deep/er/than/before", "v", "v", "v"},
		{"overwrite", "/u/plain", "second", "second", "second"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d.ok(t, write, tc.path, tc.arg)
			got, err := c.Read(0, tc.path)
			if err != nil {
				t.Fatalf("xsclient read: %v", err)
			}
			if string(got) != tc.stored {
				t.Errorf("stored %q, want %q", got, tc.stored)
			}
			if out := d.ok(t, read, tc.path); out != tc.printed+"\n" {
				t.Errorf("xenstore-read printed %q, want %q", out, tc.printed+"\n")
			}
			if out := d.ok(t, read, "-R", tc.path); out != tc.stored {
				t.Errorf("xenstore-read -R printed %q, want %q", out, tc.stored)
			}
		})
	}

	t.Run("several keys at once", func(t *testing.T) {
		d.ok(t, write, "/multi/a", "1", "/multi/b", "two words")
		if out := d.ok(t, read, "/multi/a", "/multi/b"); out != "1\ntwo words\n" {
			t.Errorf("got %q", out)
		}
		if out := d.ok(t, read, "-p", "/multi/b"); out != "/multi/b: two words\n" {
			t.Errorf("read -p got %q", out)
		}
	})
	t.Run("value written by xsclient", func(t *testing.T) {
		if err := c.Write(0, "/u/fromgo", []byte("go\nvalue")); err != nil {
			t.Fatal(err)
		}
		if out := d.ok(t, read, "/u/fromgo"); out != `go\nvalue`+"\n" {
			t.Errorf("got %q", out)
		}
	})
	t.Run("missing node", func(t *testing.T) {
		r := d.run(t, read, "/u/nonexistent")
		if r.Code == 0 {
			t.Errorf("xenstore-read of a missing node exited 0, printed %q", r.Stdout)
		}
	})
}

// TestXenstoreUtilsTree covers ls, list, exists and rm.
func TestXenstoreUtilsTree(t *testing.T) {
	d := startDaemon(t)
	write, ls, list := needTool(t, "xenstore-write"), needTool(t, "xenstore-ls"), needTool(t, "xenstore-list")
	exists, rm := needTool(t, "xenstore-exists"), needTool(t, "xenstore-rm")
	d.ok(t, write, "/t/a", "alpha", "/t/b", "", "/t/c/d", "with space", "/t/c/e", "e")

	t.Run("ls", func(t *testing.T) {
		want := "a = \"alpha\"\nb = \"\"\nc = \"\"\n d = \"with space\"\n e = \"e\"\n"
		if out := d.ok(t, ls, "/t"); out != want {
			t.Errorf("xenstore-ls /t:\n%s\nwant:\n%s", out, want)
		}
	})
	t.Run("ls -f", func(t *testing.T) {
		want := "/t/a = \"alpha\"\n/t/b = \"\"\n/t/c = \"\"\n/t/c/d = \"with space\"\n/t/c/e = \"e\"\n"
		if out := d.ok(t, ls, "-f", "/t"); out != want {
			t.Errorf("xenstore-ls -f /t:\n%s\nwant:\n%s", out, want)
		}
	})
	t.Run("ls whole store", func(t *testing.T) {
		out := d.ok(t, ls, "-f")
		for _, l := range []string{`/t/c/d = "with space"`, `/tool/xenstored = ""`} {
			if !strings.Contains(out, l+"\n") {
				t.Errorf("xenstore-ls -f lacks %q:\n%s", l, out)
			}
		}
	})
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/t", []string{"a", "b", "c"}},
		{"/t/c", []string{"d", "e"}},
		{"/t/a", nil},
	} {
		t.Run("list "+tc.path, func(t *testing.T) {
			out := d.ok(t, list, tc.path)
			got := strings.Fields(out)
			sort.Strings(got)
			if len(got) == 0 {
				got = nil
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("xenstore-list %s = %q, want %q", tc.path, got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		path string
		code int
	}{{"/t", 0}, {"/t/c/d", 0}, {"/t/b", 0}, {"/t/zz", 1}, {"/nope/deeper", 1}} {
		t.Run("exists "+tc.path, func(t *testing.T) {
			if r := d.run(t, exists, tc.path); r.Code != tc.code {
				t.Errorf("xenstore-exists %s exited %d, want %d (%s)", tc.path, r.Code, tc.code, r.Stderr)
			}
		})
	}
	t.Run("rm", func(t *testing.T) {
		d.ok(t, rm, "/t/c")
		if r := d.run(t, exists, "/t/c/d"); r.Code == 0 {
			t.Errorf("/t/c/d survived xenstore-rm /t/c")
		}
		if out := d.ok(t, list, "/t"); out != "a\nb\n" {
			t.Errorf("after rm: list /t = %q", out)
		}
		// Removing a missing node whose parent exists is not an error.
		d.ok(t, rm, "/t/c")
		// xenstore-rm -t removes emptied parents too.
		d.ok(t, rm, "-t", "/t/a")
		if out := d.ok(t, list, "/t"); out != "b\n" {
			t.Errorf("after rm -t /t/a: list /t = %q", out)
		}
	})
	t.Run("list missing", func(t *testing.T) {
		if r := d.run(t, list, "/t/gone"); r.Code == 0 {
			t.Errorf("xenstore-list of a missing node exited 0")
		}
	})
}

// TestXenstoreChmod sets permissions with xenstore-chmod and checks them
// with xenstore-ls -p and xsclient's GET_PERMS.
func TestXenstoreChmod(t *testing.T) {
	d := startDaemon(t)
	write, chmod, ls := needTool(t, "xenstore-write"), needTool(t, "xenstore-chmod"), needTool(t, "xenstore-ls")
	c := d.Client(t)
	cases := []struct {
		name  string
		modes []string
		perms []string // GET_PERMS
		shown string   // xenstore-ls -p
	}{
		{"owner only", []string{"n0"}, []string{"n0"}, "(n0)"},
		{"owner and reader", []string{"b3", "r5"}, []string{"b3", "r5"}, "(b3,r5)"},
		{"all kinds", []string{"w1", "r2", "b4", "n6"}, []string{"w1", "r2", "b4", "n6"}, "(w1,r2,b4,n6)"},
		{"back to dom0", []string{"r0"}, []string{"r0"}, "(r0)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := "/perm/" + strings.ReplaceAll(tc.name, " ", "-")
			d.ok(t, write, p, "v")
			d.ok(t, chmod, append([]string{p}, tc.modes...)...)
			got, err := c.GetPerms(0, p)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.perms) {
				t.Errorf("GET_PERMS %s = %q, want %q", p, got, tc.perms)
			}
			out := d.ok(t, ls, "-p", "/perm")
			var line string
			sc := bufio.NewScanner(strings.NewReader(out))
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), p[len("/perm/"):]+" = ") {
					line = sc.Text()
				}
			}
			if !strings.HasPrefix(line, p[len("/perm/"):]+` = "v"`) || !strings.HasSuffix(line, "  "+tc.shown) {
				t.Errorf("xenstore-ls -p line %q, want value \"v\" and perms %s; output:\n%s", line, tc.shown, out)
			}
		})
	}
	t.Run("recursive", func(t *testing.T) {
		d.ok(t, write, "/rec/a/b", "1", "/rec/c", "2")
		d.ok(t, chmod, "-r", "/rec", "b0", "r7")
		for _, p := range []string{"/rec", "/rec/a", "/rec/a/b", "/rec/c"} {
			got, err := c.GetPerms(0, p)
			if err != nil || !reflect.DeepEqual(got, []string{"b0", "r7"}) {
				t.Errorf("GET_PERMS %s = %q, %v; want [b0 r7]", p, got, err)
			}
		}
	})
	t.Run("missing node", func(t *testing.T) {
		if r := d.run(t, chmod, "/perm/none", "n0"); r.Code == 0 {
			t.Errorf("xenstore-chmod on a missing node exited 0")
		}
	})
}

// TestXenstoreWatch runs xenstore-watch -n N and checks the initial event
// and one event per change below the watched path, and none for others.
func TestXenstoreWatch(t *testing.T) {
	d := startDaemon(t)
	watch := needTool(t, "xenstore-watch")
	c := d.Client(t)
	// events is how many events an op fires at the watch; they are read
	// before the next op, because an event identical to one still queued
	// is merged (as C xenstored does), so writing /w/a and removing it at
	// once may legitimately deliver one /w/a.
	type op struct {
		kind, path string
		events     int
	}
	cases := []struct {
		name  string
		watch string
		ops   []op
		want  []string // after the initial event, which is the watch path
	}{
		{"absolute", "/w", []op{
			{"write", "/wx", 0}, {"write", "/other/w", 0}, {"write", "/w/a", 1}, {"write", "/w/b/c", 1},
			{"rm", "/w/a", 1}, {"chmod", "/w", 1},
		}, []string{"/w/a", "/w/b/c", "/w/a", "/w"}},
		{"relative", "relw", []op{
			{"write", "/local/domain/0/relwx", 0}, {"write", "/local/domain/0/relw/a", 1}, {"rm", "/local/domain/0/relw", 1},
		}, []string{"relw/a", "relw"}},
		{"not yet existing", "/later/node", []op{
			{"write", "/later/other", 0}, {"write", "/later/node", 1}, {"write", "/later/node/child", 1}, {"rm", "/later", 1},
		}, []string{"/later/node", "/later/node/child", "/later/node"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := len(tc.want) + 1
			cmd := exec.Command(watch, "-n", strconv.Itoa(n), tc.watch)
			cmd.Env = append(os.Environ(), "XENSTORED_PATH="+d.Sock)
			w := startLines(t, cmd, "xenstore-watch -n "+strconv.Itoa(n))
			// The initial event proves the watch is registered.
			if l := w.next(); l != tc.watch {
				t.Fatalf("initial event %q, want %q", l, tc.watch)
			}
			var got []string
			for _, o := range tc.ops {
				var err error
				switch o.kind {
				case "write":
					err = c.Write(0, o.path, []byte("v"))
				case "rm":
					err = c.Rm(0, o.path)
				case "chmod":
					err = c.SetPerms(0, o.path, "n0", "r1")
				}
				if err != nil {
					t.Fatal(err)
				}
				for range o.events {
					got = append(got, w.next())
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("events %q, want %q", got, tc.want)
			}
			w.wait()
		})
	}
}
