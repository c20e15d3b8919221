package config

import (
	"strings"
	"syscall"
	"testing"
)

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in   string
		want syscall.Signal
	}{
		{"SIGTERM", syscall.SIGTERM},
		{"sigterm", syscall.SIGTERM},
		{"TERM", syscall.SIGTERM},
		{"term", syscall.SIGTERM},
		{" SIGKILL ", syscall.SIGKILL},
		{"SIGPWR", 30},
		{"15", syscall.SIGTERM},
		{"1", 1},
		{"64", 64},
		{"SIGRTMIN", 34},
		{"SIGRTMIN+3", 37},
		{"rtmin+3", 37},
		{"SIGRTMIN+30", 64},
		{"SIGRTMAX", 64},
		{"SIGRTMAX-2", 62},
		{"SIGRTMAX-30", 34},
	}
	for _, tt := range tests {
		got, err := ParseSignal(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSignal(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSignalErrors(t *testing.T) {
	tests := []struct {
		in, wantErr string
	}{
		{"SIGFOO", `"SIGFOO" is not a signal; use a name like SIGTERM, SIGPWR, SIGRTMIN+3 or a number`},
		{"", `"" is not a signal`},
		{"SIG", `"SIG" is not a signal`},
		{"0", `"0" is not a signal number; use 1 to 64`},
		{"65", `"65" is not a signal number`},
		{"99999999999999999999", "is not a signal number"},
		{"-1", `"-1" is not a signal`},
		{"SIGRTMIN+31", `"SIGRTMIN+31" is not a signal`},
		{"SIGRTMIN-1", `"SIGRTMIN-1" is not a signal`},
		{"SIGRTMAX+1", `"SIGRTMAX+1" is not a signal`},
		{"SIGRTMAX-31", `"SIGRTMAX-31" is not a signal`},
		{"SIGRTMIN+", `"SIGRTMIN+" is not a signal`},
		{"SIGRTMIN+x", `"SIGRTMIN+x" is not a signal`},
	}
	for _, tt := range tests {
		_, err := ParseSignal(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseSignal(%q) error = %v; want it to contain %q", tt.in, err, tt.wantErr)
		}
	}
}
