package daemon

import "testing"

func TestPickFields(t *testing.T) {
	const meminfo = "MemTotal:          24576 kB\nMemFree:            1000 kB\nShmem:  3600 kB\nbogus line\nSlab:\n"
	tests := []struct {
		name string
		want []string
		out  string
	}{
		{"in the order asked", []string{"Shmem", "MemTotal"}, " Shmem=3600 MemTotal=24576"},
		{"absent names skipped", []string{"MemAvailable", "MemFree"}, " MemFree=1000"},
		{"empty value skipped", []string{"Slab"}, ""},
		{"nothing asked", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := pickFields(meminfo, tc.want); got != tc.out {
				t.Errorf("pickFields(%q) = %q, want %q", tc.want, got, tc.out)
			}
		})
	}
}
