package integration

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestXenstoreControl runs Xen's xenstore-control (the real binary, not
// Debian's wrapper) against the daemon.
func TestXenstoreControl(t *testing.T) {
	d := startDaemon(t)
	ctl := needXenTool(t, "xenstore-control")
	quotaLine := func(name string, val int) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s*:\s*` + strconv.Itoa(val) + `\b`)
	}
	cases := []struct {
		name  string
		args  []string
		match []*regexp.Regexp // all must match stdout
		after func(t *testing.T)
	}{
		{name: "help", args: []string{"help"}, match: []*regexp.Regexp{
			regexp.MustCompile(`(?m)^check\b`), regexp.MustCompile(`(?m)^memreport\b`),
			regexp.MustCompile(`(?m)^print\s+<string>`), regexp.MustCompile(`(?m)^quota\b`),
			regexp.MustCompile(`(?m)^help\b`),
		}},
		{name: "check", args: []string{"check"}, match: []*regexp.Regexp{regexp.MustCompile(`^OK\n?$`)}},
		{name: "quota", args: []string{"quota"}, match: []*regexp.Regexp{
			regexp.MustCompile(`(?m)^nodes\s*:\s*\d+`), regexp.MustCompile(`(?m)^watches\s*:\s*\d+`),
			regexp.MustCompile(`(?m)^transactions\s*:\s*\d+`),
		}},
		{name: "quota set nodes 5000", args: []string{"quota", "set", "nodes", "5000"},
			match: []*regexp.Regexp{regexp.MustCompile(`^OK\n?$`)},
			after: func(t *testing.T) {
				out := d.ok(t, ctl, "quota")
				if !quotaLine("nodes", 5000).MatchString(out) {
					t.Errorf("quota after set: nodes is not 5000:\n%s", out)
				}
			}},
		{name: "memreport", args: []string{"memreport"}, match: []*regexp.Regexp{regexp.MustCompile(`\S`)}},
		{name: "print hello", args: []string{"print", "hello"},
			after: func(t *testing.T) {
				if !strings.Contains(d.Log(), "hello") {
					t.Errorf("`print hello` did not reach the daemon's log:\n%s", d.Log())
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := d.ok(t, ctl, tc.args...)
			for _, re := range tc.match {
				if !re.MatchString(out) {
					t.Errorf("output lacks %v:\n%s", re, out)
				}
			}
			if tc.after != nil {
				tc.after(t)
			}
		})
	}
	for _, args := range [][]string{{"no-such-command"}, {"quota", "set", "nodes"}, {"quota", "set", "nosuch", "5"}} {
		t.Run("bad "+strings.Join(args, " "), func(t *testing.T) {
			if r := d.run(t, ctl, args...); r.Code == 0 {
				t.Errorf("xenstore-control %q exited 0: %s", args, r.Stdout)
			}
		})
	}
	d.mustServe(t, "after xenstore-control")
}

// TestXenTestXenstore runs Xen's own test-xenstore (tools/tests/xenstore)
// once through all its tests: read, write, directory, rm, transactions
// including a conflicting one.
func TestXenTestXenstore(t *testing.T) {
	d := startDaemon(t)
	prog := needXenTool(t, "test-xenstore")
	out := d.ok(t, prog)
	names := []string{"read 1", "read 2000", "write 1", "write 2000", "dir", "rm node", "rm dir",
		"ta empty", "ta empty x", "ta rmw", "ta rmw x", "ta err"}
	for _, n := range names {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(n) + `\s*: \d+ ns$`).MatchString(out) {
			t.Errorf("test-xenstore: %q did not pass:\n%s", n, out)
		}
	}
	if strings.Contains(out, "failed") {
		t.Errorf("test-xenstore reports failures:\n%s", out)
	}
	// Its relative paths live under dom0's home; it removes them at the end.
	c := d.Client(t)
	if _, err := c.Read(0, "/local/domain/0/xenstore-test"); err == nil {
		t.Errorf("test-xenstore left /local/domain/0/xenstore-test behind")
	}
}
