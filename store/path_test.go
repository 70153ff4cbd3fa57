package store

import (
	"strings"
	"syscall"
	"testing"
)

func TestCanonicalPath(t *testing.T) {
	long := "/local/domain/5/" + strings.Repeat("a", 2048)
	tests := []struct {
		in           string
		special      bool
		pathMax      int
		want         string
		rel, invalid bool
	}{
		{in: "/", want: "/"},
		{in: "/a/b-c_d@e", want: "/a/b-c_d@e"},
		{in: "x/y", want: "/local/domain/5/x/y", rel: true},
		{in: "", invalid: true},
		{in: "/a/", invalid: true},
		{in: "/a//b", invalid: true},
		{in: "/a b", invalid: true},
		{in: "/a.b", invalid: true},
		{in: "/a\xff", invalid: true},
		{in: "@releaseDomain", invalid: true},
		{in: "@releaseDomain", special: true, want: "@releaseDomain"},
		{in: "@releaseDomain/5", special: true, want: "@releaseDomain/5"},
		{in: "/" + strings.Repeat("a", 3071), want: "/" + strings.Repeat("a", 3071)},
		{in: "/" + strings.Repeat("a", 3072), invalid: true},
		{in: long, want: long, pathMax: 2048},
		{in: long + "b", pathMax: 2048, invalid: true},
		{in: "/local/domain/", invalid: true}, // XSA-481
		{in: strings.Repeat("a", 2048), pathMax: 2048, want: "/local/domain/5/" + strings.Repeat("a", 2048), rel: true},
		{in: strings.Repeat("a", 2049), pathMax: 2048, invalid: true},
	}
	for _, tt := range tests {
		got, rel, err := canonicalPath(tt.in, "/local/domain/5", tt.special, tt.pathMax)
		if tt.invalid {
			if err != syscall.EINVAL {
				t.Errorf("canonicalPath(%.40q) = %q, %v; want EINVAL", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want || rel != tt.rel {
			t.Errorf("canonicalPath(%.40q) = %.40q, %v, %v; want %.40q, %v", tt.in, got, rel, err, tt.want, tt.rel)
		}
	}
}

func TestParsePerm(t *testing.T) {
	tests := []struct {
		in   string
		want Perm
		bad  bool
	}{
		{in: "r0", want: Perm{ID: 0, Access: PermRead}},
		{in: "w12", want: Perm{ID: 12, Access: PermWrite}},
		{in: "b65535", want: Perm{ID: 65535, Access: PermBoth}},
		{in: "n7", want: Perm{ID: 7, Access: PermNone}},
		{in: "r0x10", want: Perm{ID: 16, Access: PermRead}},
		{in: "x1", bad: true},
		{in: "r", bad: true},
		{in: "", bad: true},
		{in: "r1a", bad: true},
		{in: "r-1", want: Perm{ID: 0xffffffff, Access: PermRead}}, // C strtol, then unsigned
		{in: "b+1", want: Perm{ID: 1, Access: PermBoth}},
		{in: "r70000", want: Perm{ID: 70000, Access: PermRead}}, // parsed, then ignored as unknown
		{in: "r 1", want: Perm{ID: 1, Access: PermRead}},        // strtol skips white space
		{in: "r1 ", bad: true},
		{in: "r0x", bad: true},
	}
	for _, tt := range tests {
		got, err := ParsePerm(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParsePerm(%q) = %v, want error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParsePerm(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestIsChild(t *testing.T) {
	tests := []struct {
		child, parent string
		depth         int
		want          bool
	}{
		{"/a", "/a", -1, true},
		{"/a/b", "/a", -1, true},
		{"/ab", "/a", -1, false},
		{"/a/b/c", "/a", 1, false},
		{"/a/b", "/a", 1, true},
		{"/a/b", "/a", 0, false},
		{"/a", "/a", 0, true},
		{"/a", "/", 0, false},
		{"/a", "/", 1, true},
		{"/a/b", "/", 1, false},
		{"/x", "/", -1, true},
		{"@releaseDomain/5", "@releaseDomain", 1, true},
		{"@releaseDomain", "/", -1, false},
	}
	for _, tt := range tests {
		if got := isChild(tt.child, tt.parent, tt.depth); got != tt.want {
			t.Errorf("isChild(%q, %q, %d) = %v, want %v", tt.child, tt.parent, tt.depth, got, tt.want)
		}
	}
}

func TestHomeOf(t *testing.T) {
	tests := []struct {
		path string
		id   uint32
		ok   bool
	}{
		{"/local/domain/5", 5, true},
		{"/local/domain/5/data/x", 5, true},
		{"/local/domain/0", 0, true},
		{"/local/domain/0/backend/vif/5/0", 0, true},
		{"/local/domain/4294967295/x", 4294967295, true},
		{"/local/domain/4294967296/x", 0, false}, // not a uint32
		{"/local/domain/05/x", 0, false},         // not canonical
		{"/local/domain/+5", 0, false},
		{"/local/domain/", 0, false},
		{"/local/domain", 0, false},
		{"/local/domain/x5", 0, false},
		{"/local/domainx/5", 0, false},
		{"/vm/5", 0, false},
		{"@releaseDomain", 0, false},
	}
	for _, tc := range tests {
		id, ok := homeOf(tc.path)
		if id != tc.id || ok != tc.ok {
			t.Errorf("homeOf(%q) = %d, %v; want %d, %v", tc.path, id, ok, tc.id, tc.ok)
		}
	}
}

func TestParseDomid(t *testing.T) {
	tests := []struct {
		in   string
		want uint32
		ok   bool
	}{
		{"0", 0, true},
		{"5", 5, true},
		{"07", 7, true},
		{"65535", 65535, true},
		{"", 0, true},    // strtoul converts nothing and stops at the end
		{" 5", 5, true},  // strtoul skips leading white space
		{"+5", 5, true},  // and takes a sign
		{"-0", 0, true},  //
		{"-1", 0, false}, // wraps above 65535
		{"65536", 0, false},
		{"4294967295", 0, false},
		{"99999999999999999999999", 0, false},
		{"abc", 0, false},
		{"5abc", 0, false},
		{"0x5", 0, false},
		{"5 ", 0, false},
		{" ", 0, false},
		{"+", 0, false},
	}
	for _, tt := range tests {
		got, err := parseDomid(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseDomid(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
