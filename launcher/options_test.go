package launcher

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseInitXenstoreDomainOptions(t *testing.T) {
	o, err := Parse([]string{"--kernel", "/k", "--memory", "48", "--ramdisk=/r", "--param", "a=1 b",
		"--param", "c", "--name", "XS", "--maxmem", "64:1/32", "--flask", "system_u:system_r:xenstore_t", "-vv", "-v", "--verbose"})
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Kernel: "/k", Ramdisk: "/r", MemoryMiB: 48, Maxmem: "64:1/32", Params: []string{"a=1 b", "c"},
		Name: "XS", Flask: "system_u:system_r:xenstore_t", Verbose: 4, PIDFile: DefaultPIDFile,
		ConsoleLog: DefaultConsoleLog, Timeout: DefaultTimeout}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("got  %+v\nwant %+v", o, want)
	}
}

func TestParseOwnOptions(t *testing.T) {
	o, err := Parse([]string{"--kern=/k", "--mem", "8", "--pv", "--pid-file", "/p", "--console-log", "-",
		"--timeout", "90", "--no-privcmd-param"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Kernel != "/k" || o.MemoryMiB != 8 || o.Mode != ModePV || o.PIDFile != "/p" || o.ConsoleLog != "-" ||
		o.Timeout != 90*time.Second || !o.NoPrivcmdParam || o.Name != DefaultName {
		t.Fatalf("%+v", o)
	}
	o, err = Parse([]string{"--kernel", "/k", "--memory", "8", "--pvh", "--timeout=2m"})
	if err != nil || o.Mode != ModePVH || o.Timeout != 2*time.Minute {
		t.Fatalf("%+v %v", o, err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{}, "--kernel and --memory missing"},
		{[]string{"--kernel", "/k"}, "--memory missing"},
		{[]string{"--memory", "8"}, "--kernel missing"},
		{[]string{"--kernel", "/k", "--memory", "x"}, "--memory \"x\""},
		{[]string{"--kernel", "/k", "--memory", "0"}, "--memory \"0\""},
		{[]string{"--kernel", "/k", "--memory", "8", "extra"}, "unexpected argument"},
		{[]string{"--kernel", "/k", "--memory", "8", "--bogus"}, "unknown option --bogus"},
		{[]string{"--kernel", "/k", "--memory", "8", "--p", "x"}, "ambiguous"},
		{[]string{"--kernel", "/k", "--memory"}, "needs a value"},
		{[]string{"--kernel", "/k", "--memory", "8", "--pv=1"}, "takes no value"},
		{[]string{"--kernel", "/k", "--memory", "8", "--maxmem", "1/0"}, "illegal value for --maxmem"},
		{[]string{"--kernel", "/k", "--memory", "8", "--maxmem", "1/2:1/3"}, "illegal value"},
		{[]string{"--kernel", "/k", "--memory", "8", "--name", "a/b"}, "--name"},
		{[]string{"--kernel", "/k", "--memory", "8", "--timeout", "-1s"}, "--timeout"},
		{[]string{"--kernel", "/k", "--memory", "8", "-x"}, "unexpected argument"},
	} {
		_, err := Parse(c.args)
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want usage error containing %q", c.args, err, c.want)
		}
	}
	for _, h := range []string{"--help", "-h", "--he"} {
		if _, err := Parse([]string{h}); !errors.Is(err, ErrHelp) {
			t.Errorf("Parse(%s) = %v", h, err)
		}
	}
}

func TestResolveMaxmem(t *testing.T) {
	const host = 4 << 18 // 4 GiB in pages
	for _, c := range []struct {
		spec string
		mem  int
		want int
	}{
		{"", 32, 0},
		{"128", 32, 128},
		{"16", 32, 0},     // not above --memory: no separate maximum
		{"1/32", 32, 128}, // 4096/32
		{"64:1/32", 32, 128},
		{"256:1/32", 32, 256},
		{"1/32:64", 32, 128}, // either order
		{"1/128", 32, 0},     // 32 MiB, not above
	} {
		got, err := ResolveMaxmem(c.spec, c.mem, host)
		if err != nil || got != c.want {
			t.Errorf("ResolveMaxmem(%q, %d) = %d, %v; want %d", c.spec, c.mem, got, err, c.want)
		}
	}
	for _, bad := range []string{"0", "a", "1/", "/2", "1:2", "1/2/3", "1/2:1/2", "3000000"} {
		if _, err := ResolveMaxmem(bad, 8, host); err == nil {
			t.Errorf("ResolveMaxmem(%q) accepted", bad)
		}
	}
}

func TestCmdline(t *testing.T) {
	for _, c := range []struct {
		params  []string
		privcmd bool
		want    string
	}{
		{nil, true, "--event 5 xen_privcmd.unrestricted=1"},
		{nil, false, "--event 5"},
		{[]string{"console=hvc0 loglevel=3", `x="a b"`}, true, `--event 5 xen_privcmd.unrestricted=1 console=hvc0 loglevel=3 x="a b"`},
		{[]string{"quiet xen_privcmd.unrestricted=1"}, true, "--event 5 quiet xen_privcmd.unrestricted=1"},
		{[]string{"xen-privcmd.unrestricted=1"}, true, "--event 5 xen-privcmd.unrestricted=1"},
	} {
		got, err := Cmdline(5, c.params, c.privcmd)
		if err != nil || got != c.want {
			t.Errorf("Cmdline(%q, %v) = %q, %v; want %q", c.params, c.privcmd, got, err, c.want)
		}
	}
	if _, err := Cmdline(5, []string{strings.Repeat("x", MaxCmdline)}, true); err == nil {
		t.Error("over-long command line accepted")
	}
}
