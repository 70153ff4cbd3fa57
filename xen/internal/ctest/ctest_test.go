package ctest

import (
	"runtime"
	"testing"
)

func TestParseAsm(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    map[string]uint64
		wantErr bool
	}{
		{"aarch64", "\t.type\txsprobe_0, %object\nxsprobe_0:\n\t.xword\t48\n\t.global\txsprobe_1\nxsprobe_1:\n\t.zero\t8\n",
			map[string]uint64{"xsprobe_0": 48, "xsprobe_1": 0}, false},
		{"x86_64", "xsprobe_0:\n\t.quad\t3158016\n", map[string]uint64{"xsprobe_0": 3158016}, false},
		{"negative as two's complement", "xsprobe_0:\n\t.xword\t-1\n", map[string]uint64{"xsprobe_0": ^uint64(0)}, false},
		{"unsigned above int64", "xsprobe_0:\n\t.8byte\t18446744073709551615\n", map[string]uint64{"xsprobe_0": ^uint64(0)}, false},
		{"hex", "xsprobe_0:\n\t.quad\t0x7ff0\n", map[string]uint64{"xsprobe_0": 0x7ff0}, false},
		{"other labels ignored", "main:\n\tret\nxsprobe_0:\n\t.xword\t7\n", map[string]uint64{"xsprobe_0": 7}, false},
		{"4-byte datum refused", "xsprobe_0:\n\t.word\t7\n", nil, true},
		{"short zero refused", "xsprobe_0:\n\t.zero\t4\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAsm(tt.text)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %d, want %d", k, got[k], v)
				}
			}
		})
	}
}

// TestValues checks the probe itself on values the C standard and the ABI
// fix, on the host and, under GOARCH=arm64, through the cross compiler's
// assembly: plain char is signed on x86-64 and unsigned on AArch64, so a
// probe compiled for the wrong architecture fails here.
func TestValues(t *testing.T) {
	v := Values(t, nil, "#include <stdint.h>\nstruct s { uint8_t a; uint64_t b; };\n", map[string]string{
		"size":   "sizeof(struct s)",
		"off":    "offsetof(struct s, b)",
		"zero":   "offsetof(struct s, a)",
		"max":    "UINT64_MAX",
		"ptr":    "sizeof(void *)",
		"negone": "-1",
		"signed": "(char)-1 < 0",
	})
	want := map[string]uint64{"size": 16, "off": 8, "zero": 0, "max": ^uint64(0), "ptr": 8, "negone": ^uint64(0),
		"signed": map[string]uint64{"amd64": 1, "arm64": 0}[runtime.GOARCH]}
	for k, w := range want {
		if v[k] != w {
			t.Errorf("%s = %d, want %d", k, v[k], w)
		}
	}
}
