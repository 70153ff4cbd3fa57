package packaging

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/xsstub/xenstored/daemon"
	"github.com/xsstub/xenstored/stubdom/boot/initcfg"
)

// rig is a temporary root for the wrapper: a config, fake launcher, daemon
// and xenstore-read that record their arguments.
type rig struct {
	t   *testing.T
	dir string
}

func newRig(t *testing.T, conf string) *rig {
	t.Helper()
	r := &rig{t: t, dir: t.TempDir()}
	fake := func(name, body string) {
		p := filepath.Join(r.dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// One argument per line, so that words with blanks would show.
	fake("launch", `printf '%s\n' "$@" >"$0.args"; echo started >&2; echo 7; exit ${LAUNCH_RC:-0}`)
	fake("daemon", `printf '%s\n' "$@" >"$0.args"; exit 0`)
	fake("xsread", `echo "$@" >"$0.args"; exit ${READ_RC:-1}`)
	fake("oxenstored.distrib", `printf '%s\n' "$@" >"$0.args"; exit 0`)
	base := "XSSTUB_LAUNCHER=" + r.path("launch") + "\nXSSTUB_DAEMON=" + r.path("daemon") +
		"\nXSSTUB_XENSTORE_READ=" + r.path("xsread") + "\n"
	if err := os.WriteFile(r.path("conf"), []byte(base+conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// The diverted name Debian's init script runs.
	wrapper, _ := filepath.Abs("xenstored-wrapper")
	if err := os.Symlink(wrapper, r.path("oxenstored")); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) path(name string) string { return filepath.Join(r.dir, name) }

// run starts the wrapper as /etc/init.d/xen does (with the init script's
// arguments) and returns its exit status and stderr.
func (r *rig) run(env []string, args ...string) (int, string) {
	r.t.Helper()
	cmd := exec.Command(r.path("oxenstored"), args...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "XSSTUB_CONF=" + r.path("conf")}, env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), stderr.String()
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return 0, stderr.String()
}

// args returns what a fake was called with, nil when it was not called.
func (r *rig) args(name string) []string {
	b, err := os.ReadFile(r.path(name + ".args"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestWrapperStubDefaults(t *testing.T) {
	r := newRig(t, "")
	code, stderr := r.run(nil, "--pid-file", r.path("pid"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := []string{"--kernel", "/usr/lib/xsstub/xenstore-stubdom.kernel",
		"--ramdisk", "/usr/lib/xsstub/xenstore-stubdom.cpio.gz", "--memory", "48",
		"--pid-file", r.path("pid"), "--console-log", "/var/log/xen/xenstore-domain-console.log",
		"--timeout", "60s", "--param", "sysctl.vm.overcommit_memory=1", "--param", "console=hvc0",
		"--param", "loglevel=4"}
	if got := r.args("launch"); !reflect.DeepEqual(got, want) {
		t.Errorf("launcher args\n got %q\nwant %q", got, want)
	}
	if r.args("xsread") != nil {
		t.Error("xenstore-read probed although no pid file exists (costs a timeout at boot)")
	}
	if !strings.Contains(stderr, "dom7 serves") {
		t.Errorf("stderr %q: want the stub's domid", stderr)
	}
}

// The settings reach the stub's xenstored: launcher --param words, which
// the stub's /init turns into options the daemon accepts.
func TestWrapperStubSettings(t *testing.T) {
	r := newRig(t, `XSSTUB_MEMORY=96
XSSTUB_MAXMEM=128
XSSTUB_DOMAIN_TYPE=pv
XSSTUB_KERNEL_PARAMS="console=hvc0 loglevel=7"
XSSTUB_QUOTAS="nodes=4000 memory=8388608"
XSSTUB_WRITE_RATE=500
XSSTUB_WRITE_BURST=50
XSSTUB_MEMORY_CEILING=-1
XSSTUB_XENSTORED_ARGS="-V -w watch-event=30"
`)
	code, stderr := r.run(nil, "--pid-file=/x/pid")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got := r.args("launch")
	has := func(seq ...string) {
		t.Helper()
		for i := 0; i+len(seq) <= len(got); i++ {
			if reflect.DeepEqual(got[i:i+len(seq)], seq) {
				return
			}
		}
		t.Errorf("launcher args %q lack %q", got, seq)
	}
	has("--memory", "96")
	has("--maxmem", "128")
	has("--pv")
	has("--pid-file", "/x/pid")
	var params []string
	for i, a := range got {
		if a == "--param" && i+1 < len(got) {
			params = append(params, got[i+1])
		}
	}
	// The stub's /init reads these from /proc/cmdline.
	cfg, warns := initcfg.Parse([]string{"--event", "5"}, strings.Join(params, " "))
	if len(warns) != 0 {
		t.Errorf("init warns: %q", warns)
	}
	argv := cfg.Argv()
	wantDaemon := []string{"/bin/xenstored", "--stubdom", "--event", "5", "--quota=nodes=4000",
		"--quota=memory=8388608", "--write-rate=500", "--write-burst=50", "--memory-ceiling=-1",
		"-V", "-w", "watch-event=30"}
	if !reflect.DeepEqual(argv, wantDaemon) {
		t.Errorf("stub's xenstored argv\n got %q\nwant %q", argv, wantDaemon)
	}
	o, err := daemon.Parse(argv[1:], io.Discard)
	if err != nil {
		t.Fatalf("the daemon refuses %q: %v", argv[1:], err)
	}
	if o.WriteRate != 500 || o.WriteBurst != 50 || o.MemoryCeiling != -1 || !o.Verbose {
		t.Errorf("daemon options %+v", o)
	}
}

func TestWrapperStubAlreadyServing(t *testing.T) {
	r := newRig(t, "")
	if err := os.WriteFile(r.path("pid"), []byte("domid:3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stderr := r.run([]string{"READ_RC=0"}, "--pid-file", r.path("pid"))
	if code != 0 || r.args("launch") != nil {
		t.Fatalf("exit %d, launcher %q: want 0 without a launch (%s)", code, r.args("launch"), stderr)
	}
	if got := r.args("xsread"); len(got) != 1 || got[0] != "-s /" {
		t.Errorf("xenstore-read %q, want -s /", got)
	}
	// A stale pid file (nothing answers): launch.
	code, stderr = r.run(nil, "--pid-file", r.path("pid"))
	if code != 0 || r.args("launch") == nil {
		t.Fatalf("stale pid file: exit %d, launcher %q (%s)", code, r.args("launch"), stderr)
	}
}

func TestWrapperStubFails(t *testing.T) {
	r := newRig(t, "")
	code, _ := r.run([]string{"LAUNCH_RC=1"}, "--pid-file", r.path("pid"))
	if code != 1 || r.args("daemon") != nil {
		t.Errorf("exit %d, daemon %q: want 1 and no fallback by default", code, r.args("daemon"))
	}
	// Exit 3: started, follow-up failed; serving counts as started.
	code, _ = r.run([]string{"LAUNCH_RC=3", "READ_RC=0"}, "--pid-file", r.path("pid"))
	if code != 0 {
		t.Errorf("launcher exit 3 with a serving store: exit %d, want 0", code)
	}
	code, _ = r.run([]string{"LAUNCH_RC=3"}, "--pid-file", r.path("pid"))
	if code != 3 {
		t.Errorf("launcher exit 3, nothing serving: exit %d, want 3", code)
	}

	r = newRig(t, "XSSTUB_FALLBACK=dom0\nXSSTUB_WRITE_RATE=9\n")
	code, _ = r.run([]string{"LAUNCH_RC=1"}, "-T", "/tmp/t", "--pid-file", "/run/x.pid")
	want := []string{"--write-rate=9", "-T", "/tmp/t", "--pid-file", "/run/x.pid"}
	if got := r.args("daemon"); code != 0 || !reflect.DeepEqual(got, want) {
		t.Errorf("fallback dom0: exit %d, daemon %q, want %q", code, got, want)
	}

	r = newRig(t, "XSSTUB_FALLBACK=debian\n")
	code, _ = r.run([]string{"LAUNCH_RC=1"}, "--pid-file", "/run/x.pid")
	if got := r.args("oxenstored.distrib"); code != 0 || !reflect.DeepEqual(got, []string{"--pid-file", "/run/x.pid"}) {
		t.Errorf("fallback debian: exit %d, oxenstored.distrib %q", code, got)
	}
}

// TestWrapperStubNoLauncher: where no launcher is installed (the arm64
// package) stub mode fails and says what to do instead; a fallback to the
// dom0 daemon still applies.
func TestWrapperStubNoLauncher(t *testing.T) {
	for _, tt := range []struct {
		name, conf string
		code       int
		daemon     bool
	}{
		{"no fallback", "", 1, false},
		{"fallback dom0", "XSSTUB_FALLBACK=dom0\n", 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, tt.conf+"XSSTUB_LAUNCHER=/nonexistent/xenstore-stubdom-launch\n")
			code, stderr := r.run(nil, "--pid-file", r.path("pid"))
			if code != tt.code || (r.args("daemon") != nil) != tt.daemon {
				t.Errorf("exit %d, daemon %q: want %d, daemon run %v (%s)", code, r.args("daemon"), tt.code, tt.daemon, stderr)
			}
			if !strings.Contains(stderr, "dom0less") || !strings.Contains(stderr, "XSSTUB_MODE=dom0") {
				t.Errorf("stderr %q: want why (dom0less on Arm) and what to set", stderr)
			}
		})
	}
}

func TestWrapperDom0(t *testing.T) {
	r := newRig(t, "XSSTUB_MODE=dom0\nXSSTUB_QUOTAS=\"nodes=5 watches=6\"\nXSSTUB_XENSTORED_ARGS=-V\n")
	code, stderr := r.run(nil, "--pid-file", r.path("pid"))
	want := []string{"--quota=nodes=5", "--quota=watches=6", "-V", "--pid-file", r.path("pid")}
	if got := r.args("daemon"); code != 0 || !reflect.DeepEqual(got, want) {
		t.Fatalf("exit %d (%s), daemon %q, want %q", code, stderr, got, want)
	}
	if r.args("launch") != nil {
		t.Error("dom0 mode ran the launcher")
	}
	if _, err := daemon.Parse(want, io.Discard); err != nil {
		t.Errorf("the daemon refuses %q: %v", want, err)
	}
}

func TestWrapperDebianAndBadMode(t *testing.T) {
	r := newRig(t, "XSSTUB_MODE=debian\n")
	code, _ := r.run(nil, "--pid-file", "/run/xenstore.pid")
	if got := r.args("oxenstored.distrib"); code != 0 || len(got) != 2 {
		t.Errorf("debian mode: exit %d, oxenstored.distrib %q", code, got)
	}
	r = newRig(t, "XSSTUB_MODE=bogus\n")
	if code, stderr := r.run(nil); code != 2 || !strings.Contains(stderr, "XSSTUB_MODE=bogus") {
		t.Errorf("bad mode: exit %d, %q", code, stderr)
	}
	r = newRig(t, "XSSTUB_DOMAIN_TYPE=hvm\n")
	if code, _ := r.run(nil); code != 2 || r.args("launch") != nil {
		t.Errorf("bad domain type: exit %d, launcher %q", code, r.args("launch"))
	}
}

// The shipped /etc/default/xsstub sets what the wrapper's built-in
// defaults say (so an emptied or missing file changes nothing).
func TestDefaultFileMatchesWrapper(t *testing.T) {
	vars := func(file string) map[string]string {
		out, err := exec.Command("sh", "-c", `set -a; . ./`+file+` >/dev/null 2>&1 || true; env`).Output()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, l := range strings.Split(string(out), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok && strings.HasPrefix(k, "XSSTUB_") {
				m[k] = v
			}
		}
		return m
	}
	conf := vars("xsstub.default")
	b, err := os.ReadFile("xenstored-wrapper")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, "=")
		if !ok || !strings.HasPrefix(k, "XSSTUB_") || strings.ContainsAny(k, " \t$") {
			continue
		}
		v = strings.Trim(v, `"`)
		if cv, in := conf[k]; in {
			n++
			if cv != v {
				t.Errorf("%s: /etc/default/xsstub %q, wrapper default %q", k, cv, v)
			}
		}
	}
	if n < 14 {
		t.Errorf("only %d settings compared", n)
	}
}

// TestWrapperDom0AlreadyRunning: a second start finds the daemon by its
// pid file's live process and a store that answers, whatever file the
// process now runs (after a live update it is not XSSTUB_DAEMON).
func TestWrapperDom0AlreadyRunning(t *testing.T) {
	for _, tt := range []struct {
		name    string
		pid     string
		env     []string
		started bool
	}{
		{"live, answering, another binary", strconv.Itoa(os.Getpid()), []string{"READ_RC=0"}, false},
		{"live, not answering", strconv.Itoa(os.Getpid()), nil, true},
		{"no such process", "999999999", []string{"READ_RC=0"}, true},
		{"garbage", "x", []string{"READ_RC=0"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, "XSSTUB_MODE=dom0\n")
			if err := os.WriteFile(r.path("pid"), []byte(tt.pid+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			code, stderr := r.run(tt.env, "--pid-file", r.path("pid"))
			if started := r.args("daemon") != nil; code != 0 || started != tt.started {
				t.Errorf("exit %d, daemon started %v, want %v (%s)", code, started, tt.started, stderr)
			}
		})
	}
}
