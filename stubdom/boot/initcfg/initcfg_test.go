package initcfg

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   \n", nil},
		{"console=hvc0 --event 5\n", []string{"console=hvc0", "--event", "5"}},
		{"a  b\tc", []string{"a", "b", "c"}},
		{`xenstored.arg="-x y" z`, []string{"xenstored.arg=-x y", "z"}},
		{`"quoted word" x`, []string{"quoted word", "x"}},
		{`k=""`, []string{"k="}},
	}
	for _, tt := range tests {
		if got := Split(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Split(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		cmdline   string
		want      []string // Argv()
		dropped   []string
		warnings  int
		warnMatch string
	}{
		{
			name: "nothing",
			want: []string{"/bin/xenstored", "--stubdom"},
		},
		{
			name:    "event from argv, as init-xenstore-domain passes it",
			args:    []string{"--event", "5", "--internal-db"},
			cmdline: "console=hvc0 --event 5 --internal-db xen_privcmd.unrestricted=1\n",
			want:    []string{"/bin/xenstored", "--stubdom", "--event", "5"},
			dropped: []string{"--internal-db"},
		},
		{
			name:    "event only in cmdline",
			cmdline: "console=ttyS0 --event 21",
			want:    []string{"/bin/xenstored", "--stubdom", "--event", "21"},
		},
		{
			name:    "--event=N reaches init only through cmdline",
			cmdline: "--event=7",
			want:    []string{"/bin/xenstored", "--stubdom", "--event", "7"},
		},
		{
			name:    "-e alias and --event= in argv",
			args:    []string{"-e", "3"},
			cmdline: "",
			want:    []string{"/bin/xenstored", "--stubdom", "--event", "3"},
		},
		{
			name: "--event= in argv",
			args: []string{"--event=9"},
			want: []string{"/bin/xenstored", "--stubdom", "--event", "9"},
		},
		{
			name:    "xenstored.event",
			cmdline: "xenstored.event=12",
			want:    []string{"/bin/xenstored", "--stubdom", "--event", "12"},
		},
		{
			name:      "conflicting events: the first wins",
			args:      []string{"--event", "5"},
			cmdline:   "--event 5 xenstored.event=6",
			want:      []string{"/bin/xenstored", "--stubdom", "--event", "5"},
			warnings:  1,
			warnMatch: "already 5",
		},
		{
			name:      "bad event",
			args:      []string{"--event", "five"},
			want:      []string{"/bin/xenstored", "--stubdom"},
			warnings:  1,
			warnMatch: "not a number",
		},
		{
			name:      "event out of range",
			cmdline:   "xenstored.event=4294967296",
			want:      []string{"/bin/xenstored", "--stubdom"},
			warnings:  1,
			warnMatch: "not a number",
		},
		{
			name:      "--event at the end of argv",
			args:      []string{"--event"},
			want:      []string{"/bin/xenstored", "--stubdom"},
			warnings:  1,
			warnMatch: "without a value",
		},
		{
			name:    "path, flags, args and passthrough",
			args:    []string{"--event", "5", "--verbose", "x"},
			cmdline: `--event 5 xenstored.path=/bin/xs xenstored.log-level=debug xenstored.trace xenstored.arg="--a b" xenstored.arg=--c -- --verbose x`,
			want:    []string{"/bin/xs", "--stubdom", "--event", "5", "--log-level=debug", "--trace", "--a b", "--c", "--verbose", "x"},
		},
		{
			name:    "options after -- are argv only",
			args:    []string{"--event", "8", "xenstored.path=/nope"},
			cmdline: "quiet -- --event 8 xenstored.path=/nope",
			want:    []string{"/bin/xenstored", "--stubdom", "--event", "8", "xenstored.path=/nope"},
		},
		{
			name:      "empty path and name",
			cmdline:   "xenstored.path= xenstored.=1",
			want:      []string{"/bin/xenstored", "--stubdom"},
			warnings:  2,
			warnMatch: "",
		},
		{
			name:    "unrelated dotted and env words are ignored",
			cmdline: "xen_privcmd.unrestricted=1 loglevel=4 earlyprintk=xen HOME=/ xenstoredx.y=1",
			want:    []string{"/bin/xenstored", "--stubdom"},
		},
		{
			name:    "-I dropped",
			args:    []string{"-I", "--event", "2"},
			want:    []string{"/bin/xenstored", "--stubdom", "--event", "2"},
			dropped: []string{"-I"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, warns := Parse(tt.args, tt.cmdline)
			if got := c.Argv(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Argv() = %q, want %q", got, tt.want)
			}
			if !reflect.DeepEqual(c.Dropped, tt.dropped) {
				t.Errorf("Dropped = %q, want %q", c.Dropped, tt.dropped)
			}
			if len(warns) != tt.warnings {
				t.Errorf("warnings = %q, want %d", warns, tt.warnings)
			}
			if tt.warnMatch != "" && (len(warns) == 0 || !strings.Contains(warns[0], tt.warnMatch)) {
				t.Errorf("warnings = %q, want one containing %q", warns, tt.warnMatch)
			}
		})
	}
}

func TestPrivcmdWarnings(t *testing.T) {
	tests := []struct {
		cmdline string
		want    string // substring of the only warning; "" for none
	}{
		{"console=hvc0 xen_privcmd.unrestricted=1", ""},
		{"xen-privcmd.unrestricted=Y", ""},
		{"xen_privcmd.unrestricted=on", ""},
		{"xen_privcmd.unrestricted", ""},
		{"console=hvc0", "no xen_privcmd.unrestricted=1"},
		{"xen_privcmd.unrestricted=0", "stays restricted"},
		{"xen_privcmd.unrestricted=off", "stays restricted"},
		{"xen_privcmd.unrestricted=", "stays restricted"},
		{"xen_privcmd.unrestricted=1 privcmd.unrestricted=1", "has no effect"},
		{"-- xen_privcmd.unrestricted=1", "no xen_privcmd.unrestricted=1"},
	}
	for _, tt := range tests {
		warns := PrivcmdWarnings(tt.cmdline)
		switch {
		case tt.want == "" && len(warns) != 0:
			t.Errorf("PrivcmdWarnings(%q) = %q, want none", tt.cmdline, warns)
		case tt.want != "" && (len(warns) != 1 || !strings.Contains(warns[0], tt.want)):
			t.Errorf("PrivcmdWarnings(%q) = %q, want one containing %q", tt.cmdline, warns, tt.want)
		}
	}
}

func TestMounts(t *testing.T) {
	ms := Mounts()
	if len(ms) == 0 || ms[0].Target != "/dev" || ms[0].FSType != "devtmpfs" {
		t.Fatalf("first mount must be devtmpfs on /dev (the console lives there): %+v", ms)
	}
	seen := map[string]bool{}
	for _, m := range ms {
		if seen[m.Target] {
			t.Errorf("%s mounted twice", m.Target)
		}
		seen[m.Target] = true
		if strings.HasPrefix(m.Target, "/proc/") && !seen["/proc"] {
			t.Errorf("%s before /proc", m.Target)
		}
	}
	for _, dir := range []string{"/dev", "/proc", "/sys", "/proc/xen"} {
		if !seen[dir] {
			t.Errorf("no mount on %s", dir)
		}
	}
}

func TestMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name    string
		meminfo string
		want    int64
		ok      bool
	}{
		{"stub", "MemTotal:          24576 kB\nMemFree:           10000 kB\nMemAvailable:      16384 kB\n", 14 * mib, true},
		{"reserve at least 1 MiB", "MemAvailable: 4096 kB\n", 3 * mib, true},
		{"not MemTotal", "MemTotal: 65536 kB\nMemAvailable: 8192 kB\n", 7 * mib, true},
		{"too little", "MemAvailable: 2000 kB\n", 0, false},
		{"missing", "MemTotal: 4000 kB\nMemFree: 1 kB\n", 0, false},
		{"empty", "", 0, false},
		{"bad number", "MemAvailable: lots kB\n", 0, false},
		{"zero", "MemAvailable: 0 kB\n", 0, false},
		{"other unit", "MemAvailable: 4000 MB\n", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, why, ok := MemoryLimit(tc.meminfo)
			if got != tc.want || ok != tc.ok || why == "" {
				t.Errorf("MemoryLimit(%q) = %d, %q, %v; want %d, %v", tc.meminfo, got, why, ok, tc.want, tc.ok)
			}
		})
	}
}
