package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		line    string
		op      string
		args    []string
		wantErr string
	}{
		{"write /a b", "write", []string{"/a", "b"}, ""},
		{"  write /a   hello world ", "write", []string{"/a", "hello world"}, ""},
		{"write /a", "write", []string{"/a", ""}, ""},
		{"read /a", "read", []string{"/a"}, ""},
		{"watch /a tok", "watch", []string{"/a", "tok"}, ""},
		{"event", "event", []string{}, ""},
		{"read", "", nil, "takes 1"},
		{"read /a /b", "", nil, "takes 1"},
		{"frob /a", "", nil, "unknown command"},
		{"", "", nil, "empty"},
	}
	for _, tt := range tests {
		cmd, err := parseCommand(tt.line)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err = %v, want %q", tt.line, err, tt.wantErr)
			}
			continue
		}
		if err != nil || cmd.op != tt.op || !slices.Equal(cmd.args, tt.args) {
			t.Errorf("%q: %+v, %v", tt.line, cmd, err)
		}
	}
}
