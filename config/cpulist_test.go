package config

import (
	"slices"
	"strings"
	"testing"
)

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		in   string
		want []int
	}{
		{"", nil},
		{" \n", nil},
		{"0", []int{0}},
		{"0-3,5", []int{0, 1, 2, 3, 5}},
		{"5,0-3", []int{0, 1, 2, 3, 5}},
		{"0-2,1-3", []int{0, 1, 2, 3}},
		{"2,2,2", []int{2}},
		{"1-1", []int{1}},
		{" 0 , 2 ", []int{0, 2}},
		{"0-1\n", []int{0, 1}},
		{"8191", []int{8191}},
	}
	for _, tt := range tests {
		got, err := ParseCPUList(tt.in)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseCPUListErrors(t *testing.T) {
	tests := []struct {
		in, wantErr string
	}{
		{"0-x", `"x" is not a CPU number`},
		{"a", `"a" is not a CPU number`},
		{"3-1", `range "3-1" ends before it starts`},
		{"0,,1", `"" is not a CPU number`},
		{"0-", `"" is not a CPU number`},
		{"-1", `"" is not a CPU number`},
		{"1-2-3", `"2-3" is not a CPU number`},
		{"8192", "CPU 8192 is above the limit of 8191"},
		{"0-4000000000", "is above the limit"},
		{"99999999999999999999", "is above the limit"},
	}
	for _, tt := range tests {
		_, err := ParseCPUList(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseCPUList(%q) error = %v; want it to contain %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestFormatCPUList(t *testing.T) {
	tests := []struct {
		in   []int
		want string
	}{
		{nil, ""},
		{[]int{0}, "0"},
		{[]int{0, 1}, "0-1"},
		{[]int{0, 1, 2, 3, 5}, "0-3,5"},
		{[]int{5, 3, 2, 1, 0, 3}, "0-3,5"},
		{[]int{0, 2, 4}, "0,2,4"},
		{[]int{1, 2, 7, 8, 9}, "1-2,7-9"},
	}
	for _, tt := range tests {
		if got := FormatCPUList(tt.in); got != tt.want {
			t.Errorf("FormatCPUList(%v) = %q; want %q", tt.in, got, tt.want)
		}
		back, err := ParseCPUList(FormatCPUList(tt.in))
		want := slices.Compact(slices.Sorted(slices.Values(tt.in)))
		if err != nil || !slices.Equal(back, want) {
			t.Errorf("ParseCPUList(FormatCPUList(%v)) = %v, %v; want %v", tt.in, back, err, want)
		}
	}
}
